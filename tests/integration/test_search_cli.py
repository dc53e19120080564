"""`iiswatch search` against the real node: errors with their root cause (exit 2),
warnings before sending, KQL, aggregations in --json, empty histogram buckets, the decoded
URI in the table, and --all past the 10,000-hit window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from iiswatch.elastic.search import Query, TimeRange, run_search
from iiswatch.ingest.batch import ingest_files
from tests.integration.test_ingest_search import refresh, write_log

pytestmark = pytest.mark.integration


@pytest.fixture
def logged(
    tmp_path: Path,
    test_month: date,
    host_name: str,
    writer_es: Elasticsearch,
    admin_es: Elasticsearch,
) -> date:
    """60 requests in the first minute of the month; the 8th is the web shell."""
    log = write_log(tmp_path / "u_ex000101.log", test_month, 60)
    summary = ingest_files(writer_es, [log], host_name=host_name)
    assert summary.indexed == 60, summary.as_dict()
    refresh(admin_es)
    return test_month


def search(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iiswatch.cli.main", "search", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, COLUMNS="250"),
    )


def since(month: date) -> list[str]:
    return ["--from", f"{month}T00:00:00Z", "--to", f"{month}T00:00:00Z".replace("-01T", "-02T")]


def test_a_syntax_error_is_exit_2_with_elasticsearchs_reason_and_column(logged: date) -> None:
    p = search("url.path:(foo AND", *since(logged))
    assert p.returncode == 2, p.stderr
    assert "all shards failed" not in p.stderr
    assert "column 17" in p.stderr and "Encountered" in p.stderr
    assert "url.path:(foo AND\n" in p.stderr  # the query, then a caret under the column


def test_too_many_events_and_top_on_a_text_field_are_exit_2_with_a_hint(logged: date) -> None:
    p = search("*", "-n", "10001", *since(logged))
    assert p.returncode == 2, p.stderr
    assert "Result window is too large" in p.stderr and "--all" in p.stderr
    p = search("*", "--top", "error.message", "-n", "0", *since(logged))
    assert p.returncode == 2, p.stderr
    assert "keyword field" in p.stderr


def test_lucene_traps_are_warned_before_sending(logged: date) -> None:
    p = search("url.path:/uploads/*", "--count", *since(logged))
    assert p.returncode == 0
    assert "regular expression" in p.stderr and "url.path:\\/uploads\\/" in p.stderr
    p = search("url.path:foo and source.ip:1.2.3.4", "--count", *since(logged))
    assert "lower-case 'and'" in p.stderr


def test_unknown_fields_are_warned_with_a_suggestion(logged: date) -> None:
    p = search("url.pth:foo", "--count", *since(logged))
    assert p.returncode == 0 and p.stdout.strip() == "0"
    assert "'url.pth'" in p.stderr and "url.path" in p.stderr
    p = search("*", "--top", "nope.field", "-n", "0", *since(logged))
    assert "'nope.field'" in p.stderr
    p = search("url.path:x AND source.ip:1.2.3.4", "--count", *since(logged))
    assert "warning" not in p.stderr


def test_kql_pasted_from_kibana_finds_the_web_shell(logged: date) -> None:
    p = search(
        "--kql", "url.path : /uploads/* and source.ip : 198.51.100.8", "--json", *since(logged)
    )
    assert p.returncode == 0, p.stderr
    hits = [json.loads(line) for line in p.stdout.splitlines()]
    assert [h["url"]["path"] for h in hits] == ["/uploads/sh3ll.aspx"]
    p = search("--kql", "url.path: (a or", *since(logged))
    assert p.returncode == 2 and "column" in p.stderr


def test_json_carries_top_and_a_histogram_with_empty_buckets(logged: date) -> None:
    p = search("*", "--top", "url.path", "--histogram", "1h", "-n", "2", "--json", *since(logged))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["total"] == 60 and len(doc["hits"]) == 2
    assert doc["top"][0] == {"value": "/page0.aspx", "count": 2}
    hist = doc["histogram"]
    # every event is in the first minute: one full bucket, then 23 empty ones, not hidden
    assert len(hist) == 24
    assert hist[0]["count"] == 60 and all(b["count"] == 0 for b in hist[1:])


def test_histogram_with_too_many_buckets_is_a_usage_error(logged: date) -> None:
    p = search("*", "--histogram", "1s", *since(logged))
    assert p.returncode == 2 and "buckets" in p.stderr and "larger interval" in p.stderr


def test_an_open_range_histogram_covers_the_events_and_counts_are_exact(
    logged: date, reader_es: Elasticsearch
) -> None:
    rng = TimeRange.from_options(None, f"{logged}T00:00:00Z", None)
    r = run_search(reader_es, Query("*"), rng, histogram="10s", limit=0)
    # events run from :00 to :59 of the first minute: six 10 s buckets, none empty
    assert r.histogram is not None
    assert [n for _, n in r.histogram] == [10] * 6


def test_count_with_top_is_a_usage_error() -> None:
    p = search("*", "--count", "--top", "source.ip")
    assert p.returncode == 2 and "cannot be combined" in p.stderr


def test_the_table_shows_the_decoded_uri_with_its_query(logged: date) -> None:
    p = search("url.path:\\/uploads\\/*", *since(logged))
    assert p.returncode == 0, p.stderr
    assert "/uploads/sh3ll.aspx?cmd=Cmd.ExE /c whoami" in p.stdout


def test_all_exports_every_hit_past_ten_thousand(
    tmp_path: Path,
    test_month: date,
    host_name: str,
    writer_es: Elasticsearch,
    admin_es: Elasticsearch,
) -> None:
    n = 10_050
    log = write_log(tmp_path / "u_ex000102.log", test_month, n)
    ingest_files(writer_es, [log], host_name=host_name, chunk_size=5000)
    refresh(admin_es)
    p = search(
        "*", "--all", "--fields", "source.ip,log.offset", "--from", f"{test_month}T00:00:00Z"
    )
    assert p.returncode == 0, p.stderr[-2000:]
    hits = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(hits) == n
    assert len({h["_id"] for h in hits}) == n
    assert f"exported {n:,} of {n:,} events" in p.stderr
    stamps = [(h["_index"], h["log"]["offset"]) for h in hits]
    assert stamps == sorted(stamps, key=lambda s: s[1])  # oldest first, file order
