"""`iiswatch alerting …`: run the alerting service, see what each rule did, replay a span
of ingest time (a reported gap) through it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from iiswatch.cli.options import ALERTING_CONFIG, RULES_DIR, time_span
from iiswatch.cli.output import err, out, print_json
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.errors import EXIT_BACKEND, UsageError
from iiswatch.rules.loader import default_rules_dir
from iiswatch.times import parse_time

app = typer.Typer(
    help="The alerting service: run it, see its status per rule, replay ingest time.",
    no_args_is_help=True,
)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)


@app.command()
def run(
    config: Path | None = ALERTING_CONFIG,
    rules_dir: Path | None = RULES_DIR,
    once: bool = typer.Option(
        False, "--once", help="One pass: evaluate every settled window, deliver, exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Run the rules on their schedules and deliver their alerts (until SIGTERM).

    Several processes may run against one Elasticsearch: one holds the lease and works,
    the others stand by and take over when it stops."""
    from iiswatch.alerting.config import load_config
    from iiswatch.alerting.service import AlertingService

    _logging(verbose)
    cfg = load_config(config)
    settings = cfg.service
    es = client_for(Purpose.ALERTING)
    service = AlertingService(es, cfg, settings, rules_dir or default_rules_dir())
    if not once:
        service.run_forever()
        return
    results = service.run_once()
    for r in results.values():
        windows = len(r.windows)
        alerts = len(r.alerts)
        state = f"error: {r.error}" if r.error else f"{windows} window(s), {alerts} alert(s)"
        gap = " + gap reported" if r.gap else ""
        left = f", stopped with {r.left} left" if r.left else ""
        err.print(f"{r.rule_id}: {escape(state)}{gap}{left}")
    stopped = [r for r in results.values() if r.left]
    if stopped:
        raise UsageError(
            f"the pass lost the lease {settings.lease_name!r}: {len(stopped)} rule(s) stopped "
            "with settled windows left",
            "another alerting service took the lease and continues them, or Elasticsearch "
            "stopped answering (see the log above); run the pass again",
        )


@app.command()
def status(
    json_out: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    lease_name: str = typer.Option("alerting", "--lease", help="The service's lease_name."),
) -> None:
    """Per rule: last run, lag, duration, hits, alerts, errors, and why nothing fired.
    Exits 3 when no alerting service holds the lease (none running, or its holder stopped
    renewing): a monitor can run this."""
    from iiswatch.alerting.lease import Lease
    from iiswatch.alerting.status import StatusStore

    es = client_for(Purpose.ALERTING)
    rules = sorted(StatusStore(es).all(), key=lambda s: s.rule_name.lower())
    lease = Lease(es, lease_name).info()
    held = _lease_held(lease, datetime.now(UTC))
    if json_out:
        print_json(
            {
                "lease": None
                if lease is None
                else {"holder": lease.holder, "renewed": lease.renewed, "ttl": lease.ttl_seconds},
                "rules": [s.as_doc() for s in rules],
                "lease_held": held,
            }
        )
        if not held:
            raise typer.Exit(EXIT_BACKEND)
        return
    if lease is None or not lease.holder:
        out.print("lease: [yellow]free[/] (no alerting service running)")
    elif not held:
        out.print(
            f"lease: [red]stale[/]: {escape(lease.holder)} last renewed it {lease.renewed} "
            "(the service stopped or hangs)"
        )
    else:
        out.print(f"lease: held by {escape(lease.holder)}, renewed {lease.renewed}")
    table = Table(
        "rule", "last run", "lag", "took", "hits", "alerts", "suppr.", "except.", "why", "errors"
    )
    for s in rules:
        table.add_row(
            escape(s.rule_name[:48]),
            _ago(s.last_run),
            "-" if s.lag_seconds is None else f"{s.lag_seconds:.1f}s",
            f"{s.duration_ms} ms",
            str(s.hits),
            str(s.alerts),
            str(s.suppressed),
            str(s.excepted),
            s.reason,
            f"[red]{s.errors}: {escape((s.error or '')[:60])}[/]" if s.errors else "0",
        )
    out.print(table)
    if not rules:
        out.print("no rule has run yet: start `iiswatch alerting run`")
    if not held:
        raise typer.Exit(EXIT_BACKEND)


def _lease_held(lease: Any, now: datetime) -> bool:
    """A holder that renewed within two lease times (the leader renews every third of one;
    clocks of two machines may differ by a little)."""
    if lease is None or not lease.holder:
        return False
    renewed = parse_time(lease.renewed) if lease.renewed else None
    if renewed is None:
        return True
    return now - renewed <= timedelta(seconds=2 * max(lease.ttl_seconds, 1.0))


@app.command()
def replay(
    rule: list[str] = typer.Option(..., "--rule", "-r", help="Rule id, id prefix or name."),
    start: str = typer.Option(..., "--from", help="Ingest time, ISO 8601 (inclusive)."),
    end: str = typer.Option(..., "--to", help="Ingest time, ISO 8601 (exclusive)."),
    config: Path | None = ALERTING_CONFIG,
    rules_dir: Path | None = RULES_DIR,
    deliver: bool = typer.Option(True, "--deliver/--no-deliver", help="Deliver the alerts."),
) -> None:
    """Evaluate a span of ingest time (a gap the service reported) as the service would,
    and put its alerts in the outbox. Alert ids are deterministic: replaying twice adds
    nothing."""
    from iiswatch.alerting.config import load_config
    from iiswatch.alerting.oneshot import run_once
    from iiswatch.rules.loader import load_rules, select

    cfg = load_config(config)
    settings = cfg.service
    t0, t1 = time_span(None, start, end)
    rules = [lr.rule for lr in select(load_rules(rules_dir or default_rules_dir()), rule)]
    es = client_for(Purpose.ALERTING)
    result = run_once(
        es,
        rules,
        (t0, t1),
        cfg,
        deliver=deliver,
        default_destinations=settings.default_destinations,
    )
    out.print(f"{len(result.alerts)} alert(s), {result.new} new in the outbox")


def _ago(value: Any) -> str:
    if not value:
        return "never"
    t = parse_time(str(value))
    return f"{(datetime.now(UTC) - t).total_seconds():.0f}s ago"
