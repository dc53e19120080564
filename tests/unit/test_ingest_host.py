"""The host of an ingested file is never guessed: --host-name, or the archive's
`hosts/<host>/` layout in the path, else `ingest` stops with a usage error (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from iiswatch.errors import EXIT_USAGE, UsageError
from iiswatch.ingest.host_path import host_from_path, hosts_for


@pytest.mark.parametrize(
    ("path", "host"),
    [
        (PurePosixPath("/cases/0412/hosts/web01/W3SVC1/u_ex240514.log"), "web01"),
        (PurePosixPath("/a/hosts/web01/x/hosts/web02/W3SVC1/u_ex.log"), "web02"),  # innermost
        (PureWindowsPath(r"D:\Evidence\Hosts\WEB03\HTTPERR\httperr1.log"), "WEB03"),
        (PurePosixPath("/var/log/iis/W3SVC1/u_ex240514.log"), None),  # no hosts/ folder
        (PurePosixPath("/srv/hosts/u_ex240514.log"), None),  # a file name is not a host
        (PureWindowsPath(r"C:\inetpub\logs\LogFiles\W3SVC1\u_ex240514.log"), None),
        (PurePosixPath("/srv/hosts/../W3SVC1/u.log"), None),  # not a name the archive takes
    ],
)
def test_the_host_is_the_folder_below_hosts(path: PurePosixPath, host: str | None) -> None:
    assert host_from_path(path) == host


def test_the_flag_wins_and_a_path_without_a_host_is_a_usage_error(tmp_path: Path) -> None:
    named = tmp_path / "hosts" / "web01" / "W3SVC1" / "u_ex1.log"
    loose = tmp_path / "u_ex2.log"
    assert hosts_for([named, loose], "web09") == {named: "web09", loose: "web09"}
    assert hosts_for([named], None) == {named: "web01"}
    with pytest.raises(UsageError, match=r"u_ex2\.log") as e:
        hosts_for([named, loose], None)
    assert e.value.hint is not None and "--host-name" in e.value.hint


def test_ingest_without_a_host_stops_before_elasticsearch_and_teaches_the_flag(
    tmp_path: Path,
) -> None:
    log = tmp_path / "u_ex240514.log"
    log.write_bytes(b"#Fields: date time c-ip\r\n2024-05-14 00:00:00 192.0.2.1\r\n")
    run = subprocess.run(
        [sys.executable, "-m", "iiswatch.cli.main", "ingest", str(log)],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "IISWATCH_ES_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert run.returncode == EXIT_USAGE, run.stdout + run.stderr
    assert "u_ex240514.log" in run.stderr and "--host-name" in run.stderr
