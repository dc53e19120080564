"""`iiswatch es` against the node the test run started with `iiswatch es up` (same
IISWATCH_HOME / IISWATCH_ES_PORT through the environment). These tests never stop that node;
the ones that need a node of their own use a throwaway IISWATCH_HOME and start none."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from iiswatch import paths
from iiswatch.cli.es import app

pytestmark = pytest.mark.integration

runner = CliRunner()


def es(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env)


@pytest.fixture(scope="module")
def shared_node() -> dict[str, object]:
    """The running shared node's status; fails (never skips) when there is none."""
    result = es("status", "--json")
    st = json.loads(result.stdout)
    if not st["answering"]:
        pytest.fail(
            f"the integration tests need the node `iiswatch es up` starts in "
            f"{paths.es_state_dir()} (status: {st}); run `bash scripts/test`",
            pytrace=False,
        )
    return st


@pytest.fixture
def throwaway_home(tmp_path: Path) -> dict[str, str | None]:
    return {"IISWATCH_HOME": str(tmp_path), "IISWATCH_ES_PORT": None}


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_status_reports_the_shared_node_green(shared_node: dict[str, object]) -> None:
    result = es("status")
    assert result.exit_code == 0, result.output
    assert shared_node["health"] == "green"
    assert shared_node["heap_max_bytes"]
    assert isinstance(shared_node["docs"], int)
    connection = json.loads((paths.es_state_dir() / "connection.json").read_text())
    assert connection["url"] == shared_node["url"]
    assert connection["pid"] == shared_node["pid"]


def test_credentials_are_readable_by_their_owner_only(shared_node: dict[str, object]) -> None:
    for name in ("connection.json", "elastic.password"):
        mode = stat.S_IMODE((paths.es_state_dir() / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"


def test_up_a_second_time_is_a_no_op(shared_node: dict[str, object]) -> None:
    # the mechanism, not a stopwatch: the running node is found and nothing is rewritten
    # (how long `es up` takes belongs to a bench)
    connection = paths.es_state_dir() / "connection.json"
    before = (connection.read_bytes(), connection.stat().st_mtime_ns)
    result = es("up")
    assert result.exit_code == 0, result.output
    assert "already running" in result.stdout
    assert (connection.read_bytes(), connection.stat().st_mtime_ns) == before
    assert json.loads(es("status", "--json").stdout)["pid"] == shared_node["pid"]


def test_logs_prints_the_last_lines_of_the_node_log(shared_node: dict[str, object]) -> None:
    result = es("logs", "-n", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    log = (paths.es_state_dir() / "logs" / "iiswatch.log").read_text(errors="replace")
    assert all(line in log for line in lines)


def test_up_on_a_port_in_use_fails_with_exit_code_3_and_starts_nothing(
    throwaway_home: dict[str, str | None], occupied_port: int
) -> None:
    result = es("up", "--port", str(occupied_port), env=throwaway_home)
    assert result.exit_code == 3, result.output
    assert f"port {occupied_port} on 127.0.0.1 is already in use" in result.stderr
    assert "hint:" in result.stderr
    assert not (Path(str(throwaway_home["IISWATCH_HOME"])) / "es" / "node.pid").exists()


def test_status_without_a_node_says_not_running_with_exit_code_3(
    throwaway_home: dict[str, str | None],
) -> None:
    result = es("status", "--json", env=throwaway_home)
    assert result.exit_code == 3
    assert json.loads(result.stdout)["running"] is False


def test_a_stale_pid_file_is_cleaned_up(throwaway_home: dict[str, str | None]) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    state = Path(str(throwaway_home["IISWATCH_HOME"])) / "es"
    state.mkdir()
    (state / "node.pid").write_text(f"{gone.pid}\n")
    (state / "connection.json").write_text('{"url": "http://127.0.0.1:1"}')

    result = es("status", env=throwaway_home)

    assert result.exit_code == 3
    assert "not running" in result.stdout
    assert not (state / "node.pid").exists()
    assert not (state / "connection.json").exists()


def test_down_without_a_node_is_a_no_op(throwaway_home: dict[str, str | None]) -> None:
    result = es("down", env=throwaway_home)
    assert result.exit_code == 0, result.output
    assert "was not running" in result.stdout
