"""Quarantine moves a file only from inside the site's physical path (as applicationHost.config
declares it), after hashing it and handing its bytes over; and the policy never blocks
allow-listed or private addresses unless forced."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from pathlib import Path

import pytest

from iiswatch.errors import UsageError
from iiswatch.respond.policy import Policy, parse_ip, refusal
from iiswatch.respond.quarantine import QuarantineError, icacls_args, quarantine
from iiswatch.respond.sites import read_sites

SHELL = b'<%@ Page Language="C#" %><% Response.Write(Request["cmd"]); %>\r\n'


def apphost(tmp_path: Path, root: Path, uploads: Path) -> Path:
    cfg = tmp_path / "applicationHost.config"
    cfg.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<configuration>
    <system.applicationHost>
        <sites>
            <site name="Default Web Site" id="1">
                <application path="/">
                    <virtualDirectory path="/" physicalPath="{root}" />
                    <virtualDirectory path="/files" physicalPath="{uploads}" />
                </application>
            </site>
            <site name="Other" id="2">
                <application path="/">
                    <virtualDirectory path="/" physicalPath="{tmp_path / "other"}" />
                </application>
            </site>
        </sites>
    </system.applicationHost>
</configuration>
"""
    )
    return cfg


@pytest.fixture
def web(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "wwwroot"
    (root / "uploads").mkdir(parents=True)
    (root / "uploads" / "x.aspx").write_bytes(SHELL)
    (root / "default.aspx").write_text("home")
    files = tmp_path / "files-share"
    files.mkdir()
    (files / "y.aspx").write_bytes(SHELL + b"2")
    (tmp_path / "other").mkdir()
    (tmp_path / "secret.txt").write_text("not the web's")
    return {
        "root": root,
        "config": apphost(tmp_path, root, files),
        "qdir": tmp_path / "quarantine",
        "tmp": tmp_path,
    }


def run(web: dict[str, Path], url: str, sent: list[tuple[str, bytes]]) -> tuple[object, Path]:
    sites = read_sites(web["config"])
    return quarantine(
        sites["Default Web Site"],
        url,
        web["qdir"],
        "quarantine-1",
        sites,
        lambda found, data: sent.append((found.sha256, data)),
    )


def test_web_shell_is_hashed_handed_over_and_moved_out_of_the_web_root(
    web: dict[str, Path],
) -> None:
    sent: list[tuple[str, bytes]] = []
    _, dest = run(web, "/uploads/x.aspx", sent)
    digest = hashlib.sha256(SHELL).hexdigest()
    assert sent == [(digest, SHELL)]
    assert not (web["root"] / "uploads" / "x.aspx").exists()
    assert dest.read_bytes() == SHELL
    assert dest.parent == web["qdir"].resolve()
    assert web["root"].resolve() not in dest.parents
    assert (dest.stat().st_mode & 0o777) == 0o400
    assert (web["qdir"].stat().st_mode & 0o777) == 0o700
    assert digest in dest.with_name(dest.name + ".json").read_text()


def test_a_virtual_directory_elsewhere_is_part_of_the_site(web: dict[str, Path]) -> None:
    sent: list[tuple[str, bytes]] = []
    run(web, "/files/y.aspx", sent)
    assert sent and not (web["tmp"] / "files-share" / "y.aspx").exists()


@pytest.mark.parametrize(
    "url",
    [
        "/../secret.txt",
        "/uploads/%2e%2e/%2e%2e/secret.txt",
        "/uploads/..%5c..%5csecret.txt",
        "uploads/x.aspx",
    ],
)
def test_paths_that_leave_the_web_root_are_refused(web: dict[str, Path], url: str) -> None:
    sent: list[tuple[str, bytes]] = []
    with pytest.raises(QuarantineError):
        run(web, url, sent)
    assert sent == []
    assert (web["tmp"] / "secret.txt").exists()


def test_a_link_out_of_the_root_is_not_followed(web: dict[str, Path]) -> None:
    os.symlink(web["tmp"] / "secret.txt", web["root"] / "uploads" / "link.aspx")
    sent: list[tuple[str, bytes]] = []
    with pytest.raises(QuarantineError, match="not a regular file"):
        run(web, "/uploads/link.aspx", sent)
    assert (web["tmp"] / "secret.txt").exists() and sent == []


def test_nothing_moves_when_the_evidence_is_not_stored(web: dict[str, Path]) -> None:
    sites = read_sites(web["config"])

    def refuse(found: object, data: bytes) -> None:
        raise QuarantineError("collector unreachable", None)

    with pytest.raises(QuarantineError, match="unreachable"):
        quarantine(sites["Default Web Site"], "/uploads/x.aspx", web["qdir"], "q", sites, refuse)
    assert (web["root"] / "uploads" / "x.aspx").read_bytes() == SHELL


def test_quarantine_folder_inside_a_web_root_is_refused(web: dict[str, Path]) -> None:
    web["qdir"] = web["root"] / "quarantine"
    sent: list[tuple[str, bytes]] = []
    with pytest.raises(QuarantineError, match="inside site"):
        run(web, "/uploads/x.aspx", sent)
    assert (web["root"] / "uploads" / "x.aspx").exists() and sent == []


def test_missing_file_says_so(web: dict[str, Path]) -> None:
    with pytest.raises(QuarantineError, match="is not there"):
        run(web, "/uploads/gone.aspx", [])


def test_icacls_command_line_locks_the_folder_to_administrators_and_system() -> None:
    assert icacls_args(Path("C:/ProgramData/iiswatch/quarantine"))[2:] == [
        "/inheritance:r",
        "/grant:r",
        "*S-1-5-32-544:(OI)(CI)F",
        "/grant:r",
        "*S-1-5-18:(OI)(CI)F",
    ]


@pytest.mark.parametrize(
    "ip",
    [
        "10.1.2.3",
        "192.168.0.10",
        "172.20.1.1",
        "127.0.0.1",
        "100.64.3.4",
        "fe80::1",
        "fd00::5",
        "::ffff:10.0.0.1",
    ],
)
def test_private_addresses_are_not_blocked_unless_forced(ip: str) -> None:
    addr = parse_ip(ip)
    assert "private or local" in (refusal(addr, Policy()) or "")
    assert refusal(addr, Policy(), force=True) is None


def test_allow_listed_addresses_are_never_blocked_even_forced() -> None:
    policy = Policy(never_block=("198.51.100.0/24", "10.9.9.9"))
    assert "allow-list" in (refusal(ipaddress.ip_address("198.51.100.7"), policy, force=True) or "")
    assert "allow-list" in (refusal(ipaddress.ip_address("10.9.9.9"), policy, force=True) or "")
    assert refusal(ipaddress.ip_address("203.0.113.9"), policy) is None


def test_not_an_address_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not an IP address"):
        parse_ip("203.0.113.9; touch MARKER")
