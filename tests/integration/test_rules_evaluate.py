"""The rule engine against the real Elasticsearch: each rule type on small crafted data in
an index of its own month, exceptions, suppression, alert ids, `rules run --json`, backtest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk

from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.model import Source
from iiswatch.ingest.pipeline import to_action
from iiswatch.rules.backtest import backtest
from iiswatch.rules.evaluate import evaluate
from iiswatch.rules.model import Rule
from iiswatch.rules.suppression import MemoryState
from iiswatch.rules.testing import parse_test_log

pytestmark = pytest.mark.integration

RULE_ID = "5d7c2b1e-0a4f-4c3e-9b8a-1f2e3d4c5b6a"


@pytest.fixture(scope="module")
def alerting_es(admin_es: Elasticsearch) -> Elasticsearch:
    return client_for(Purpose.ALERTING)


class Log:
    """W3C lines (IIS default layout) in the test's month, indexed as ingest would."""

    def __init__(self, month: date) -> None:
        self.t0 = datetime(month.year, month.month, 10, 12, 0, tzinfo=UTC)
        self.lines: list[str] = []
        self.index = f"iis-access-{month.year}.{month.month:02d}"

    def add(
        self,
        minute: float,
        ip: str,
        path: str,
        *,
        query: str = "-",
        method: str = "GET",
        status: int = 200,
        ua: str = "Mozilla/5.0",
    ) -> Log:
        t = self.t0 + timedelta(minutes=minute)
        self.lines.append(
            f"{t:%Y-%m-%d %H:%M:%S} 10.0.0.5 {method} {path} {query} 443 - {ip} {ua} - "
            f"{status} 0 0 15"
        )
        return self

    def at(self, minute: float) -> datetime:
        return self.t0 + timedelta(minutes=minute)

    def ingest(self, admin_es: Elasticsearch) -> None:
        events, problems = parse_test_log("\n".join(self.lines), "engine-test")
        assert problems == []
        src = Source(path="engine-test", host_name="engine-test", file_id=self.index)
        actions = [to_action(src, i, e, "2026-01-01T00:00:00Z") for i, e in enumerate(events)]
        assert {a["_index"] for a in actions} == {self.index}
        bulk(admin_es, actions, refresh=True)


def rule(**changes: Any) -> Rule:
    data: dict[str, Any] = {
        "id": RULE_ID,
        "name": "engine test",
        "description": "d",
        "author": "tests",
        "status": "test",
        "severity": "high",
        "risk_score": 70,
        "type": "match",
        "lucene": "iiswatch.url.query:*whoami*",
        "schedule": {"interval": "1m", "lookback": "2m"},
    }
    data.update(changes)
    return Rule.model_validate({k: v for k, v in data.items() if v is not None})


def run(es: Elasticsearch, r: Rule, log: Log, a: float, b: float, **kw: Any) -> list[Any]:
    return evaluate(es, r, log.at(a), log.at(b), index=log.index, **kw)


def test_match_groups_alerts_and_fills_every_alert_field(
    test_month: date, admin_es: Elasticsearch, alerting_es: Elasticsearch
) -> None:
    log = Log(test_month)
    for i in range(7):
        log.add(i, "203.0.113.9", "/uploads/x.aspx", query="cmd=Cmd.ExE+/c+WHOAMI")
    log.add(3, "198.51.100.7", "/uploads/y.aspx", query="c=whoami")
    log.add(4, "198.51.100.8", "/search.aspx", query="q=hello")
    log.ingest(admin_es)
    r = rule(group_by=["source.ip"], alert={"samples": 3})
    alerts = run(alerting_es, r, log, 0, 10)
    by_ip = {a.group["source.ip"]: a for a in alerts}
    assert set(by_ip) == {"203.0.113.9", "198.51.100.7"}
    a = by_ip["203.0.113.9"]
    assert (a.event_count, a.source_ips, len(a.samples)) == (7, ["203.0.113.9"], 3)
    assert (a.first_event, a.last_event) == (log.at(0), log.at(6))
    assert a.samples[0]["url"]["query"] == "cmd=Cmd.ExE+/c+WHOAMI"
    doc = a.to_json()
    assert doc["rule"] == {"id": RULE_ID, "name": "engine test", "type": "match"}
    assert doc["source"]["ip"] == ["203.0.113.9"] and doc["severity"] == "high"
    assert doc["window"]["start"] == log.at(0).isoformat().replace("+00:00", ".000Z")
    # evaluating the same window again gives the same ids
    assert [x.alert_id for x in run(alerting_es, r, log, 0, 10)] == [x.alert_id for x in alerts]
    # without group_by: one alert for the window, with every client IP
    (whole,) = run(alerting_es, rule(), log, 0, 10)
    assert whole.event_count == 8 and whole.group == {}
    assert sorted(whole.source_ips) == ["198.51.100.7", "203.0.113.9"]


def test_threshold_and_cardinality_count_in_elasticsearch(
    test_month: date, admin_es: Elasticsearch, alerting_es: Elasticsearch
) -> None:
    log = Log(test_month)
    for i in range(6):
        log.add(i * 0.1, "203.0.113.1", f"/wordlist/{i}.aspx", status=404)
        log.add(i * 0.1, "203.0.113.2", "/broken-link.png", status=404)
    log.add(1, "203.0.113.3", "/a.png", status=404)
    log.ingest(admin_es)
    threshold = rule(
        type="threshold",
        lucene="http.response.status_code:404",
        group_by=["source.ip"],
        threshold={"value": 6},
    )
    found = {a.group["source.ip"]: a.event_count for a in run(alerting_es, threshold, log, 0, 5)}
    assert found == {"203.0.113.1": 6, "203.0.113.2": 6}
    card = rule(
        type="cardinality",
        lucene="http.response.status_code:404",
        group_by=["source.ip"],
        cardinality={"field": "url.path", "value": 5},
    )
    (a,) = run(alerting_es, card, log, 0, 5)
    assert a.group == {"source.ip": "203.0.113.1"} and a.details["distinct"] == 6


def test_new_terms_drops_values_seen_in_the_history(
    test_month: date, admin_es: Elasticsearch, alerting_es: Elasticsearch
) -> None:
    log = Log(test_month)
    log.add(-3 * 24 * 60, "198.51.100.1", "/uploads/old.aspx")  # three days before
    log.add(1, "203.0.113.9", "/uploads/old.aspx")
    log.add(2, "203.0.113.9", "/uploads/new.aspx")
    log.add(2.5, "203.0.113.9", "/uploads/NEW.aspx")
    log.ingest(admin_es)
    r = rule(
        type="new_terms",
        lucene="url.extension:aspx",
        new_terms={"fields": ["iiswatch.url.path"], "history": "7d"},
    )
    (a,) = run(alerting_es, r, log, 0, 5)
    # the lowercase normalizer makes /uploads/NEW.aspx the same term
    assert a.group == {"iiswatch.url.path": "/uploads/new.aspx"} and a.event_count == 2
    # the next window overlaps by the lookback: the same term is not new twice
    state = MemoryState()
    assert len(run(alerting_es, r, log, 0, 5, state=state)) == 1
    assert run(alerting_es, r, log, 1, 6, state=state) == []


def test_sequence_joins_steps_in_order_on_the_same_client(
    test_month: date, admin_es: Elasticsearch, alerting_es: Elasticsearch
) -> None:
    log = Log(test_month)
    attacker, other, slow = "203.0.113.9", "198.51.100.7", "198.51.100.8"
    log.add(0, attacker, "/upload.aspx", method="POST")
    log.add(1, attacker, "/uploads/sh.aspx")
    log.add(2, attacker, "/uploads/sh.aspx", query="cmd=whoami")
    # steps in the wrong order
    log.add(0, other, "/uploads/sh.aspx", query="cmd=whoami")
    log.add(1, other, "/upload.aspx", method="POST")
    log.add(2, other, "/uploads/sh.aspx")
    # too slow: the command comes 40 minutes after the upload
    log.add(-30, slow, "/upload.aspx", method="POST")
    log.add(-29, slow, "/uploads/sh2.aspx")
    log.add(10, slow, "/uploads/sh2.aspx", query="cmd=whoami")
    log.ingest(admin_es)
    r = rule(
        type="sequence",
        lucene=None,
        sequence={
            "by": ["source.ip"],
            "max_span": "30m",
            "steps": [
                {
                    "name": "upload",
                    "lucene": "http.request.method:POST AND iiswatch.url.path:*upload*",
                },
                {"name": "first_get", "lucene": "http.request.method:GET AND url.extension:aspx"},
                {"name": "command", "lucene": "iiswatch.url.query:*whoami*"},
            ],
        },
    )
    (a,) = run(alerting_es, r, log, 0, 15)
    assert a.group == {"source.ip": attacker} and a.event_count == 3
    assert [s["name"] for s in a.details["steps"]] == ["upload", "first_get", "command"]
    assert (a.first_event, a.last_event) == (log.at(0), log.at(2))


def test_exceptions_drop_networks_values_and_wildcards_until_they_expire(
    test_month: date, admin_es: Elasticsearch, alerting_es: Elasticsearch
) -> None:
    log = Log(test_month)
    log.add(0, "10.20.3.4", "/x.aspx", query="whoami")  # internal scanner
    log.add(0, "198.51.100.1", "/status.aspx", query="whoami")  # health check path
    log.add(0, "198.51.100.2", "/x.aspx", query="whoami", ua="Corp-HealthCheck/1.0")
    log.add(0, "203.0.113.9", "/x.aspx", query="whoami")  # the attacker
    log.ingest(admin_es)
    entries = [
        {
            "field": "source.ip",
            "cidrs": ["10.20.0.0/16"],
            "owner": "soc",
            "reason": "scanner",
            "expires": "2030-01-01",
        },
        {
            "field": "iiswatch.url.path",
            "values": ["/STATUS.aspx"],
            "owner": "ops",
            "reason": "health",
        },
        {
            "field": "user_agent.original",
            "wildcards": ["*healthcheck*"],
            "owner": "ops",
            "reason": "monitor",
        },
    ]
    r = rule(group_by=["source.ip"], exceptions=entries)
    ips = {a.group["source.ip"] for a in run(alerting_es, r, log, 0, 5)}
    assert ips == {"203.0.113.9"}
    later = datetime(2030, 1, 2, tzinfo=UTC)  # the CIDR entry has expired by then
    ips = {a.group["source.ip"] for a in run(alerting_es, r, log, 0, 5, now=later)}
    assert ips == {"203.0.113.9", "10.20.3.4"}


def test_backtest_applies_suppression_and_never_alerts_twice_on_the_same_events(
    test_month: date, admin_es: Elasticsearch, alerting_es: Elasticsearch
) -> None:
    log = Log(test_month)
    for i in range(10):  # one request a minute for ten minutes
        log.add(i + 0.5, "203.0.113.9", "/x.aspx", query="whoami")
    log.ingest(admin_es)
    start, end = log.at(0), log.at(60)
    plain = backtest(alerting_es, rule(group_by=["source.ip"]), start, end, index=log.index)
    assert plain.windows == 60 and plain.hits == 10
    assert plain.evaluated <= 13  # windows without events are skipped
    # overlapping windows (lookback 2m) see each event three times, but alert once per run
    # that brings new events
    assert len(plain.alerts) == 10
    assert sum(plain.alerts_per_day().values()) == 10
    quiet = rule(group_by=["source.ip"], suppression={"duration": "1h"})
    result = backtest(alerting_es, quiet, start, end, index=log.index)
    assert len(result.alerts) == 1 and result.suppressed == 9
    assert result.top_groups() == [({"source.ip": "203.0.113.9"}, 1, 1)]


def test_rules_run_json_prints_one_alert_per_line(
    tmp_path: Path, test_month: date, admin_es: Elasticsearch
) -> None:
    log = Log(test_month)
    log.add(0, "203.0.113.9", "/uploads/x.aspx", query="cmd=whoami")
    log.add(1, "203.0.113.10", "/uploads/x.aspx", query="cmd=whoami")
    log.ingest(admin_es)
    (tmp_path / "r.yaml").write_text(
        textwrap.dedent(
            f"""\
            id: {RULE_ID}
            name: engine test
            description: d
            author: tests
            status: test
            severity: critical
            risk_score: 90
            index: {log.index}
            type: match
            lucene: 'iiswatch.url.query:*whoami*'
            group_by: [iiswatch.url.path]
            """
        )
    )
    env = {**os.environ, "IISWATCH_RULES_DIR": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iiswatch.cli.main",
            "rules",
            "run",
            "--all",
            "--json",
            "--from",
            log.at(0).isoformat(),
            "--to",
            log.at(5).isoformat(),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    alert = json.loads(line)
    assert alert["rule"]["id"] == RULE_ID and alert["rule"]["name"] == "engine test"
    assert alert["severity"] == "critical"
    assert alert["group"] == {"iiswatch.url.path": "/uploads/x.aspx"}
    assert sorted(alert["source"]["ip"]) == ["203.0.113.10", "203.0.113.9"]
    assert alert["event_count"] == 2 and len(alert["samples"]) == 2
    assert alert["first_event"].startswith(log.at(0).strftime("%Y-%m-%dT%H:%M:%S"))
    assert {"alert_id", "last_event", "window", "mitre", "risk_score"} <= set(alert)
