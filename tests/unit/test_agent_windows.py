"""The agent runs on Windows: its modules import and use nothing POSIX-only, and its path
handling is right for Windows paths (checked here with `PureWindowsPath` and `ntpath`)."""

from __future__ import annotations

import ast
import importlib
import logging
import ntpath
import pkgutil
import sys
import threading
import tomllib
from pathlib import Path, PureWindowsPath

import pytest

import iiswatch.ingest.agent as agent_pkg
from iiswatch.ingest.agent.config import load_agent_config
from iiswatch.ingest.agent.follow import path_key, site_of
from iiswatch.ingest.agent.netsh import start_flusher

AGENT_MODULES = sorted(m.name for m in pkgutil.iter_modules(agent_pkg.__path__))
POSIX_ONLY_MODULES = {"fcntl", "termios", "pwd", "grp", "resource", "pty", "tty", "posix"}
POSIX_ONLY_CALLS = {
    ("os", "getuid"), ("os", "geteuid"), ("os", "getgid"), ("os", "fork"), ("os", "setsid"),
    ("os", "killpg"), ("os", "getpgid"), ("os", "chown"), ("os", "mkfifo"),
    ("signal", "SIGHUP"), ("signal", "SIGKILL"), ("signal", "SIGUSR1"), ("signal", "SIGQUIT"),
    ("signal", "alarm"), ("select", "poll"), ("select", "epoll"),
}  # fmt: skip


@pytest.mark.parametrize("name", [*AGENT_MODULES, "cli"])
def test_agent_module_imports_and_uses_nothing_posix_only(name: str) -> None:
    module = importlib.import_module(
        "iiswatch.cli.agent" if name == "cli" else f"iiswatch.ingest.agent.{name}"
    )
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & POSIX_ONLY_MODULES
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in POSIX_ONLY_MODULES
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in POSIX_ONLY_CALLS, f"{name}: {node.attr}"


def test_every_agent_module_is_checked() -> None:
    assert {"checkpoint", "config", "discover", "follow", "netsh", "run", "shipper"} <= set(
        AGENT_MODULES
    )


def test_site_label_comes_from_the_iis_folder_of_a_windows_path() -> None:
    p = PureWindowsPath(r"C:\inetpub\logs\LogFiles\W3SVC12\u_ex261126.log")
    assert site_of(p, None) == "W3SVC12"
    assert site_of(PureWindowsPath(r"C:\Windows\System32\LogFiles\HTTPERR\httperr1.log"), None) == (
        "HTTPERR"
    )
    assert site_of(p, "shop") == "shop"


def test_windows_paths_compare_case_insensitively_with_either_slash() -> None:
    a = path_key(r"C:\inetpub\logs\LogFiles\W3SVC1\u_ex261126.log", ntpath)
    b = path_key("c:/INETPUB/logs/logfiles/w3svc1/U_EX261126.LOG", ntpath)
    assert a == b
    assert a != path_key(r"C:\inetpub\logs\LogFiles\W3SVC2\u_ex261126.log", ntpath)


def test_config_with_windows_paths_round_trips_backslashes(tmp_path: Path) -> None:
    text = r"""
[agent]
name = "web01"
collector = "https://collector.corp.example:8443"
token_file = 'C:\ProgramData\iiswatch\agent.token'
state = 'C:\ProgramData\iiswatch\state'

[[inputs]]
path = 'C:\inetpub\logs\LogFiles\W3SVC1\*.log'
format = "w3c"
"""
    f = tmp_path / "agent.toml"
    f.write_text(text, encoding="utf-8")
    cfg = load_agent_config(f, {})
    assert cfg.inputs[0].path == r"C:\inetpub\logs\LogFiles\W3SVC1\*.log"
    assert PureWindowsPath(str(cfg.token_file)).name == "agent.token"
    assert tomllib.loads(text)["agent"]["state"] == str(cfg.state)


@pytest.mark.skipif(sys.platform == "win32", reason="the warning is for other systems")
def test_netsh_flush_is_a_warned_no_op_off_windows(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert start_flusher(10, threading.Event()) is None
    assert "only on Windows" in caplog.text
    assert start_flusher(0, threading.Event()) is None  # off by default, silently


def test_site_label_is_safe_as_an_archive_folder_name() -> None:
    assert site_of(PureWindowsPath(r"D:\Log Files\..\W3SVC1\x.log"), None) == "W3SVC1"
    assert site_of(PureWindowsPath(r"D:\Log Files\u_ex1.log"), None) == "Log_Files"
    assert site_of(PureWindowsPath(r"D:\.hidden..x\u_ex1.log"), None) == "hidden_x"
