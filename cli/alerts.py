"""`iiswatch alerts …`: the alert outbox — list, show, retry failed deliveries, check a
destination with a sample alert, and print what would be sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from iiswatch.alerting.config import load_config
from iiswatch.alerting.delivery import resolve, retry
from iiswatch.alerting.destinations import build
from iiswatch.alerting.outbox import STATUSES, Outbox, Record
from iiswatch.alerting.templates import Templates, first_lines, sample_alert
from iiswatch.cli.options import ALERTING_CONFIG, JSON
from iiswatch.cli.output import err, out, print_json
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.errors import EXIT_BACKEND, UsageError

app = typer.Typer(
    help="Alerts and their delivery: list, show, retry, resolve, test-destination, render.",
    no_args_is_help=True,
)


def _outbox() -> Outbox:
    return Outbox(client_for(Purpose.ALERTING))


def _get(outbox: Outbox, alert_id: str) -> Record:
    return outbox.find(alert_id)


def _tickets(rec: Record) -> str:
    routed = rec.delivery.get("routed") or {}
    if routed.get("to") == "incident":
        return "-> incident"
    if routed.get("to") == "silence":
        return f"silenced ({routed.get('silence_id')})"
    return ", ".join(
        f"{t.get('destination')}#{t.get('id')}" if t.get("id") else str(t.get("destination"))
        for t in rec.delivery.get("tickets") or []
    )


def _group(rec: Record) -> str:
    group = rec.doc.get("group") or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(group.items()))


@app.command("list")
def list_(
    failed: bool = typer.Option(False, "--failed", help="Only alerts whose delivery failed."),
    status: str | None = typer.Option(None, "--status", help=f"One of: {', '.join(STATUSES)}."),
    rule: str | None = typer.Option(None, "--rule", help="Rule name, or id prefix."),
    severity: str | None = typer.Option(None, "--severity", help="low, medium, high, critical."),
    since: str | None = typer.Option(None, "--since", help="Raised within this: 2h, 1d."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10000, help="At most this many."),
    json_out: bool = JSON,
) -> None:
    """Alerts in the outbox, newest first: when, id (a unique prefix is enough for
    `show`), delivery status, rule, group, and where they went."""
    from iiswatch.cli.options import duration_arg as parse_duration

    if failed and status and status != "failed":
        raise UsageError("--failed and --status disagree", "use one of them")
    start = datetime.now(UTC) - parse_duration(since) if since else None
    records = _outbox().list(
        "failed" if failed else status, limit=limit, rule=rule, severity=severity, since=start
    )
    if json_out:
        print_json([r.doc for r in records])
        return
    table = Table(
        "raised (UTC)",
        "alert id",
        "status",
        "severity",
        "rule",
        "group",
        "events",
        "tries",
        "ticket",
        "last error",
    )
    table.columns[1].no_wrap = True  # an id cut in two cannot be copied
    for r in records:
        d = r.delivery
        style = {"delivered": "green", "failed": "red", "new": "yellow"}.get(r.status, "")
        table.add_row(
            str(d.get("created", "")).replace("T", " ")[:19],
            r.alert_id,
            f"[{style}]{r.status}[/]" if style else r.status,
            str(r.doc.get("severity", "")),
            escape(str((r.doc.get("rule") or {}).get("name", ""))),
            escape(_group(r)),
            str(r.doc.get("event_count", "")),
            str(d.get("attempt_count", 0)),
            escape(_tickets(r)),
            escape(str(d.get("last_error") or ""))[:80] if r.status != "delivered" else "",
        )
    out.print(table)
    if not records:
        err.print("no alerts" + (f" with status {status or 'failed'}" if failed or status else ""))


@app.command()
def show(
    alert_id: str = typer.Argument(..., help="The alert id, or a unique prefix of it."),
    json_out: bool = JSON,
) -> None:
    """One alert: what was found (evidence lines, the rule's description), where it was
    delivered, every attempt."""
    rec = _get(_outbox(), alert_id)
    if json_out:
        print_json(rec.doc)
        return
    doc, d = rec.doc, rec.delivery
    rule = doc.get("rule") or {}
    rows = [
        ("alert id", rec.alert_id),
        ("status", rec.status),
        ("rule", f"{rule.get('name', '')} ({rule.get('id', '')})"),
        ("severity", f"{doc.get('severity', '')} (risk {doc.get('risk_score', '')})"),
        ("group", _group(rec)),
        (
            "events",
            f"{doc.get('event_count', '')}: {doc.get('first_event')} … {doc.get('last_event')}",
        ),
        ("source ips", ", ".join((doc.get("source") or {}).get("ip") or [])),
        ("destinations", ", ".join(d.get("destinations") or [])),
        ("tickets", _tickets(rec) or "-"),
        ("created", str(d.get("created", ""))),
        ("next attempt", str(d.get("next_attempt_at", "")) if rec.status == "new" else "-"),
        ("last error", str(d.get("last_error") or "-")),
    ]
    table = Table(show_header=False, title=f"alert {rec.alert_id}", title_justify="left")
    for k, v in rows:
        table.add_row(k, escape(v))
    out.print(table)
    attempts = Table(
        "at",
        "destination",
        "outcome",
        "ticket",
        "error / detail",
        title="attempts",
        title_justify="left",
    )
    for a in d.get("attempts") or []:
        detail = a.get("error") or orjson.dumps(a.get("detail") or {}).decode()
        attempts.add_row(
            str(a.get("at")),
            str(a.get("destination")),
            str(a.get("outcome")),
            str(a.get("ticket_id") or ""),
            escape(detail[:160]),
        )
    out.print(attempts)
    for t in d.get("tickets") or []:
        if t.get("url"):
            out.print(f"{escape(str(t['destination']))}: {escape(t['url'])}")
    if (d.get("routed") or {}).get("to") == "incident":
        from iiswatch.alerting.incidents import IncidentStore

        for inc in IncidentStore(client_for(Purpose.ALERTING)).with_finding(rec.alert_id):
            out.print(f"incident: {inc.incident_id} ({inc.state}; `iiswatch incidents show`)")
    description = _rule_description(str(rule.get("id", "")))
    if description:
        out.print(f"[bold]rule:[/] {escape(description)}")
    out.print("[bold]evidence:[/]")
    for line in first_lines(doc.get("samples") or [], 20) or ["(no sample lines were kept)"]:
        out.print("  " + escape(line), soft_wrap=True)


def _rule_description(rule_id: str) -> str | None:
    """The rule's description from the rule files (the alert does not carry it)."""
    from iiswatch.rules.loader import scan_rules

    try:
        from iiswatch.rules.loader import default_rules_dir

        loaded, _problems = scan_rules(default_rules_dir())
    except Exception:  # no rules dir here: the alert is still worth showing
        return None
    for lr in loaded:
        if lr.rule.rule_id == rule_id:
            return lr.rule.description
    return None


@app.command("retry")
def retry_(
    alert_id: str = typer.Argument(..., help="The failed alert's id."),
    config: Path | None = ALERTING_CONFIG,
    json_out: bool = JSON,
) -> None:
    """Replay a failed alert now: a new delivery round to the destinations that did not
    take it (those that did are not sent to again; a ticket is never opened twice)."""
    cfg = load_config(config)
    report = retry(client_for(Purpose.ALERTING), cfg, alert_id)
    if report is None:
        err.print("another process claimed the alert first; see `iiswatch alerts show ID`")
        raise typer.Exit(EXIT_BACKEND)
    if json_out:
        print_json(report.as_dict())
    else:
        for r in report.results:
            where = f" ticket {r.ticket_id}" if r.ticket_id else ""
            out.print(f"{escape(r.destination)}: {r.action}{escape(where)} {escape(r.url or '')}")
        for name, e in report.errors.items():
            err.print(f"[bold red]{escape(name)}:[/] {escape(e)}")
        out.print(f"alert {alert_id}: {report.status}")
    if report.status != "delivered":
        raise typer.Exit(EXIT_BACKEND)


@app.command("resolve")
def resolve_(
    alert_id: str = typer.Argument(..., help="The alert id."),
    config: Path | None = ALERTING_CONFIG,
) -> None:
    """Resolve the tickets the alert opened (Request Tracker) and mark it resolved."""
    done = resolve(client_for(Purpose.ALERTING), load_config(config), alert_id)
    out.print(f"alert {alert_id}: resolved" + (f" (tickets {', '.join(done)})" if done else ""))


@app.command("test-destination")
def test_destination(
    name: str = typer.Argument(..., help="A destination from the alerting config."),
    config: Path | None = ALERTING_CONFIG,
    json_out: bool = JSON,
) -> None:
    """Send a sample alert (the incident's web shell, with a unique id) to one destination,
    without the outbox, to check URL, credentials, queue and template. It opens a real
    ticket or message."""
    cfg = load_config(config)
    dest = build(name, cfg)
    alert = sample_alert(datetime.now(UTC), suffix=f"test-{uuid.uuid4().hex[:12]}")
    alert["group"] = {"source.ip": "203.0.113.9", "iiswatch.test": alert["alert_id"]}
    result = dest.deliver(alert)
    if json_out:
        print_json(result.as_dict())
        return
    where = f" ticket {result.ticket_id}" if result.ticket_id else ""
    out.print(f"{escape(name)}: {result.action}{escape(where)} {escape(result.url or '')}")


@app.command()
def render(
    alert_id: str | None = typer.Argument(None, help="An alert id from the outbox."),
    sample: bool = typer.Option(False, "--sample", help="Render the built-in sample alert."),
    destination: str = typer.Option(..., "--destination", "-d", help="Destination name."),
    config: Path | None = ALERTING_CONFIG,
) -> None:
    """Print what a destination would be sent for an alert (JSON), without sending it.
    Secrets (URLs, headers, tokens) are not printed."""
    if (alert_id is None) == (not sample):
        raise UsageError("give an alert id or --sample", "e.g. `alerts render --sample -d NAME`")
    cfg = load_config(config)
    alert: dict[str, Any]
    if sample:
        alert = sample_alert()
    else:
        assert alert_id is not None
        alert = _get(_outbox(), alert_id).alert
    dest = build(destination, cfg, Templates.from_config(cfg))
    print_json(dest.preview(alert))
