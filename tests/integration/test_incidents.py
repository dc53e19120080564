"""Incidents against the real Elasticsearch and Request Tracker: risk adds up per attacker
to one ticket, later findings are comments on it, a web-shell rule opens one at once,
silences hold alerts back, a late event's ticket leads to it, and restarts, two replicas
and a deliverer that died after RT took the ticket still give one ticket per incident.

Each test has an incidents index and a client address of its own (the outbox and the
silences index are shared: ids and addresses are unique to the test)."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import prison
import pytest
from elasticsearch import Elasticsearch

from iiswatch.alerting.config import AlertingConfig
from iiswatch.alerting.destinations import build
from iiswatch.alerting.incident_delivery import open_message
from iiswatch.alerting.incident_sink import IncidentSink
from iiswatch.alerting.outbox import ALERTS_INDEX
from iiswatch.alerting.risk import incident_id
from iiswatch.alerting.service_config import ServiceSettings
from iiswatch.alerting.silences import SilenceStore
from iiswatch.elastic.search import TimeRange, build_query
from iiswatch.ingest.batch import ingest_files
from iiswatch.rules.alert import Alert
from iiswatch.rules.model import Rule
from tests.integration.alerting_support import Rt, alerting_client, rt_from_env
from tests.integration.conftest import delete_matching

pytestmark = pytest.mark.integration

FIELDS = (
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken"
)


def rule(name: str, risk: int, severity: str = "medium", **extra: Any) -> Rule:
    return Rule.model_validate(
        {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": f"{name}: what this rule means (test)",
            "author": "tests",
            "status": "test",
            "severity": severity,
            "risk_score": risk,
            "false_positives": [f"{name}: a benign cause (test)"],
            "response": f"{name}: check the thing, then do the thing (test)",
            "type": "match",
            "lucene": "url.path:*",
            "group_by": ["source.ip"],
        }
        | extra
    )


@pytest.fixture
def rt() -> Rt:
    return rt_from_env()


class Bench:
    """A sink like the service's, on an incidents index of the test's own, delivering to
    the real RT; `alert` makes rule alerts for the test's attacker address."""

    def __init__(self, es: Elasticsearch, rt: Rt) -> None:
        self.es = es
        self.rt = rt
        self.index = f"iiswatch-incidents-test-{uuid.uuid4().hex[:12]}"
        self.ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        self.config = AlertingConfig.model_validate(
            {
                "kibana_url": "https://kibana.example.org:5601",
                "destinations": {
                    "rt": {"type": "request_tracker", "url": rt.url, "token": rt.token}
                },
            }
        )
        self.settings = ServiceSettings.model_validate({"default_destinations": ["rt"]})
        self.alert_ids: list[str] = []
        self.sinks: list[IncidentSink] = []

    def sink(self, owner: str = "replica-a") -> IncidentSink:
        s = IncidentSink(
            self.es, self.config, self.settings, owner=owner, incidents_index=self.index
        )
        self.sinks.append(s)
        return s

    def alert(
        self, r: Rule, at: datetime | None = None, *, ip: str | None = None, n: int = 3
    ) -> Alert:
        t = at or datetime.now(UTC) - timedelta(minutes=1)
        ip = ip or self.ip
        aid = uuid.uuid4().hex
        self.alert_ids.append(aid)
        samples = [
            {
                "@timestamp": (t + timedelta(seconds=i)).isoformat(),
                "host.name": "web01",
                "url": {"domain": "shop.example.org"},
                "event": {"original": f"line {i} from {ip} for {r.name}"},
            }
            for i in range(n)
        ]
        return Alert(
            alert_id=aid,
            rule_id=r.rule_id,
            rule_name=r.name,
            rule_type=r.type,
            severity=r.severity,
            risk_score=r.risk_score,
            mitre=[],
            tags=[],
            group={"source.ip": ip},
            source_ips=[ip],
            first_event=t,
            last_event=t + timedelta(seconds=n - 1),
            event_count=n,
            samples=samples,
            window_start=datetime.now(UTC) - timedelta(minutes=1),
            window_end=datetime.now(UTC),
            time_field="event.ingested",
        )

    def incident(self, sink: IncidentSink, ip: str | None = None) -> Any:
        """The address's first incident, read in real time (its id is deterministic)."""
        return sink.store.get(incident_id("source.ip", ip or self.ip, 1))

    def tickets(self, incident_id: str) -> list[str]:
        return self.rt.tickets_for_alert(incident_id)

    def cleanup(self) -> None:
        self.es.indices.delete(index=self.index, ignore_unavailable=True)
        if self.alert_ids:
            delete_matching(self.es, ALERTS_INDEX, {"terms": {"alert_id": self.alert_ids}})


@pytest.fixture
def bench(rt: Rt) -> Iterator[Bench]:
    b = Bench(alerting_client(), rt)
    yield b
    b.cleanup()


def _bodies(rt: Rt, ticket_id: str) -> list[tuple[str, str]]:
    return [(c["Subject"], c["Content"]) for c in rt.contents(ticket_id)]


def test_risk_adds_up_to_one_ticket_and_later_findings_become_comments(bench: Bench) -> None:
    sink = bench.sink()
    scan = rule("Test scanner user agent", 50)
    sqli = rule("Test SQL injection", 60, "high")
    shell = rule("Test web shell", 95, "critical")

    sink([bench.alert(scan)], ["rt"], scan)
    sink([bench.alert(scan)], ["rt"], scan)  # the same rule again: still one piece of evidence
    sink.deliver()
    inc = bench.incident(sink)
    assert inc.state == "watching" and inc.doc["risk_score"] == 50
    assert bench.tickets(inc.incident_id) == []

    sink([bench.alert(sqli)], ["rt"], sqli)  # 110: over the threshold
    sink.deliver()
    inc = bench.incident(sink)
    assert inc.state == "open" and inc.doc["risk_score"] == 110
    [ticket] = bench.tickets(inc.incident_id)
    [(subject, body)] = _bodies(bench.rt, ticket)
    assert bench.ip in subject and "web01" in subject
    for text in (
        "Server:        web01",
        "Site:          shop.example.org",
        "Test SQL injection: what this rule means (test)",
        "Test SQL injection: a benign cause (test)",
        "Test SQL injection: check the thing, then do the thing (test)",
        "Test scanner user agent: what this rule means (test)",
        f"iiswatch search 'source.ip:\"{bench.ip}\"' --from ",
        "https://kibana.example.org:5601/app/discover#/",
        f"line 0 from {bench.ip} for Test SQL injection",
    ):
        assert text in body, text
    assert body.count("Test scanner user agent (medium, risk 50") == 2  # both in the timeline

    sink([bench.alert(shell)], ["rt"], shell)
    sink.deliver()
    inc = bench.incident(sink)
    assert inc.doc["severity"] == "critical" and inc.doc["risk_score"] == 205
    assert bench.tickets(inc.incident_id) == [ticket]
    contents = _bodies(bench.rt, ticket)
    assert len(contents) == 2
    comment_subject, comment = contents[1]
    assert "new finding: Test web shell" in comment_subject
    assert "Test web shell: check the thing, then do the thing (test)" in comment
    assert "raised from high" in comment
    assert bench.rt.ticket(ticket)["Priority"] == "100"  # critical
    assert inc.delivery["pending"] is False


def test_a_rule_marked_always_opens_a_ticket_from_one_alert(bench: Bench) -> None:
    sink = bench.sink()
    shell = rule("Test web shell at once", 20, "critical", opens_incident="always")
    noise = rule("Test noise", 20, "low")
    noisy_ip = bench.ip.rsplit(".", 1)[0] + ".0"
    sink([bench.alert(noise, ip=noisy_ip)], ["rt"], noise)
    sink([bench.alert(shell)], ["rt"], shell)
    sink.deliver()
    inc = bench.incident(sink)
    assert inc.state == "open" and "at once" in inc.doc["opened_by"]
    assert len(bench.tickets(inc.incident_id)) == 1
    noisy = [
        i for i in sink.store.list(states=["watching"]) if i.doc["entity"]["value"] != bench.ip
    ]
    assert all(not i.delivery.get("states") for i in noisy)  # noise opened nothing


def test_a_silenced_address_opens_no_incident_and_its_alerts_are_kept(bench: Bench) -> None:
    silences = SilenceStore(bench.es)
    s = silences.add(
        {"source.ip": bench.ip},
        until=datetime.now(UTC) + timedelta(hours=1),
        reason="pentest",
        owner="tests",
    )
    try:
        sink = bench.sink()
        shell = rule("Test web shell silenced", 95, "critical", opens_incident="always")
        a = bench.alert(shell)
        sink([a], ["rt"], shell)
        sink.deliver()
        assert bench.incident(sink) is None
        rec = sink.outbox.get(a.alert_id)
        assert rec is not None
        assert rec.delivery["routed"] == {
            "to": "silence",
            "silence_id": s.silence_id,
            "reason": "pentest",
        }
    finally:
        silences.remove(s.silence_id)
    b = bench.alert(shell)
    sink([b], ["rt"], shell)  # the silence is over: the next alert opens the incident
    sink.deliver()
    assert bench.incident(sink).state == "open"


def test_a_late_events_ticket_leads_to_them_by_their_own_time(
    bench: Bench,
    admin_es: Elasticsearch,
    writer_es: Elasticsearch,
    reader_es: Elasticsearch,
    test_month: date,
    tmp_path: Path,
) -> None:
    """Events from the test month (decades ago) ingested now: the ticket's search command and
    Discover link cover their @timestamp, not the ingest window, and find them."""
    t = datetime(test_month.year, test_month.month, 3, 9, 30, tzinfo=UTC)
    rows = [FIELDS] + [
        f"{t + timedelta(seconds=i):%Y-%m-%d %H:%M:%S} 10.0.0.5 GET /uploads/x.aspx "
        f"cmd=whoami 443 - {bench.ip} Mozilla/5.0 - 200 0 0 15"
        for i in range(3)
    ]
    log = tmp_path / "u_ex_late.log"
    log.write_text("\r\n".join(rows) + "\r\n")
    assert ingest_files(writer_es, [log], host_name="late-host").indexed == 3

    sink = bench.sink()
    shell = rule("Test late web shell", 95, "critical", opens_incident="always")
    sink([bench.alert(shell, at=t)], ["rt"], shell)
    sink.deliver()
    inc = bench.incident(sink)
    [ticket] = bench.tickets(inc.incident_id)
    [(_, body)] = _bodies(bench.rt, ticket)

    command = re.search(r"iiswatch search (\S+) --from (\S+) --to (\S+)", body)
    assert command is not None
    query = command.group(1).strip("'")
    rng = TimeRange.from_options(None, command.group(2), command.group(3))
    admin_es.indices.refresh(index="iis-access-*")
    found = reader_es.search(index="iis-access-*", query=build_query(query, rng), size=10)
    assert found["hits"]["total"]["value"] == 3

    # `rules run --incidents` over the events' own time finds the same incident
    rule_file = tmp_path / "rules" / "late.yaml"
    rule_file.parent.mkdir()
    rule_file.write_text(
        f"""id: {uuid.uuid4()}
name: Test late web shell (file)
description: test
author: tests
status: test
severity: critical
risk_score: 95
opens_incident: always
type: match
lucene: 'host.name:late-host AND source.ip:"{bench.ip}"'
group_by: [source.ip]
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "iiswatch.cli.main", "rules", "run", "--all", "--incidents",
         "--json", "--rules-dir", str(rule_file.parent),
         "--from", (t - timedelta(minutes=1)).isoformat(),
         "--to", (t + timedelta(minutes=1)).isoformat()],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [offline] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert offline["source"]["ip"] == [bench.ip]
    assert offline["rule_names"] == ["Test late web shell (file)"]
    assert offline["severity"] == "critical" and offline["risk_score"] == 95
    assert offline["first_event"].startswith(t.strftime("%Y-%m-%dT%H:%M:%S"))

    url = re.search(r"https://kibana\S+", body)
    assert url is not None
    g = prison.loads(urllib.parse.unquote(url.group(0).split("_g=")[1].split("&")[0]))
    assert g["time"]["from"] <= t.isoformat().replace("+00:00", "") < g["time"]["to"]
    assert g["time"]["from"].startswith(str(test_month.year))


def test_restarts_two_replicas_and_a_deliverer_that_died_give_one_ticket(bench: Bench) -> None:
    a_rule, b_rule = rule("Test probe A", 60), rule("Test probe B", 60)
    c_rule = rule("Test probe C", 60)
    alerts = [(bench.alert(a_rule), a_rule), (bench.alert(b_rule), b_rule)]
    replicas = [bench.sink("replica-a"), bench.sink("replica-b")]

    # both replicas evaluate the same windows (a leader frozen while the standby took over)
    errors: list[BaseException] = []

    def run(sink: IncidentSink) -> None:
        try:
            for a, r in alerts:
                sink([a], ["rt"], r)
            sink.deliver()
        except BaseException as e:  # a lost race must be retried, never raised
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in replicas]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    inc = bench.incident(replicas[0])
    assert len(inc.findings) == 2
    [ticket] = bench.tickets(inc.incident_id)

    # a restart evaluates the same windows again: nothing new, no comment
    restarted = bench.sink("replica-a-restarted")
    for a, r in alerts:
        restarted([a], ["rt"], r)
    restarted.deliver()
    assert len(bench.incident(restarted).findings) == 2
    assert len(_bodies(bench.rt, ticket)) == 1

    # a deliverer that died after RT took a comment, before recording it: the next one
    # finds the comment by its id in RT and posts nothing twice
    c = bench.alert(c_rule)
    restarted([c], ["rt"], c_rule)
    inc = bench.incident(restarted)
    dest = build("rt", bench.config)
    from iiswatch.alerting.incident_delivery import comment_message

    finding = next(f for f in inc.findings if f["alert_id"] == c.alert_id)
    dest.deliver(comment_message(inc.doc, finding))  # RT has it; the incident does not know
    restarted.deliver()
    assert len(_bodies(bench.rt, ticket)) == 2
    assert bench.tickets(inc.incident_id) == [ticket]
    assert bench.incident(restarted).delivery["pending"] is False


def test_a_ticket_opened_by_a_deliverer_that_died_is_found_not_opened_again(
    bench: Bench,
) -> None:
    sink = bench.sink("dying-leader")
    shell = rule("Test web shell died", 95, "critical", opens_incident="always")
    sink([bench.alert(shell)], ["rt"], shell)
    iid = bench.incident(sink).incident_id
    # the dying leader claims the incident, RT takes its ticket, and the process dies
    # before recording it (its first claim: it did not look for an earlier ticket)
    now = datetime.now(UTC)
    claimed = sink.incident_deliverer._claim(iid, now)
    assert claimed is not None
    message = open_message(claimed.doc) | {"first_open_attempt": True}
    build("rt", bench.config).deliver(message)
    assert len(bench.tickets(iid)) == 1
    # the next leader takes the incident over once the claim expired: a second claim to
    # open the ticket, so it looks for one and finds it
    later = now + bench.config.delivery.claim_timeout + timedelta(seconds=1)
    bench.es.indices.refresh(index=bench.index)  # the next leader finds it by a search
    bench.sink("next-leader").incident_deliverer.deliver_pending(later)
    assert len(bench.tickets(iid)) == 1
    state = bench.incident(sink).delivery["states"]["rt"]
    assert (state["action"], state["open_claims"]) == ("reused", 2)


def test_a_first_claim_opens_its_ticket_without_looking_for_an_earlier_one(
    bench: Bench,
) -> None:
    """RT's look-ups (two searches) are skipped only when no earlier attempt can have
    reached RT: the incident's first claim to open its ticket."""
    sink = bench.sink()
    shell = rule("Test web shell first", 95, "critical", opens_incident="always")
    rt_dest = sink.plain.deliverer.destination("rt")
    searches: list[str] = []
    real_search = rt_dest.search  # type: ignore[attr-defined]

    def counting(query: str, *args: Any, **kwargs: Any) -> Any:
        searches.append(query)
        return real_search(query, *args, **kwargs)

    rt_dest.search = counting  # type: ignore[attr-defined]
    sink([bench.alert(shell)], ["rt"], shell)
    sink.deliver()
    inc = bench.incident(sink)
    assert len(bench.tickets(inc.incident_id)) == 1
    assert inc.delivery["states"]["rt"]["action"] == "created"
    assert searches == []


def test_a_burst_of_attackers_in_one_pass_gets_one_ticket_each(bench: Bench) -> None:
    """The incidents of one pass are delivered side by side; each still gets exactly one
    ticket, and a later finding of each a comment on its own."""
    sink = bench.sink()
    shell = rule("Test web shell burst", 95, "critical", opens_incident="always")
    probe = rule("Test probe burst", 30)
    base = bench.ip.rsplit(".", 1)[0]
    ips = [f"{base}.{i}" for i in range(1, 7)]
    sink([bench.alert(shell, ip=ip) for ip in ips], ["rt"], shell)
    sink.deliver()
    sink([bench.alert(probe, ip=ip) for ip in ips], ["rt"], probe)
    sink.deliver()
    for ip in ips:
        inc = bench.incident(sink, ip)
        [ticket] = bench.tickets(inc.incident_id)
        assert len(_bodies(bench.rt, ticket)) == 2, ip
        assert inc.delivery["pending"] is False
