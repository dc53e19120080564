"""`iiswatch alerting run` as real processes against the real node: killed and restarted,
two of them at once, late events, downtime beyond the catch-up limit, suppression across
restarts, status, deadman and rule errors. Alerts go to a real `command` destination that
writes one ticket file per delivery, so a duplicate delivery would show as a second file.

Rules run every second (2 s where processes are killed), so the whole file takes about a
minute. Events are W3C lines ingested now: most carry a @timestamp in a 1990s test month
(the extreme of a late event), one is ten minutes old.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from iiswatch.alerting.deadman import DEADMAN_RULE_ID, ERROR_RULE_ID, GAP_RULE_ID
from iiswatch.alerting.lease import LEASE_INDEX
from iiswatch.alerting.ledger import WINDOWS_INDEX
from iiswatch.alerting.outbox import ALERTS_INDEX
from iiswatch.alerting.state import SUPPRESSION_INDEX
from iiswatch.alerting.status import STATUS_INDEX
from iiswatch.alerting.windows import settled_end
from iiswatch.ingest.batch import ingest_files
from iiswatch.times import parse_duration, parse_time
from tests.integration.conftest import delete_matching

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "iiswatch.cli.main"]
# Request Tracker too, where scripts/test started it (RT_URL, RT_TOKEN in the environment)
RT = bool(os.environ.get("RT_URL") and os.environ.get("RT_TOKEN"))
DESTINATIONS = ["tickets", "rt"] if RT else ["tickets"]
FIELDS = (
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken"
)
# A ticket system in a file: one ticket per alert id (the id is the idempotency key, as it
# is for Request Tracker), and one line per call in calls.log.
TICKET_SCRIPT = """\
import json, os, sys
alert = json.load(sys.stdin)
out = sys.argv[1]
with open(os.path.join(out, "calls.log"), "a") as log:
    log.write(alert["alert_id"] + "\\n")
name = os.path.join(out, alert["alert_id"] + ".json")
if not os.path.exists(name):
    with open(name + ".tmp", "w") as f:
        json.dump(alert, f)
    os.replace(name + ".tmp", name)
print("file:" + os.path.basename(name))
"""


def rule_yaml(
    rule_id: str, name: str, index: str, lucene: str, *, interval: str = "1s", extra: str = ""
) -> str:
    return f"""\
id: {rule_id}
name: {name}
description: test rule of the alerting service
author: tests
status: test
severity: high
risk_score: 70
index: {index}
schedule: {{interval: {interval}, lookback: 30s}}
type: match
lucene: '{lucene}'
group_by: [source.ip]
alert: {{destinations: [{", ".join(DESTINATIONS)}]}}
{extra}"""


@dataclass
class Workspace:
    root: Path
    es: Elasticsearch
    writer: Elasticsearch
    index: str  # the test month's access index
    month: date
    host: str
    lease: str
    rule_ids: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    lines: int = 0
    events: int = 0  # events ingested so far (every one of them on `host`)
    settle: timedelta = timedelta(seconds=1)  # the [service] settle written last
    interval: timedelta = timedelta(seconds=1)  # the longest rule interval

    @property
    def rules(self) -> Path:
        return self.root / "rules"

    @property
    def tickets(self) -> Path:
        return self.root / "tickets"

    @property
    def script(self) -> Path:
        return self.root / "ticket.py"

    @property
    def config(self) -> Path:
        return self.root / "alerting.toml"

    def write_config(self, **service: Any) -> None:
        settings = {
            "settle": "1s",
            "lease_name": self.lease,
            "lease_ttl": "2s",
            "catch_up": "5m",
            "reload_poll": "1s",
            "jitter": "0s",
            "error_destinations": ["tickets"],
        } | service
        self.settle = parse_duration(settings["settle"])
        # a killed deliverer's claim expires quickly (the default is minutes)
        claim = settings.pop("claim_timeout", "2s")
        deadman = settings.pop("deadman", {"enabled": False})
        # these tests follow single alerts to their tickets (test_incidents*.py: incidents)
        incidents = settings.pop("incidents", {"enabled": False})
        lines = [
            "[destinations.tickets]",
            'type = "command"',
            f"argv = {json.dumps([sys.executable, str(self.script), str(self.tickets)])}",
            "",
            *(
                [
                    "[destinations.rt]",
                    'type = "request_tracker"',
                    f"url = {json.dumps(os.environ['RT_URL'])}",
                    'token = "${env:RT_TOKEN}"',
                    "",
                ]
                if RT
                else []
            ),
            "[delivery]",
            f'claim_timeout = "{claim}"',
            "",
            "[service]",
            *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
            "",
            "[service.deadman]",
            *(f"{k} = {json.dumps(v)}" for k, v in deadman.items()),
            "",
            "[service.incidents]",
            *(f"{k} = {json.dumps(v)}" for k, v in incidents.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def add_rule(
        self, lucene: str, *, interval: str = "1s", extra: str = "", index: str | None = None
    ) -> str:
        rid = str(uuid.uuid4())
        self.rule_ids.append(rid)
        self.interval = max(self.interval, parse_duration(interval))
        index = index or self.index
        text = rule_yaml(rid, f"test {rid[:8]}", index, lucene, interval=interval, extra=extra)
        (self.rules / f"{rid}.yaml").write_text(text)
        return rid

    def whoami_rule(self, **kw: Any) -> str:
        return self.add_rule(f"iiswatch.url.query.text:whoami AND host.name:{self.host}", **kw)

    def ingest(self, *ips: str, when: datetime | None = None, query: str = "cmd=whoami") -> None:
        """One request per client IP, ingested now (event time: the test month, or `when`)."""
        self.lines += 1  # a distinct second per file: documents ids come from content
        t = when or datetime(self.month.year, self.month.month, 2, 12, 0, self.lines, tzinfo=UTC)
        rows = [FIELDS]
        for ip in ips:
            rows.append(
                f"{t:%Y-%m-%d %H:%M:%S} 10.0.0.5 GET /uploads/x.aspx {query} 443 - {ip} "
                "Mozilla/5.0 - 200 0 0 15"
            )
        path = self.root / f"u_ex{self.lines:04d}.log"
        path.write_text("\r\n".join(rows) + "\r\n")
        done = ingest_files(self.writer, [path], host_name=self.host)
        assert done.indexed == len(ips)
        self.events += len(ips)

    def wait_until_due(self, *, silent: timedelta = timedelta(0), timeout: float = 60.0) -> None:
        """Wait until every event ingested so far is searchable and the window of the newest
        has settled, so that the next `--once` pass evaluates them (and, with `silent`, until
        the host has been silent that long since). A fixed sleep guesses at both, and on a
        loaded machine the index refresh can come late."""
        deadline = time.monotonic() + timeout
        while True:
            hits = self.es.search(
                index="iis-access-*",
                query={"term": {"host.name": self.host}},
                sort=[{"event.ingested": "desc"}],
                size=1,
                track_total_hits=True,
                ignore_unavailable=True,
            )["hits"]
            now = datetime.now(UTC)
            if hits["total"]["value"] == self.events:
                newest = parse_time(hits["hits"][0]["_source"]["event"]["ingested"])
                # the plan's own arithmetic: a pass at `now` evaluates windows up to this end
                settled = settled_end(now, self.interval, self.settle) > newest
                if settled and now - newest >= silent:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{hits['total']['value']} of {self.events} events searchable, or their "
                    f"window not settled, within {timeout}s"
                )
            time.sleep(0.1)

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"service-{len(self.procs)}.log").open("wb")
        args = [*CLI, "alerting", "run", "--config", str(self.config)]
        proc = subprocess.Popen(
            [*args, "--rules-dir", str(self.rules), *extra], stdout=log, stderr=log
        )
        log.close()
        self.procs.append(proc)
        return proc

    def once(self) -> str:
        args = [*CLI, "alerting", "run", "--once", "--config", str(self.config)]
        args += ["--rules-dir", str(self.rules)]
        r = subprocess.run(args, capture_output=True, timeout=180)
        assert r.returncode == 0, r.stderr.decode()
        return r.stderr.decode()

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.root / f"service-{self.procs.index(proc)}.log").read_text()

    def logs(self) -> str:
        """The end of every service's log, for a failure message."""
        return "\n".join(self.log(p)[-3000:] for p in self.procs)

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.tickets.glob("*.json"))]

    def calls(self) -> Counter[str]:
        log = self.tickets / "calls.log"
        return Counter(log.read_text().split()) if log.exists() else Counter()

    def rt_done(self, alert_id: str) -> bool:
        return self.es.get(index=ALERTS_INDEX, id=alert_id)["_source"]["delivery"]["status"] == (
            "delivered"
        )

    def outbox(self) -> list[tuple[Any, ...]]:
        self.es.indices.refresh(index=ALERTS_INDEX)
        hits = self.es.search(
            index=ALERTS_INDEX, query={"terms": {"rule.id": self.rule_ids}}, size=100
        )["hits"]["hits"]
        return [
            (h["_id"], h["_source"]["source"]["ip"], h["_source"]["delivery"]["status"])
            for h in hits
        ]

    def wait_first_runs(self, timeout: float = 60.0) -> None:
        """Wait until a service has run every rule once. A rule's first run starts its
        cursor at the newest settled window: a line ingested before that is, by design,
        from before the rule existed, so a test that ingests sooner races the start-up."""
        deadline = time.monotonic() + timeout
        while not all(ledger(self.es, rid) for rid in self.rule_ids):
            if time.monotonic() > deadline:
                raise AssertionError(f"no first run of every rule within {timeout}s\n{self.logs()}")
            time.sleep(0.2)

    def wait_tickets(
        self, ok: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.delivered()
            if ok(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"tickets so far: {_summary(found)}\noutbox: {self.outbox()}\n{self.logs()}"
                )
            time.sleep(0.2)


def _summary(tickets: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(t["rule"]["name"], t["group"]) for t in tickets]


def ips_of(tickets: list[dict[str, Any]], rule_id: str | None = None) -> Counter[str]:
    return Counter(
        t["group"]["source.ip"]
        for t in tickets
        if "source.ip" in t["group"] and (rule_id is None or t["rule"]["id"] == rule_id)
    )


@pytest.fixture
def ws(
    tmp_path: Path, test_month: date, admin_es: Elasticsearch, writer_es: Elasticsearch
) -> Iterator[Workspace]:
    suffix = f"{test_month.year}.{test_month.month:02d}"
    w = Workspace(
        tmp_path,
        admin_es,
        writer_es,
        f"iis-access-{suffix}",
        test_month,
        f"alerting-{uuid.uuid4().hex[:10]}",
        f"test-{uuid.uuid4().hex[:10]}",
    )
    w.rules.mkdir()
    w.tickets.mkdir()
    (tmp_path / "ticket.py").write_text(TICKET_SCRIPT)
    w.write_config()
    yield w
    for p in w.procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    ids = w.rule_ids
    alert_ids = [t["alert_id"] for t in w.delivered()]
    for index in (WINDOWS_INDEX, SUPPRESSION_INDEX, STATUS_INDEX, ALERTS_INDEX):
        delete_matching(admin_es, index, {"terms": {"rule.id": ids}})
    delete_matching(admin_es, ALERTS_INDEX, {"ids": {"values": alert_ids or ["-"]}})
    delete_matching(admin_es, STATUS_INDEX, {"ids": {"values": ids or ["-"]}})
    admin_es.options(ignore_status=404).delete(index=LEASE_INDEX, id=w.lease)
    current = datetime.now(UTC)
    for month in {current, current - timedelta(minutes=15)}:
        delete_matching(admin_es, f"iis-access-{month:%Y.%m}", {"term": {"host.name": w.host}})


def rt_tickets(alert_id: str) -> list[int]:
    """Ids of the RT tickets that carry `alert_id` in IiswatchAlertId."""
    query = urllib.parse.quote(f"CF.{{IiswatchAlertId}} = '{alert_id}'")
    req = urllib.request.Request(
        f"{os.environ['RT_URL'].rstrip('/')}/REST/2.0/tickets?query={query}",
        headers={"Authorization": f"token {os.environ['RT_TOKEN']}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return [int(t["id"]) for t in json.load(resp)["items"]]


def wait_for(ok: Callable[[], bool], what: str, ws: Workspace, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s\n{ws.logs()}")
        time.sleep(0.2)


def ledger(es: Elasticsearch, rule_id: str) -> list[dict[str, Any]]:
    es.indices.refresh(index=WINDOWS_INDEX)
    hits = es.search(
        index=WINDOWS_INDEX,
        query={"term": {"rule.id": rule_id}},
        sort=[{"window.start": "asc"}],
        size=10_000,
    )["hits"]["hits"]
    return [h["_source"] for h in hits if h["_source"].get("kind") in ("window", "gap")]


def assert_contiguous(windows: list[dict[str, Any]]) -> None:
    for a, b in itertools.pairwise(windows):
        assert a["window"]["end"] == b["window"]["start"], (a["window"], b["window"])


# -- the tests ----------------------------------------------------------------------------


def test_a_service_killed_and_restarted_mid_run_neither_duplicates_nor_misses(
    ws: Workspace,
) -> None:
    rid = ws.whoami_rule(interval="2s")
    ws.write_config(lease_ttl="2s")
    ips = [f"203.0.113.{i}" for i in range(1, 5)]
    for i, ip in enumerate(ips):
        proc = ws.start()
        time.sleep(1.0 + 0.7 * i)  # start-up, and a different moment of the cycle each time
        ws.ingest(ip)
        time.sleep(0.5 * i)
        proc.send_signal(signal.SIGKILL)  # no clean shutdown: the lease stays taken
        proc.wait(10)
    ws.start()
    tickets = ws.wait_tickets(lambda t: set(ips_of(t, rid)) == set(ips), timeout=90)
    time.sleep(3)  # time for any duplicate to show up
    tickets = ws.delivered()
    assert ips_of(tickets, rid) == Counter({ip: 1 for ip in ips})
    assert len({t["alert_id"] for t in tickets}) == len(tickets)
    windows = ledger(ws.es, rid)
    assert [w for w in windows if w["kind"] == "gap"] == []
    assert_contiguous(windows)


def test_two_services_elect_one_leader_and_the_standby_takes_over_when_it_dies(
    ws: Workspace,
) -> None:
    rid = ws.whoami_rule()
    a, b = ws.start(), ws.start()
    ws.wait_first_runs()
    ws.ingest("198.51.100.1", "198.51.100.2", "198.51.100.3")
    ws.wait_tickets(lambda t: len(ips_of(t, rid)) == 3)
    leaders = [p for p in (a, b) if "holding the lease" in ws.log(p)]
    assert len(leaders) == 1, [ws.log(p) for p in (a, b)]
    leader = leaders[0]
    standby = b if leader is a else a

    assert "holding the lease" not in ws.log(standby)
    leader.send_signal(signal.SIGKILL)
    leader.wait(10)
    ws.ingest("198.51.100.4")
    # the standby takes the lease once the dead leader's expires, then does its work (a
    # generous wait: how fast is a bench's question, not this test's)
    ws.wait_tickets(lambda t: "198.51.100.4" in ips_of(t, rid), timeout=120)
    assert "holding the lease" in ws.log(standby)
    time.sleep(2)
    tickets = ws.delivered()
    assert ips_of(tickets, rid) == Counter({f"198.51.100.{i}": 1 for i in range(1, 5)})
    # each alert delivered once (a node overloaded for a moment may fail a run too: that
    # is one error alert more, delivered once like the others)
    assert ws.calls() == Counter({t["alert_id"]: 1 for t in tickets})
    assert_contiguous(ledger(ws.es, rid))
    if RT:  # exactly one RT ticket per detection
        found = [t for t in tickets if t["rule"]["id"] == rid]
        ws.wait_tickets(lambda _: all(ws.rt_done(a["alert_id"]) for a in found), timeout=90)
        assert [len(rt_tickets(t["alert_id"])) for t in found] == [1, 1, 1, 1]


def test_an_event_ten_minutes_old_ingested_now_is_still_alerted(ws: Workspace) -> None:
    rid = ws.whoami_rule(index="iis-access-*")
    ws.start()
    ws.wait_first_runs()
    ws.ingest("192.0.2.10", when=datetime.now(UTC) - timedelta(minutes=10))
    tickets = ws.wait_tickets(lambda t: "192.0.2.10" in ips_of(t, rid))
    (t,) = tickets
    sample = t["samples"][0]
    assert sample["@timestamp"] < (datetime.now(UTC) - timedelta(minutes=9)).isoformat()


def test_downtime_beyond_the_catch_up_limit_is_one_gap_alert_not_a_flood(
    ws: Workspace,
) -> None:
    rid = ws.whoami_rule()
    ws.write_config(catch_up="12s")
    # A request the rule does not match creates the test month's index now. Created by the
    # event below, while the service runs, the new index answered 503 and the event was not
    # alerted within 90 s (CI, 2026-12-03): a search during index creation is another story
    # than the gap this test is about (see README, Alerting: settle).
    ws.ingest("192.0.2.21", query="q=hello")
    ws.once()  # the rule's first run: its cursor
    time.sleep(25)  # down for about 25 windows, the limit is 12
    service = ws.start()

    def caught_up() -> bool:
        windows = ledger(ws.es, rid)
        gaps = [w["window"]["end"] for w in windows if w["kind"] == "gap"]
        return bool(gaps) and sum(w["window"]["start"] >= gaps[0] for w in windows) >= 12

    # The event comes once the service has caught up: ingested before, it could fall into the
    # gap itself, as it would on a loaded machine whose start-up outlasts the limit (by
    # design: reported in the gap, not evaluated).
    wait_for(caught_up, "the gap and the catch-up after it", ws)
    ws.ingest("192.0.2.20")
    ws.wait_tickets(lambda t: "192.0.2.20" in ips_of(t, rid), timeout=90)
    service.send_signal(signal.SIGTERM)
    service.wait(60)
    ws.once()  # and again, in a new process: the gap is not reported again
    tickets = ws.delivered()
    gaps = [t for t in tickets if t["rule"]["id"] == GAP_RULE_ID and t["group"]["rule.id"] == rid]
    windows = ledger(ws.es, rid)
    gap_windows = [w["window"] for w in windows if w["kind"] == "gap"]
    # one alert per gap, never two for one (a loaded machine may take longer than the limit
    # between the service and the last pass: that second, short gap is real and its own alert)
    assert sorted(g["window"]["start"] for g in gaps) == sorted(w["start"] for w in gap_windows)
    assert len({g["window"]["start"] for g in gaps}) == len(gaps) >= 1
    assert ips_of(tickets, rid) == Counter({"192.0.2.20": 1})
    assert_contiguous(windows)
    # the downtime is the first gap, and after it the limit's worth of windows is evaluated
    downtime = min(gap_windows, key=lambda w: w["start"])
    # one alert for the whole downtime (25 s down, 12 s caught up), not one per missed window
    span = datetime.fromisoformat(downtime["end"]) - datetime.fromisoformat(downtime["start"])
    assert span >= timedelta(seconds=8) and len(gaps) <= 2
    after = [
        w for w in windows if w["kind"] == "window" and w["window"]["start"] >= downtime["end"]
    ]
    assert len(after) >= 12


def test_suppression_survives_a_restart_and_status_says_why_nothing_fired(
    ws: Workspace,
) -> None:
    suppressed = ws.whoami_rule(extra="suppression: {duration: 1h}\n")
    excepted = ws.add_rule(
        f"iiswatch.url.query.text:dir AND host.name:{ws.host}",
        extra=(
            "exceptions:\n  - field: source.ip\n    cidrs: [192.0.2.0/24]\n"
            "    owner: soc@example.org\n    reason: our scanner\n"
        ),
    )
    quiet = ws.add_rule(f"iiswatch.url.query.text:nothingmatchesthis AND host.name:{ws.host}")
    broken = ws.add_rule(f"host.name:{ws.host} AND @timestamp:[now-1d TO")
    ws.once()
    ws.ingest("192.0.2.30")
    ws.ingest("192.0.2.31", query="cmd=dir")
    ws.wait_until_due()
    ws.once()
    assert ips_of(ws.delivered(), suppressed) == Counter({"192.0.2.30": 1})
    ws.ingest("192.0.2.30")  # the same group again, in a new process: suppressed
    ws.wait_until_due()
    ws.once()
    tickets = ws.delivered()
    assert ips_of(tickets, suppressed) == Counter({"192.0.2.30": 1})
    assert ips_of(tickets, excepted) == Counter()
    errors = [t for t in tickets if t["rule"]["id"] == ERROR_RULE_ID]
    assert [t["group"]["rule.id"] for t in errors] == [broken]  # once, over two failed runs

    r = subprocess.run(
        [*CLI, "alerting", "status", "--json", "--lease", ws.lease], capture_output=True, timeout=30
    )
    # the `--once` passes have ended and released the lease: status says nobody is on duty
    # (exit 3) and still tells, per rule, why nothing fired
    assert r.returncode == 3, r.stderr.decode()
    assert json.loads(r.stdout)["lease_held"] is False
    status = {s["rule"]["id"]: s for s in json.loads(r.stdout)["rules"]}
    assert status[suppressed]["reason"] == "suppressed"
    assert status[suppressed]["suppressed"] == 1
    assert status[suppressed]["hits"] == 1
    assert status[excepted]["totals"]["excepted"] == 1
    assert status[quiet]["reason"] == "no hits"
    assert status[broken]["reason"] == "error"
    # the two passes after the ingests (the first pass's windows held no event: the test
    # month's index came with the first ingest)
    assert status[broken]["errors"] == 2
    assert "400" in status[broken]["error"]


def test_a_once_pass_longer_than_the_lease_ttl_still_evaluates_every_rule(
    ws: Workspace,
) -> None:
    # `--once` has no lease job beside it: it renews the lease between windows. A TTL far
    # shorter than any pass makes every pass outlast it, as a loaded machine or a long
    # catch-up does with the real one (a pass that trusted its first renewal to the end
    # stopped there, silently, leaving the later rules' windows for a pass nobody runs).
    ws.write_config(lease_ttl="10ms")
    rids = [ws.whoami_rule() for _ in range(3)]
    ws.once()
    ws.ingest("192.0.2.50")
    ws.wait_until_due()
    ws.once()
    tickets = ws.delivered()
    assert {rid: ips_of(tickets, rid) for rid in rids} == {
        rid: Counter({"192.0.2.50": 1}) for rid in rids
    }
    assert all(ledger(ws.es, rid) for rid in rids)


def test_a_host_gone_silent_raises_one_deadman_alert(ws: Workspace) -> None:
    ws.write_config(
        deadman={"enabled": True, "silent_for": "2s", "known_for": "1h", "index": ws.index}
    )
    ws.ingest("192.0.2.40")
    ws.wait_until_due(silent=timedelta(seconds=2))
    ws.once()
    ws.once()
    dead = [t for t in ws.delivered() if t["rule"]["id"] == DEADMAN_RULE_ID]
    assert [t["group"] for t in dead] == [{"host.name": ws.host}]
