"""File → parser → Elasticsearch → search, against the real node."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from elasticsearch import AuthorizationException, Elasticsearch

from iiswatch.elastic.indices import DEADLETTER_ALIAS
from iiswatch.elastic.search import TimeRange, count, run_search
from iiswatch.elastic.setup import run_setup
from iiswatch.ingest.batch import ingest_files
from tests.integration.conftest import delete_matching

pytestmark = pytest.mark.integration

FIELDS = (
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken"
)


def write_log(path: Path, month: date, n: int, *, malformed: list[bytes] = ()) -> Path:
    """A W3C log of `n` requests in `month`, with `malformed` lines mixed in, CRLF as IIS."""
    day = month.isoformat()
    lines = [
        "#Software: Microsoft Internet Information Services 10.0",
        "#Version: 1.0",
        f"#Date: {day} 00:00:00",
        f"#Fields: {FIELDS}",
    ]
    for i in range(n):
        secs = i % 86400
        t = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
        ip = f"198.51.100.{i % 250 + 1}"
        uri, query = (
            ("/uploads/sh3ll.aspx", "cmd=Cmd.ExE+/c+whoami")
            if i == 7
            else (f"/page{i % 40}.aspx", "-")
        )
        lines.append(
            f"{day} {t} 10.0.0.5 GET {uri} {query} 443 - {ip} "
            f"Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64) - 200 0 0 {i % 300}"
        )
    body = ("\r\n".join(lines) + "\r\n").encode()
    for bad in malformed:
        body += bad + b"\r\n"
    path.write_bytes(body)
    return path


def month_range(month: date) -> TimeRange:
    return TimeRange.from_options(None, f"{month.isoformat()}T00:00:00Z", None)


def refresh(es: Elasticsearch) -> None:
    es.indices.refresh(index="iis-*,iiswatch-deadletter*", ignore_unavailable=True)


def test_ingested_events_are_searchable_and_reingest_adds_nothing(
    tmp_path: Path,
    test_month: date,
    host_name: str,
    writer_es: Elasticsearch,
    reader_es: Elasticsearch,
    admin_es: Elasticsearch,
) -> None:
    log = write_log(tmp_path / "u_ex000101.log", test_month, 12_345)
    first = ingest_files(writer_es, [log], host_name=host_name)
    assert (first.indexed, first.already_present, first.failed) == (12_345, 0, 0)
    refresh(admin_es)

    rng = month_range(test_month)
    # the count is exact, not capped at 10,000
    assert count(reader_es, "*", rng) == 12_345
    shell = run_search(reader_es, "iiswatch.url.query:*whoami*", rng, top="source.ip")
    assert shell.total == 1
    assert shell.hits[0]["url"]["path"] == "/uploads/sh3ll.aspx"
    assert shell.top == [("198.51.100.8", 1)]

    again = ingest_files(writer_es, [log], host_name=host_name)
    assert (again.indexed, again.already_present) == (0, 12_345)
    refresh(admin_es)
    assert count(reader_es, "*", rng) == 12_345


def test_case_and_encoding_tricks_match_the_lowercase_decoded_fields(
    tmp_path: Path,
    test_month: date,
    host_name: str,
    writer_es: Elasticsearch,
    reader_es: Elasticsearch,
    admin_es: Elasticsearch,
) -> None:
    log = write_log(tmp_path / "u_ex000102.log", test_month, 20)
    ingest_files(writer_es, [log], host_name=host_name)
    refresh(admin_es)
    rng = month_range(test_month)
    for q in (
        "iiswatch.url.query:*cmd.exe*",
        "iiswatch.url.query:*CMD.EXE*",
        "iiswatch.url.query.text:whoami",
    ):
        assert count(reader_es, q, rng) == 1, q


def test_malformed_lines_land_in_the_dead_letter_index_with_raw_text_and_reason(
    tmp_path: Path,
    test_month: date,
    host_name: str,
    writer_es: Elasticsearch,
    reader_es: Elasticsearch,
    admin_es: Elasticsearch,
) -> None:
    bad = [b"2001-01-01 garbage \xff\xfe line", b"not a log line at all"]
    log = write_log(tmp_path / "u_ex000103.log", test_month, 10, malformed=bad)
    summary = ingest_files(writer_es, [log], host_name=host_name)
    assert (summary.indexed, summary.dead_lettered) == (10, 2)
    refresh(admin_es)
    hits = reader_es.search(
        index=DEADLETTER_ALIAS,
        query={"term": {"host.name": host_name}},
        size=10,
        sort=[{"log.offset": "asc"}],
    )["hits"]["hits"]
    assert len(hits) == 2
    first = hits[0]["_source"]
    assert first["event"]["original"].startswith("2001-01-01 garbage ")
    assert first["error"]["message"]
    assert first["log"]["file"]["path"] == str(log)
    assert first["log"]["offset"] == log.read_bytes().index(b"2001-01-01 garbage")
    # dead letters are idempotent too
    again = ingest_files(writer_es, [log], host_name=host_name)
    assert (again.dead_lettered, again.already_present) == (0, 12)


def test_setup_run_twice_changes_nothing_the_second_time(admin_es: Elasticsearch) -> None:
    run_setup(admin_es)
    second = run_setup(admin_es)
    assert [c for c in second if c.action != "unchanged"] == []


def test_writer_credentials_cannot_read_or_delete(
    tmp_path: Path,
    test_month: date,
    host_name: str,
    writer_es: Elasticsearch,
) -> None:
    ingest_files(writer_es, [write_log(tmp_path / "u.log", test_month, 3)], host_name=host_name)
    suffix = f"{test_month.year}.{test_month.month:02d}"
    with pytest.raises(AuthorizationException):
        writer_es.search(index=f"iis-access-{suffix}")
    with pytest.raises(AuthorizationException):
        writer_es.indices.delete(index=f"iis-access-{suffix}")
    with pytest.raises(AuthorizationException):
        writer_es.delete(index=f"iis-access-{suffix}", id="any")


def test_reader_credentials_cannot_write(reader_es: Elasticsearch) -> None:
    with pytest.raises(AuthorizationException):
        reader_es.index(index="iis-access-1989.01", document={"a": 1})


def test_wrong_password_fails_with_exit_code_3(admin_es: Elasticsearch) -> None:
    conn = admin_es._iiswatch_conn  # type: ignore[attr-defined]
    env = dict(
        os.environ,
        IISWATCH_ES_URL=conn.url,
        IISWATCH_ES_USERNAME="iiswatch_reader",
        IISWATCH_ES_PASSWORD="definitely-wrong",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "iiswatch.cli.main", "search", "*", "--count"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "rejected the credentials" in proc.stderr
    assert "definitely-wrong" not in proc.stderr + proc.stdout


def test_cli_ingest_json_summary_and_search_json(
    tmp_path: Path, test_month: date, host_name: str, admin_es: Elasticsearch
) -> None:
    import json

    log = write_log(tmp_path / "u_ex000104.log", test_month, 50)
    cli = [sys.executable, "-m", "iiswatch.cli.main"]
    proc = subprocess.run(
        [*cli, "ingest", str(log), "--host-name", host_name, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["indexed"] == 50 and summary["dead_lettered"] == 0
    refresh(admin_es)
    proc = subprocess.run(
        [*cli, "search", "url.path:\\/uploads\\/*", "--from", f"{test_month}T00:00:00Z", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    hits = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(hits) == 1 and hits[0]["source"]["ip"] == "198.51.100.8"


def test_demo_finds_the_planted_web_shell_and_its_single_client(
    tmp_path: Path, test_month: date, admin_es: Elasticsearch
) -> None:
    day = test_month.replace(day=15)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "iiswatch.cli.main",
                "demo",
                "--out",
                str(tmp_path),
                "--day",
                day.isoformat(),
                "--requests",
                "3000",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, COLUMNS="200"),
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
        assert "found the planted attacker and web shell" in proc.stdout
    finally:
        delete_matching(admin_es, DEADLETTER_ALIAS, {"term": {"host.name": "web01.demo.example"}})
