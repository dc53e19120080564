"""`iiswatch incidents …` and `iiswatch silence …`: the on-call view of risk-based
alerting — incidents (one per attacker) listed, shown with their evidence, acknowledged,
snoozed, resolved; silences added, listed, removed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from iiswatch.cli.output import err, out, print_json
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.errors import UsageError

app = typer.Typer(
    help="Incidents (one per attacker): list, show, ack, snooze, resolve.", no_args_is_help=True
)
silence_app = typer.Typer(
    help="Silences: keep matching alerts out of incidents and tickets until a time.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print JSON.")
ID = typer.Argument(..., help="Incident id, or a unique prefix of it.")
SEVERITIES = ("low", "medium", "high", "critical")


def when(text: str, now: datetime | None = None) -> datetime:
    """`8h`, `30m`, `2d` from now, or an ISO 8601 time."""
    from iiswatch.cli.options import duration_arg as parse_duration
    from iiswatch.cli.options import time_arg as parse_time

    now = now or datetime.now(UTC)
    text = text.strip()
    if text and text[-1] in "smhdw" and text[:-1].strip().isdigit():
        return now + parse_duration(text)
    return parse_time(text)


def _store() -> Any:
    from iiswatch.alerting.incidents import IncidentStore

    return IncidentStore(client_for(Purpose.ALERTING))


def short_time(value: Any) -> str:
    """`2026-11-25 12:19:23` from an ISO time (UTC), for a table column."""
    if not isinstance(value, str):
        return "-"
    return value.replace("T", " ")[:19]


def _tickets(doc: dict[str, Any]) -> str:
    states = (doc.get("delivery") or {}).get("states") or {}
    return ", ".join(
        f"{name}#{st.get('ticket_id')}" if st.get("ticket_id") else name
        for name, st in states.items()
        if st.get("opened")
    )


@app.command("list")
def list_(
    state: list[str] | None = typer.Option(
        None, "--state", help="open, acked, snoozed, resolved, watching (default: the first three)."
    ),
    rule: str | None = typer.Option(None, "--rule", help="Only incidents with this rule (name)."),
    severity: str | None = typer.Option(None, "--severity", help="low, medium, high, critical."),
    since: str | None = typer.Option(None, "--since", help="Last event within this: 2h, 1d."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10000),
    json_out: bool = JSON,
) -> None:
    """Incidents, most recently changed first: when, id, state, severity, risk, entity,
    rules, ticket."""
    from iiswatch.alerting.incidents import STATES
    from iiswatch.cli.options import duration_arg as parse_duration

    for s in state or []:
        if s not in STATES:
            raise UsageError(f"unknown state {s!r}", f"use one of: {', '.join(STATES)}")
    if severity and severity not in SEVERITIES:
        raise UsageError(f"unknown severity {severity!r}", f"use one of: {', '.join(SEVERITIES)}")
    start = datetime.now(UTC) - parse_duration(since) if since else None
    found = _store().list(states=state, rule=rule, severity=severity, since=start, limit=limit)
    if json_out:
        print_json([i.doc for i in found])
        return
    table = Table(
        "last event (UTC)", "incident", "state", "severity", "risk", "entity", "rules", "ticket"
    )
    for i in found:
        d = i.doc
        table.add_row(
            short_time(d.get("last_event")),
            i.incident_id,
            i.state,
            str(d.get("severity", "")),
            str(d.get("risk_score", "")),
            escape(str((d.get("entity") or {}).get("value", ""))),
            escape(", ".join(d.get("rule_names") or [])),
            escape(_tickets(d)),
        )
    table.columns[1].no_wrap = True
    out.print(table)
    if not found:
        err.print(
            "no incidents" + (" matching the filters" if state or rule or severity or since else "")
        )


@app.command()
def show(incident_id: str = ID, json_out: bool = JSON) -> None:
    """One incident: its timeline, each rule's description and response, the evidence
    lines, the search that reproduces them, and its tickets."""
    from iiswatch.alerting.incident_delivery import open_message
    from iiswatch.alerting.templates import first_lines

    inc = _store().find(incident_id)
    if json_out:
        print_json(inc.doc)
        return
    d = inc.doc
    story = open_message(d)["incident"]
    rows = [
        ("incident", inc.incident_id),
        (
            "state",
            inc.state + (f" until {d.get('snoozed_until')}" if inc.state == "snoozed" else ""),
        ),
        ("entity", f"{story['entity'].get('field')}={story['entity'].get('value')}"),
        ("severity", f"{d.get('severity')} (risk {d.get('risk_score')})"),
        (
            "opened",
            f"{d.get('opened_at') or '-'}: {d.get('opened_by') or 'not yet (below the threshold)'}",
        ),
        ("events", f"{d.get('event_count')}: {d.get('first_event')} … {d.get('last_event')}"),
        ("servers", ", ".join(story["hosts"]) or "-"),
        ("sites", ", ".join(story["sites"]) or "-"),
        ("tickets", _tickets(d) or "-"),
        ("search", story["search"]),
    ]
    table = Table(show_header=False, title=f"incident {inc.incident_id}", title_justify="left")
    for k, v in rows:
        table.add_row(k, escape(str(v)))
    out.print(table)
    timeline = Table(
        "first event",
        "last event",
        "rule",
        "severity",
        "risk",
        "events",
        "alert id",
        title="timeline",
        title_justify="left",
    )
    for t in story["timeline"]:
        timeline.add_row(
            short_time(t["first_event"]),
            short_time(t["last_event"]),
            escape(str(t["rule"])),
            str(t["severity"]),
            str(t["risk_score"]),
            str(t["event_count"]),
            str(t["alert_id"]),
        )
    out.print(timeline)
    for r in story["rules"]:
        out.print(f"[bold]{escape(str(r.get('name')))}[/]")
        if r.get("description"):
            out.print(escape(str(r["description"])))
        if r.get("response"):
            out.print("[bold]response:[/] " + escape(str(r["response"])))
    samples = [s for f in inc.findings for s in f.get("samples") or []]
    out.print("[bold]evidence:[/]")
    for line in first_lines(samples, 20):
        out.print("  " + escape(line), soft_wrap=True)
    for st in ((d.get("delivery") or {}).get("states") or {}).values():
        if st.get("url"):
            out.print(escape(str(st["url"])))


def _set(incident_id: str, state: str, by: str | None, until: datetime | None = None) -> None:
    inc = _store().set_state(incident_id, state, by=by, until=until)
    extra = f" until {inc.doc.get('snoozed_until')}" if state == "snoozed" else ""
    out.print(f"incident {inc.incident_id}: {state}{extra}")


BY = typer.Option(None, "--by", help="Who (recorded in the incident's history).")


@app.command()
def ack(incident_id: str = ID, by: str | None = BY) -> None:
    """Acknowledge: someone is on it (later findings still arrive as comments)."""
    _set(incident_id, "acked", by)


@app.command()
def snooze(
    incident_id: str = ID,
    until: str = typer.Option(..., "--until", help="8h, 2d or an ISO time."),
    by: str | None = BY,
) -> None:
    """No comments until then; findings keep adding up and are posted after."""
    _set(incident_id, "snoozed", by, when(until))


@app.command()
def resolve(
    incident_id: str = ID,
    by: str | None = BY,
    config: Path | None = typer.Option(None, "--config", "-c", help="Alerting config."),
) -> None:
    """Resolve the incident and its tickets (destinations that can). A later finding for
    the same entity starts a new incident."""
    from iiswatch.alerting.config import load_config
    from iiswatch.alerting.destinations import build

    store = _store()
    inc = store.find(incident_id)
    states = (inc.doc.get("delivery") or {}).get("states") or {}
    if any(st.get("ticket_id") for st in states.values()):
        cfg = load_config(config)
        for name, st in states.items():
            resolver = getattr(build(name, cfg), "resolve", None)
            if resolver is not None and st.get("ticket_id"):
                resolver(str(st["ticket_id"]))
                out.print(f"{escape(name)}: ticket {escape(str(st['ticket_id']))} resolved")
    _set(inc.incident_id, "resolved", by)


# -- silences ---------------------------------------------------------------------------


@silence_app.command("add")
def silence_add(
    match: list[str] = typer.Option(
        ...,
        "--match",
        "-m",
        help="field=value, e.g. source.ip=203.0.113.9 (repeatable: all must hold).",
    ),
    until: str = typer.Option(..., "--until", help="8h, 2d or an ISO time."),
    reason: str = typer.Option(..., "--reason", help="Why."),
    owner: str = typer.Option(..., "--owner", help="Who answers for it."),
) -> None:
    """Keep matching rule alerts out of incidents and tickets until then (the alerting
    service checks silences for every alert)."""
    from iiswatch.alerting.silences import SilenceStore, parse_matches

    s = SilenceStore(client_for(Purpose.ALERTING)).add(
        parse_matches(match), until=when(until), reason=reason, owner=owner
    )
    out.print(f"silence {s.silence_id} until {s.until.isoformat(timespec='seconds')}")


@silence_app.command("list")
def silence_list(
    all_: bool = typer.Option(False, "--all", help="Expired ones too."), json_out: bool = JSON
) -> None:
    """Silences, active ones first."""
    from iiswatch.alerting.silences import SilenceStore

    store = SilenceStore(client_for(Purpose.ALERTING))
    now = datetime.now(UTC)
    found = store.all() if all_ else store.active(now)
    if json_out:
        print_json([s.to_doc() for s in found])
        return
    table = Table("silence", "match", "until (UTC)", "owner", "reason", "active")
    for s in found:
        table.add_row(
            s.silence_id,
            escape(", ".join(f"{k}={v}" for k, v in s.match.items())),
            s.until.isoformat(timespec="seconds").replace("+00:00", ""),
            escape(s.owner),
            escape(s.reason),
            "yes" if s.active(now) else "no",
        )
    table.columns[0].no_wrap = True
    out.print(table)
    if not found:
        err.print("no active silences" if not all_ else "no silences")


@silence_app.command("remove")
def silence_remove(
    silence_id: str = typer.Argument(..., help="Silence id or unique prefix."),
) -> None:
    """End a silence now."""
    from iiswatch.alerting.silences import SilenceStore

    s = SilenceStore(client_for(Purpose.ALERTING)).remove(silence_id)
    out.print(f"silence {s.silence_id} removed")
