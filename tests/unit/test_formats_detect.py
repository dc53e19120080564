"""Format detection from the first non-blank line of a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iiswatch.ingest.formats.detect import detect_format
from iiswatch.ingest.model import FORMATS
from tests.unit.conformance import CORPUS

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"#Software: Microsoft HTTP API 2.0", "httperr"),
        (b"#Software: Microsoft HTTP API 2.0\r", "httperr"),
        (b"\xef\xbb\xbf#Software: Microsoft HTTP API 2.0", "httperr"),
        (
            b"#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri sc-status "
            b"s-siteid s-reason s-queuename",
            "httperr",
        ),
        (b"#Software: Microsoft Internet Information Services 10.0", "w3c"),
        (b"#Version: 1.0", "w3c"),
        (b"#Fields: date time s-ip cs-method cs-uri-stem", "w3c"),
        (
            b"2018-01-01 08:09:10 172.31.77.6 2094 172.31.77.6 80 HTTP/1.1 GET /qos/1kbfile.txt "
            b"503 - ConnLimit -",
            "httperr",
        ),
        (b"2018-12-30 14:22:07 ::1%0 49958 ::1%0 80 - - - - - - Timer_ConnectionIdle -", "httperr"),
        (
            b"2018-11-19 13:43:53 10.0.0.5 GET /default.aspx - 443 - 10.0.0.9 "
            b"Mozilla/5.0+(Windows+NT+10.0) - 200 0 0 115",
            "w3c",
        ),
        (b"13:43:53 10.0.0.9 GET /default.htm 200 HTTP/1.0", "w3c"),
        (
            b"192.168.114.201, -, 03/20/01, 7:55:20, W3SVC2, SALES1, 172.21.13.45, 4502, 163, "
            b"3223, 200, 0, GET, /DeptLogo.gif, -,",
            "iis",
        ),
        (
            b"10.0.0.1, CONTOSO\\bob, 7/14/2024, 14:03:09, W3SVC1, WEB01, 10.0.0.2, 15, 400, "
            b"5120, 200, 0, GET, /a, id=1,",
            "iis",
        ),
        (
            b'172.21.13.45 - Microsoft\\fred [08/Apr/2001:17:39:04 -0800] "GET /x?y HTTP/1.0" '
            b"200 3401",
            "ncsa",
        ),
        (b'host.example - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326', "ncsa"),
        (b"", None),
        (b"   \r", None),
        (b"hello world", None),
        (b"\x00\xff\xfe garbage", None),
    ],
)
def test_first_line_names_the_format(line: bytes, expected: str | None) -> None:
    assert detect_format(line) == expected


def _first_line(path: Path) -> bytes:
    for line in path.read_bytes().splitlines():
        if line.strip():
            return line
    return b""


@pytest.mark.parametrize(
    "log",
    sorted(GOLDEN.glob("*.log")),
    ids=lambda p: p.name,
)
def test_each_golden_sample_is_detected_as_its_format(log: Path) -> None:
    expected = {"httperr": "httperr", "iisnative": "iis", "ncsa": "ncsa"}.get(
        log.name.split("-", 1)[0], "w3c"
    )
    assert detect_format(_first_line(log)) == expected


def test_every_conformance_file_is_detected_as_access_or_error() -> None:
    if not CORPUS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"conformance corpus missing under {CORPUS} (required in CI)")
        pytest.skip(f"conformance corpus not found under {CORPUS}")
    for log in sorted(CORPUS.glob("*/*.log")):
        expected = "httperr" if log.parent.name.endswith("-error") else "w3c"
        assert detect_format(_first_line(log)) == expected, log


@given(st.binary(max_size=200))
def test_any_bytes_give_a_known_format_or_none(data: bytes) -> None:
    assert detect_format(data) in (*FORMATS, None)
