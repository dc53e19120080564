"""`parse` reads standard input, UTF-16 logs (with or without a byte order mark, or by
--encoding), and honours a forced --format on a W3C file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iiswatch.errors import UsageError
from iiswatch.ingest.encoding import check_encoding, sniff_encoding

W3C = (
    "#Software: Microsoft Internet Information Services 10.0\r\n"
    "#Fields: date time cs-method cs-uri-stem cs-uri-query c-ip sc-status\r\n"
    "1986-04-01 10:00:00 GET /é.aspx cmd=whoami 192.0.2.7 200\r\n"
    "1986-04-01 10:00:01 GET /b.aspx - 192.0.2.8 404\r\n"
)


def parse(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "iiswatch.cli.main", "parse", "--host-name", "h", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def events(p: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_parse_reads_standard_input() -> None:
    p = parse("-", stdin=W3C.encode())
    assert p.returncode == 0, p.stderr
    docs = events(p)
    assert [d["source"]["ip"] for d in docs] == ["192.0.2.7", "192.0.2.8"]  # type: ignore[index]
    assert docs[0]["log"]["file"]["path"] == "-"  # type: ignore[index]


@pytest.mark.parametrize(
    "data",
    [
        W3C.encode("utf-16"),  # with a byte order mark, as Notepad and PowerShell write
        W3C.encode("utf-16-le"),  # without one
        W3C.encode("utf-16-be"),
    ],
    ids=["bom", "le", "be"],
)
def test_utf16_logs_are_detected_and_parsed(tmp_path: Path, data: bytes) -> None:
    log = tmp_path / "u_ex860401.log"
    log.write_bytes(data)
    p = parse(str(log))
    assert p.returncode == 0, p.stderr
    docs = events(p)
    assert len(docs) == 2
    assert docs[0]["url"]["path"] == "/é.aspx"  # type: ignore[index]
    assert b"\\u0000" not in p.stdout


def test_encoding_option_reads_a_legacy_code_page(tmp_path: Path) -> None:
    log = tmp_path / "u_ex860401.log"
    log.write_bytes(W3C.encode("cp1252"))
    p = parse(str(log), "--encoding", "cp1252")
    assert p.returncode == 0, p.stderr
    assert events(p)[0]["url"]["path"] == "/é.aspx"  # type: ignore[index]
    p = parse(str(log), "--encoding", "klingon")
    assert p.returncode == 2 and b"unknown encoding" in p.stderr


def test_a_forced_format_is_not_overridden_by_the_w3c_header(tmp_path: Path) -> None:
    log = tmp_path / "u_ex860401.log"
    log.write_bytes(W3C.encode())
    p = parse(str(log), "--format", "ncsa")
    # read as NCSA, the W3C lines are not events: dead letters, exit 1 (before: W3C events)
    assert p.returncode == 1
    assert events(p) == []
    assert b"could not be parsed" in p.stderr


def test_sniffing_leaves_utf8_alone() -> None:
    assert sniff_encoding(W3C.encode()) is None
    assert sniff_encoding(b"\xef\xbb\xbf" + W3C.encode()) is None
    assert sniff_encoding(W3C.encode("utf-16")) == "utf-16"
    assert check_encoding("UTF16") == "utf-16"
    with pytest.raises(UsageError):
        check_encoding("nope")
