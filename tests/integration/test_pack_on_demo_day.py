"""The content pack on a generated day it was not tuned on: every rule in searches/ replayed
window by window as the scheduler runs it (interval, lookback, suppression). The alerts
must name the one attacker `iiswatch.cli.demo.sample_day` plants, and no benign client: not the
corporate NAT, the crawlers, the monitors, the internet's background scanners, the people
searching for "whoami" or uploading photos."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from iiswatch.alerting.risk import IncidentPolicy, offline_incidents
from iiswatch.cli.demo.sample_day import write_sample_day
from iiswatch.elastic.indices import ACCESS_PREFIX
from iiswatch.ingest.batch import ingest_files
from iiswatch.ingest.files import expand_inputs
from iiswatch.rules.backtest import backtest
from iiswatch.rules.loader import load_rules

pytestmark = pytest.mark.integration

SEED = 20261120  # the demo uses 7: this day's clients, times and shell name are new
# The rules that must see the web shell itself, whatever else fires.
WEB_SHELL_RULES = {
    "Web shell upload then command execution",
    "Web shell command execution parameters",
    "First request to a script in an upload folder",
}


def test_the_pack_alerts_on_the_attacker_and_on_no_benign_client(
    tmp_path: Path,
    test_month: date,
    host_name: str,
    writer_es: Elasticsearch,
    reader_es: Elasticsearch,
    admin_es: Elasticsearch,
) -> None:
    day = test_month.replace(day=14)
    index = f"{ACCESS_PREFIX}{day:%Y.%m}"
    admin_es.indices.delete(index=index, ignore_unavailable=True)  # no leftovers of an old run
    manifest = write_sample_day(tmp_path / "logs", day=day, seed=SEED)
    summary = ingest_files(writer_es, expand_inputs([str(tmp_path / "logs")]), host_name=host_name)
    assert summary.failed == 0
    admin_es.indices.refresh(index=index)

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    fired: dict[str, set[str]] = {}  # rule name -> client addresses behind its alerts
    pack_alerts = []
    for lr in load_rules():
        result = backtest(reader_es, lr.rule, start, end, index=index)
        pack_alerts.append((lr, result.alerts))
        for alert in result.alerts:
            fired.setdefault(lr.rule.name, set()).update(alert.source_ips)

    benign = {
        rule: sorted(ips - {manifest.attacker_ip})
        for rule, ips in fired.items()
        if ips - {manifest.attacker_ip}
    }
    assert benign == {}, f"benign clients alerted on: {benign}"
    caught_by = {rule for rule, ips in fired.items() if manifest.attacker_ip in ips}
    assert caught_by >= WEB_SHELL_RULES, (
        f"the web shell was missed by {WEB_SHELL_RULES - caught_by}"
    )

    # `iiswatch rules run --json`, as on-call would call it, gives the same verdict
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
            start.isoformat(),
            "--to",
            end.isoformat(),
            "--index",
            index,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    alerts = [json.loads(line) for line in proc.stdout.splitlines()]
    clients = {ip for a in alerts for ip in a["source"]["ip"]}
    assert clients == {manifest.attacker_ip}
    assert {a["rule"]["name"] for a in alerts} >= WEB_SHELL_RULES

    # ... and those alerts add up to exactly one incident, the attacker's: one ticket
    # (`rules run --incidents` runs the same replay; test_incidents.py runs that command)
    pairs = [(a.to_json(), lr.rule) for lr, found in pack_alerts for a in found]
    [incident] = offline_incidents(pairs, IncidentPolicy())
    assert incident["source"]["ip"] == [manifest.attacker_ip]
    assert set(incident["rule_names"]) >= WEB_SHELL_RULES
    assert incident["severity"] == "critical"
