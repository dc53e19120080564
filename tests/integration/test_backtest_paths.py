"""`rules backtest` replays most rules from a few requests over the whole range
(iiswatch/rules/replay.py) instead of evaluating every window. On a generated week with an
attacker a day, every rule of the pack must raise the same alerts both ways: same ids,
groups, counts, windows, times, client IPs, samples and details, and suppress as many."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from iiswatch.cli.demo.sample_day import write_sample_day
from iiswatch.elastic.indices import ACCESS_PREFIX
from iiswatch.ingest.batch import ingest_files
from iiswatch.ingest.files import expand_inputs
from iiswatch.rules.alert import Alert, group_key
from iiswatch.rules.backtest import backtest
from iiswatch.rules.loader import load_rules

pytestmark = pytest.mark.integration

SEED = 20261201
DAYS = 7
REQUESTS = 1000  # per day (the generator's least): enough for every rule type to alert


def _fingerprint(a: Alert) -> dict[str, Any]:
    return {
        "id": a.alert_id,
        "group": group_key(a.group),
        "events": a.event_count,
        "window": (a.window_start, a.window_end),
        "times": (a.first_event, a.last_event),
        "ips": a.source_ips,
        "samples": [s["_id"] for s in a.samples],
        "details": a.details,
    }


def test_the_replay_raises_the_alerts_window_by_window_evaluation_raises(
    tmp_path: Path,
    test_month: date,
    host_name: str,
    writer_es: Elasticsearch,
    reader_es: Elasticsearch,
    admin_es: Elasticsearch,
) -> None:
    first = test_month.replace(day=3)
    index = f"{ACCESS_PREFIX}{first:%Y.%m}"
    admin_es.indices.delete(index=index, ignore_unavailable=True)  # no leftovers of an old run
    for n in range(DAYS):
        day = first + timedelta(days=n)
        write_sample_day(tmp_path / f"logs{n}", day=day, seed=SEED + n, requests=REQUESTS)
    summary = ingest_files(writer_es, expand_inputs([str(tmp_path)]), host_name=host_name)
    assert summary.failed == 0
    admin_es.indices.refresh(index=index)

    # edges off every bin: the range's start is no multiple of any interval, and its end
    # leaves a last window the replay must hand to `evaluate`
    start = datetime(first.year, first.month, first.day, 0, 0, 7, 250000, tzinfo=UTC)
    end = start + timedelta(days=DAYS) - timedelta(seconds=3)
    paths: dict[str, str] = {}
    alerts = suppressed = 0
    for lr in load_rules():
        rule = lr.rule
        fast = backtest(reader_es, rule, start, end, index=index)
        slow = backtest(reader_es, rule, start, end, index=index, exact=True)
        assert slow.path == "windows"
        paths[rule.type] = fast.path
        assert [_fingerprint(a) for a in fast.alerts] == [_fingerprint(a) for a in slow.alerts], (
            f"{rule.name} ({fast.path})"
        )
        assert fast.alerts == slow.alerts, rule.name  # every field, samples' documents too
        assert fast.suppressed == slow.suppressed, rule.name
        assert fast.hits_per_day == slow.hits_per_day
        alerts += len(fast.alerts)
        suppressed += fast.suppressed

    assert paths == {
        "match": "binned",
        "threshold": "binned",
        "cardinality": "binned",
        "sequence": "joined",
        "new_terms": "binned",
    }
    # not a comparison of two empty lists: the week's attackers raise and repeat alerts
    assert alerts >= DAYS
    assert suppressed > 0
