"""`iiswatch retention [--apply] [--json]`: delete log indices and state older than the
configured ages (iiswatch.elastic.retention). A dry run unless --apply."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from iiswatch.cli.output import out, print_json


def retention(
    apply: Annotated[bool, typer.Option("--apply", help="Delete; without it, only show.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Delete log indices, dead letters and alerting state older than the configured ages.

    The ages are the config file's [retention] section (defaults: logs 365d, deadletter
    90d, state 30d; alerts kept unless `alerts = "..."` is set). Run it daily (cron, a
    systemd timer or the compose stack's scheduler); it is idempotent.
    """
    from iiswatch.config import Purpose, load_settings
    from iiswatch.elastic.client import client_for
    from iiswatch.elastic.retention import apply as apply_plan
    from iiswatch.elastic.retention import plan

    ages = load_settings().retention  # checked as the file is read
    es = client_for(Purpose.ADMIN)
    actions = plan(es, ages)
    deleted = apply_plan(es, actions) if apply else 0
    if json_out:
        print_json(
            {"applied": apply, "deleted": deleted, "actions": [a.as_dict() for a in actions]}
        )
        return
    if not actions:
        out.print("nothing is older than the retention ages")
        return
    table = Table("what", "target", "documents", "why", title="iiswatch retention")
    for a in actions:
        table.add_row(a.kind, a.target, str(a.count), a.reason)
    out.print(table)
    total = sum(a.count for a in actions)
    if apply:
        out.print(f"deleted {deleted} documents")
    else:
        out.print(f"{total} documents would go; run with --apply to delete them")
