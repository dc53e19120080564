"""Golden files for every format: `tests/golden/*.log` beside the documents the parser must
produce, one JSON document per result line (events, and dead letters as the indexer stores
them). Each log is read the way `iiswatch parse` reads it: format detected from the file.
Regenerate after a deliberate change with `IISWATCH_REGEN_GOLDEN=1` and review the diff
(`scripts/test` unsets it, so a regenerated file is never compared with itself).

The IIS native and NCSA golden files were first written from the parser's own output, so a few
of their lines are also checked against values worked out by hand from the format
specifications (`SPEC`), independently of the code.

TZ is pinned to Europe/Paris: W3C and HTTPERR times are UTC, the IIS format's are local, and
the samples sit on the 2024 spring-forward change, so a time-zone bug shows up as a diff.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from iiswatch.ingest.model import DeadLetter, Source
from iiswatch.ingest.parse import LogParser

ABSENT = object()  # a field the document must not have
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
LOGS = sorted(GOLDEN.glob("*.log"))


@pytest.fixture(autouse=True)
def paris_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def golden_docs(log: Path) -> list[dict[str, object]]:
    source = Source(path=f"tests/golden/{log.name}", host_name="golden-host", file_id="golden")
    parser = LogParser(source)
    docs: list[dict[str, object]] = []
    offset = 0
    for line in log.read_bytes().splitlines(keepends=True):
        result = parser.feed(line.rstrip(b"\r\n"), offset)
        if isinstance(result, DeadLetter):
            docs.append(result.to_doc(source))
        elif result is not None:
            docs.append(result)
        offset += len(line)
    return docs


def test_there_are_golden_files_for_every_format() -> None:
    names = {p.name.split("-")[0] for p in LOGS}
    assert {"w3c", "httperr", "iisnative", "ncsa"} <= names, names


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_golden_file_parses_to_its_expected_documents(log: Path) -> None:
    expected_path = log.with_suffix(".expected.ndjson")
    docs = golden_docs(log)
    if os.environ.get("IISWATCH_REGEN_GOLDEN") == "1":
        expected_path.write_bytes(
            b"".join(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) + b"\n" for d in docs)
        )
        # comparing the file with what was just written proves nothing: say so, never pass
        pytest.skip(f"regenerated {expected_path.name}: review `git diff tests/golden`")
    expected = [orjson.loads(x) for x in expected_path.read_bytes().splitlines() if x.strip()]
    assert len(docs) == len(expected)
    for got, want in zip(docs, expected, strict=True):
        assert orjson.loads(orjson.dumps(got)) == want


# Values worked out by hand from the format specifications, not from the parser:
# - IIS log file format (Microsoft, "IIS Log File Format (IIS 6.0)"): client IP, user name,
#   date, time (local), service and instance, server name, server IP, time taken (ms),
#   client bytes sent, server bytes sent, service status code, Windows status code,
#   request type, target, parameters; comma-separated, parameters last (may hold commas).
#   TZ is Europe/Paris: CET = UTC+1 in winter, CEST = UTC+2 in summer.
# - NCSA Common Log Format (W3C httpd docs): host ident authuser [dd/Mon/yyyy:hh:mm:ss zone]
#   "request" status bytes, `-` for an absent value; Combined adds "referer" "user-agent".
# Keyed by (file, 1-based line); None means the line must become a dead letter.
SPEC: dict[tuple[str, int], dict[str, object] | None] = {
    ("iisnative-basic.log", 1): {
        "@timestamp": "2001-03-20T06:55:20.000Z",  # 07:55:20 CET
        "source.ip": "192.168.114.201",
        "destination.ip": "172.21.13.45",
        "iis.access.site_name": "W3SVC2",
        "iis.access.server_name": "SALES1",
        "event.duration": 4502 * 1_000_000,  # ms -> ns
        "http.request.body.bytes": 163,
        "http.response.body.bytes": 3223,
        "http.response.status_code": 200,
        "iis.access.win32_status": 0,
        "http.request.method": "GET",
        "url.path": "/DeptLogo.gif",
    },
    ("iisnative-basic.log", 3): {
        "@timestamp": "2024-07-14T12:03:09.000Z",  # 14:03:09 CEST
        "source.ip": "203.0.113.44",
        "event.duration": 15 * 1_000_000,
        "http.request.body.bytes": 400,
        "http.response.body.bytes": 5120,
        "url.path": "/Reports/view.aspx",
        "url.query": "id=1,2&name=%2527admin%2527",  # the last field keeps its commas
    },
    ("iisnative-basic.log", 6): {
        "@timestamp": "2024-12-31T22:59:59.000Z",  # 23:59:59 CET
        "source.ip": "2001:db8::7",
        "http.request.method": "HEAD",
        "http.response.status_code": 304,
        "url.path": "/",
    },
    ("iisnative-basic.log", 7): None,  # month 13
    ("iisnative-basic.log", 8): None,  # time taken "fast"
    ("iisnative-basic.log", 9): None,  # an NCSA line: not fifteen comma-separated fields
    ("ncsa-common.log", 1): {
        "@timestamp": "2001-04-09T01:39:04.000Z",  # 17:39:04 -0800
        "source.ip": "172.21.13.45",
        "http.request.method": "GET",
        "url.path": "/scripts/iisadmin/ism.dll",
        "url.query": "http/serv",
        "http.version": "1.0",
        "http.response.status_code": 200,
        "http.response.body.bytes": 3401,
    },
    ("ncsa-common.log", 2): {
        "@timestamp": "2024-03-31T00:59:59.000Z",  # 01:59:59 +0100
        "http.response.status_code": 200,
        "http.response.body.bytes": ABSENT,  # `-`
    },
    ("ncsa-common.log", 3): {
        "@timestamp": "2024-03-31T01:00:00.000Z",  # 03:00:00 +0200
        "http.request.method": "POST",
        "url.path": "/api/login",
        "url.query": "next=%252Fadmin",
        "http.response.status_code": 302,
        "http.response.body.bytes": 0,
    },
    ("ncsa-common.log", 5): {
        "@timestamp": "2024-06-15T06:30:00.000Z",  # 12:00:00 +0530
        "http.request.referrer": "https://example.org/?ref=1",
        "user_agent.original": 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) "quoted"',
        "http.response.body.bytes": 512,
    },
    ("ncsa-common.log", 8): None,  # day 32
    ("ncsa-common.log", 9): None,  # month "Foo"
    ("ncsa-common.log", 10): None,  # status "OK"
    ("ncsa-common.log", 11): None,  # not a log line
}


def _flat(doc: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize(("where", "want"), SPEC.items(), ids=lambda x: str(x))
def test_golden_iis_native_and_ncsa_agree_with_the_format_specs(
    where: tuple[str, int], want: dict[str, object] | None
) -> None:
    name, number = where
    log = GOLDEN / name
    offset = sum(len(line) for line in log.read_bytes().splitlines(keepends=True)[: number - 1])
    expected = log.with_suffix(".expected.ndjson").read_bytes().splitlines()
    docs = [_flat(orjson.loads(x)) for x in expected if x.strip()]
    [doc] = [d for d in docs if d["log.offset"] == offset]
    if want is None:
        assert doc["event.kind"] == "pipeline_error", doc
        return
    assert doc["event.kind"] == "event"
    for field, value in want.items():
        assert doc.get(field, ABSENT) == value, field
