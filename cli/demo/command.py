"""`iiswatch demo`: write a day of IIS logs with a web-shell attack hidden in benign traffic,
ingest it into the local Elasticsearch, and hunt the attacker down the way an analyst would,
printing each search as the `iiswatch search` command that reproduces it."""

from __future__ import annotations

import os
import shlex
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer
from elasticsearch import Elasticsearch
from rich.markup import escape
from rich.panel import Panel

from iiswatch import paths
from iiswatch.cli.demo.sample_day import SampleManifest, write_sample_day
from iiswatch.cli.output import err, out
from iiswatch.cli.render import print_search_result
from iiswatch.config import Purpose
from iiswatch.elastic.client import backend_errors, client_for
from iiswatch.elastic.indices import DEADLETTER_ALIAS
from iiswatch.elastic.search import SearchResult, TimeRange, count, run_search
from iiswatch.errors import BackendUnavailable
from iiswatch.ingest.batch import ingest_files
from iiswatch.ingest.files import expand_inputs

DEMO_HOST = "web01.demo.example"
WEB_SHELL_RULES = ("web shell", "first request to a script in an upload folder")
SHORT_FIELDS = [
    "@timestamp",
    "source.ip",
    "http.request.method",
    "url.original",
    "http.response.status_code",
]
UPLOADED_SCRIPTS = r"url.extension:(aspx OR ashx OR asmx OR asp) AND iiswatch.url.path:\/uploads\/*"
COMMAND_QUERY = (
    "iiswatch.url.query.text:(whoami OR ipconfig OR powershell OR net) "
    "OR iiswatch.url.query:*cmd.exe*"
)


def demo(
    out_dir: Path = typer.Option(
        None, "--out", help="Where to write the sample logs (default: the state dir)."
    ),
    day: str = typer.Option(None, "--day", help="UTC day of the sample logs (default: yesterday)."),
    requests: int = typer.Option(20000, "--requests", min=1000, help="Benign requests to write."),
) -> None:
    """Run the analyst's walk-through on a generated day of IIS logs.

    Writes the logs, ingests them (again: nothing is duplicated), then finds the command
    execution, the web shell behind it, the one client using it, and everything that
    client did - each step shown as the `iiswatch search` command that reproduces it.
    """
    the_day = date.fromisoformat(day) if day else (datetime.now(UTC) - timedelta(days=1)).date()
    target = out_dir or paths.state_dir() / "demo" / "logs"
    manifest = write_sample_day(target, day=the_day, requests=requests)
    _say(
        "1. A day of IIS logs",
        f"Wrote {manifest.total_lines:,} lines for {the_day} under {target}\n"
        f"({manifest.distinct_client_ips:,} clients; the W3C #Fields layout changes mid-file; "
        f"{manifest.malformed_lines} malformed lines; an HTTP.sys HTTPERR log).",
    )

    writer = client_for(Purpose.WRITER)
    with backend_errors(writer):
        summary = ingest_files(writer, expand_inputs([str(target)]), host_name=DEMO_HOST)
    _say(
        "2. Ingest",
        f"iiswatch ingest {shlex.quote(str(target))} --host-name {DEMO_HOST}\n"
        f"{summary.indexed:,} events indexed, {summary.already_present:,} already present, "
        f"{summary.dead_lettered:,} dead-lettered, {summary.failed} failed "
        f"in {summary.seconds:.1f}s ({summary.lines_per_second:,.0f} lines/s)",
    )
    if summary.failed:
        raise BackendUnavailable(
            f"{summary.failed} documents were not stored", "run the demo again"
        )

    reader = client_for(Purpose.READER)
    rng = TimeRange(
        datetime(the_day.year, the_day.month, the_day.day, tzinfo=UTC),
        datetime(the_day.year, the_day.month, the_day.day, tzinfo=UTC) + timedelta(days=1),
    )
    _wait_searchable(reader, rng, manifest)
    window = f"--from {rng.start.isoformat()} --to {rng.end.isoformat()}"  # type: ignore[union-attr]

    _step(
        reader,
        rng,
        window,
        "3. Command words in query strings",
        "Decoded, lower-cased query fields catch `Cmd.ExE+/c+whoami` and `%43md.exe` alike - "
        "and also benign site searches for the same words: look at the paths.",
        COMMAND_QUERY,
        fields=["source.ip", "url.path", "iiswatch.url.query"],
        top="url.path",
        limit=10,
    )
    scripts = _step(
        reader,
        rng,
        window,
        "4. Scripts where only uploads belong",
        "An .aspx page under the upload folder is code someone uploaded.",
        UPLOADED_SCRIPTS,
        top="url.path",
        limit=0,
    )
    if not scripts.top:
        err.print("[yellow]no script found under an upload folder[/]")
        raise typer.Exit(1)
    shell = str(scripts.top[0][0])

    who = _step(
        reader,
        rng,
        window,
        "5. Who talks to that script?",
        f"Every request for {escape(shell)}, by client.",
        f'url.path:"{_quote(shell)}"',
        top="source.ip",
        limit=0,
    )
    attacker = str(who.top[0][0]) if who.top else ""

    _step(
        reader,
        rng,
        window,
        "6. Everything that client did",
        "Reconnaissance 404s, the upload, the first request to the new script, the commands.",
        f'source.ip:"{attacker}"',
        fields=SHORT_FIELDS,
        limit=60,
        oldest_first=True,
    )
    agents = _step(
        reader,
        rng,
        window,
        "7. What is unique about it",
        "Its user agents, and how many other clients share each.",
        f'source.ip:"{attacker}"',
        top="user_agent.original",
        limit=0,
    )
    for agent, _n in agents.top or []:
        q = f'user_agent.original:"{_quote(str(agent))}" AND NOT source.ip:"{attacker}"'
        out.print(f"other clients' requests with {escape(str(agent))!r}: {count(reader, q, rng)}")

    dead = count(reader, f'host.name:"{DEMO_HOST}"', TimeRange(), index=DEADLETTER_ALIAS)
    _say(
        "8. Nothing vanished",
        f"{dead} malformed lines are in the dead-letter index with their raw text and reason:\n"
        f"iiswatch search 'host.name:\"{DEMO_HOST}\"' --index {DEADLETTER_ALIAS} "
        "--fields log.offset,error.message,event.original",
    )

    tickets = _detect_and_deliver(rng)

    from iiswatch.respond.demo import demo_response  # step 10: block and quarantine

    # the test IIS host lives beside the logs, never inside them (ingest reads that folder)
    host_dir = target.with_name(target.name + "-respond")
    responded = demo_response(host_dir, DEMO_HOST, attacker, shell, tickets, _say)
    found = attacker == manifest.attacker_ip and shell == manifest.shell_path
    ok = found and bool(tickets) and responded
    verdict = "[green]found the planted attacker and web shell[/]" if ok else "[red]missed[/]"
    _say(
        "Result",
        f"attacker {attacker}, web shell {escape(shell)}: {verdict}\n"
        f"tickets for the web shell: {len(tickets)}; blocked and quarantined: {responded}\n"
        "Open Kibana on this Elasticsearch with a data view `iis-*` to explore further.",
    )
    if not ok:
        raise typer.Exit(1)


def _step(
    es: Elasticsearch,
    rng: TimeRange,
    window: str,
    title: str,
    why: str,
    query: str,
    *,
    fields: list[str] | None = None,
    top: str | None = None,
    limit: int = 20,
    oldest_first: bool = False,
) -> SearchResult:
    cmd = f"iiswatch search {shlex.quote(query)} {window}"
    if fields:
        cmd += f" --fields {','.join(fields)} --limit {limit}"
    else:
        cmd += " --limit 0"
    if top:
        cmd += f" --top {top}"
    if oldest_first:
        cmd += " --oldest-first"
    _say(title, f"{why}\n[dim]$ {escape(cmd)}[/]")
    result = run_search(
        es,
        query,
        rng,
        fields=fields,
        limit=limit if fields else 0,
        top=top,
        oldest_first=oldest_first,
    )
    print_search_result(result, fields, top=top)
    return result


def _wait_searchable(es: Elasticsearch, rng: TimeRange, manifest: SampleManifest) -> None:
    """New documents become searchable at the next refresh (1 s); the writer may not force
    one (it can only create documents), so wait for the count instead."""
    want = manifest.events
    deadline = time.monotonic() + 30
    while count(es, "event.dataset:iis.access", rng) < want:
        if time.monotonic() > deadline:
            raise BackendUnavailable(
                "ingested events did not become searchable within 30 s", "iiswatch es status"
            )
        time.sleep(0.5)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _say(title: str, body: str) -> None:
    out.print(Panel(body, title=f"[bold]{title}[/]", title_align="left", expand=False))


def _detect_and_deliver(rng: TimeRange) -> list[str]:
    """Step 9: every rule of the pack replays the demo day window by window, as
    `iiswatch rules run` does, and its alerts go through the alerting service's own sink:
    each alert adds its risk to its client's incident, and an incident (not an alert) is
    what reaches a ticket — to Request Tracker when RT_URL/RT_TOKEN are set (scripts/demo
    starts RT when it can), else as ticket files. The attacker's findings are one ticket
    and its comments. Ids are deterministic, so a re-run opens no second ticket."""
    from iiswatch.alerting.config import AlertingConfig
    from iiswatch.alerting.incident_sink import IncidentSink
    from iiswatch.alerting.service_config import ServiceSettings
    from iiswatch.rules.backtest import backtest
    from iiswatch.rules.loader import load_rules

    rt_url, rt_token = os.environ.get("RT_URL"), os.environ.get("RT_TOKEN")
    folder = paths.state_dir() / "demo" / "tickets"
    if rt_url and rt_token:
        dest: dict[str, object] = {
            "type": "request_tracker",
            "url": rt_url,
            "token": rt_token,
            "queue": "General",
            "requestor": "soc@example.org",
        }
        where = f"Request Tracker at {rt_url}"
    else:
        argv = [sys.executable, "-m", "iiswatch.alerting.ticket_file", str(folder)]
        dest = {"type": "command", "timeout": "30s", "argv": argv}
        where = f"ticket files in {folder} (set RT_URL and RT_TOKEN for Request Tracker)"
    config = AlertingConfig.model_validate({"destinations": {"servicedesk": dest}})
    settings = ServiceSettings.model_validate({"default_destinations": ["servicedesk"]})

    es = client_for(Purpose.ALERTING)
    sink = IncidentSink(es, config, settings, owner="iiswatch-demo")
    rules = [lr.rule for lr in load_rules()]
    assert rng.start is not None and rng.end is not None
    found = [
        (alert, rule)
        for rule in rules
        for alert in backtest(es, rule, rng.start, rng.end, index="iis-access-*").alerts
    ]
    # in the order the day happened, delivering after each, as the running service would:
    # the incident's ticket opens with the finding that makes it, later ones are comments
    found.sort(key=lambda ar: ar[0].last_event)
    for alert, rule in found:
        sink([alert], ["servicedesk"], rule)
        sink.deliver()
    alerts = [alert for alert, _rule in found]
    es.indices.refresh(index=sink.store.index)
    tickets: list[str] = []
    lines = []
    seen: set[str] = set()
    for alert in alerts:
        for inc in sink.store.with_finding(alert.alert_id) or []:
            if inc.incident_id in seen:
                continue
            seen.add(inc.incident_id)
            inc = sink.store.get(inc.incident_id) or inc
            states = (inc.delivery.get("states") or {}).values()
            refs = [str(st.get("url") or st.get("ticket_id") or "") for st in states]
            comments = max((len(st.get("posted") or []) for st in states), default=0)
            lines.append(
                f"incident {inc.incident_id} {inc.doc.get('entity', {}).get('value')}: "
                f"{inc.state}, risk {inc.doc.get('risk_score')}, "
                f"{len(inc.findings)} finding(s) ({comments} in the ticket) "
                f"{escape(', '.join(refs))}"
            )
            if any(
                str(r.get("name", "")).lower().startswith(WEB_SHELL_RULES)
                for r in inc.doc.get("rules") or []
            ):
                tickets.extend(r for r in refs if r)
    fired = sorted({f"{a.rule_name} ({', '.join(a.source_ips)})" for a in alerts})
    _say(
        "9. Detection rules and the ticket",
        f"{len(rules)} rules from searches/ replayed the day as the scheduler would; "
        f"{len(alerts)} alerts:\n"
        + "\n".join(escape(f) for f in fired)
        + f"\n\none ticket per attacker, delivered to {escape(where)}:\n"
        + "\n".join(lines)
        + "\n[dim]$ iiswatch rules run --all --from ... --to ... --incidents ; "
        "iiswatch incidents list[/]",
    )
    return tickets
