"""Attack 8, the smaller items: each a way the old code leaked or misled."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from iiswatch.alerting.config import CommandDestination
from iiswatch.alerting.destinations.command import Command
from iiswatch.alerting.templates import sample_alert
from iiswatch.errors import ConfigError
from iiswatch.ingest.agent.config import read_token
from iiswatch.ingest.agent.shipper import Shipper
from iiswatch.ingest.collector.metrics import MAX_FILE_SERIES, MAX_LABEL, Metrics
from tests.integration.collector_proc import CLI, post, send_batch
from tests.security.support import batch, collector, log_file, whole_file_chunk


def test_a_command_destination_does_not_inherit_other_destinations_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IISWATCH_JIRA_TOKEN", "secret-of-another-destination")
    printer = (
        "import os, sys; "
        "sys.stdout.write(repr((os.environ.get('IISWATCH_JIRA_TOKEN'), os.environ['QUEUE'])))"
    )
    cfg = CommandDestination.model_validate(
        {"type": "command", "argv": [sys.executable, "-c", printer], "env": {"QUEUE": "web"}}
    )
    result = Command("script", cfg).deliver(sample_alert())
    assert result.ticket_id == "(None, 'web')"  # its own env, not the service's secrets


def test_the_collector_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    run = subprocess.run(
        [*CLI, "collector", "run", "--listen", "0.0.0.0:0", "--archive", str(tmp_path / "a"),
         "--key", str(tmp_path / "k")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "plain http" in run.stderr and "--insecure" in run.stderr


def test_the_agent_refuses_to_send_its_token_over_plain_http_off_loopback() -> None:
    with pytest.raises(ConfigError, match="plain http"):
        Shipper("http://192.0.2.10:8443", lambda: "token")
    Shipper("http://192.0.2.10:8443", lambda: "token", insecure=True).close()
    Shipper("http://127.0.0.1:8443", lambda: "token").close()


def test_a_token_file_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    token.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert read_token(token) == "secret"
    assert "readable by group or others" in caplog.text
    caplog.clear()
    token.chmod(0o600)
    read_token(token)
    assert caplog.text == ""


@pytest.mark.integration
@pytest.mark.usefixtures("witness_cleanup")
def test_metrics_can_require_a_token_and_archive_ls_shows_control_characters(
    tmp_path: Path, host_name: str, month_1988: date
) -> None:
    (tmp_path / "metrics.token").write_text("m3trics\n")
    extra = ("--metrics-token-file", str(tmp_path / "metrics.token"))
    with collector(tmp_path, {"web01": [host_name]}, *extra) as c:
        assert post(c.url, "/metrics", method="GET")[0] == 401
        auth = {"Authorization": "Bearer m3trics"}
        assert post(c.url, "/metrics", method="GET", headers=auth)[0] == 200
        data = log_file(month_1988, 3)
        ch = whole_file_chunk(data, host_name)
        ch["path"] = "C:\\logs\\\x1b[2J\x1b]0;owned\x07u_ex880101.log"
        status, answer = send_batch(c.url, c.tokens["web01"], batch("web01", host_name, [ch]))
        assert status == 200, answer
    ls = subprocess.run(
        [*CLI, "archive", "ls", str(c.archive)], capture_output=True, text=True, timeout=120
    )
    assert ls.returncode == 0, ls.stderr
    assert "\x1b" not in ls.stdout and "\x07" not in ls.stdout
    assert "\\x1b" in ls.stdout


def test_per_file_metrics_are_bounded_whatever_agents_send() -> None:
    m = Metrics()
    for i in range(MAX_FILE_SERIES + 500):
        m.file_position("web01", "web01", f"{i:032x}", "C:\\" + "x" * 4000, 10, 20)
    text = m.render().decode()
    assert text.count("iiswatch_collector_file_lag_bytes{") == MAX_FILE_SERIES
    assert len(text) < 3 * MAX_FILE_SERIES * (3 * 250 + MAX_LABEL)


def test_credentials_in_the_elasticsearch_url_are_never_echoed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IISWATCH_ES_")}
    env |= {"IISWATCH_ES_URL": "http://analyst:s3cr3t-pw@127.0.0.1:9", "IISWATCH_ES_API_KEY": "k"}
    run = subprocess.run(
        [*CLI, "search", "source.ip:192.0.2.1", "--count"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert run.returncode == 3, run.stdout + run.stderr
    assert "127.0.0.1:9" in run.stderr
    assert "s3cr3t-pw" not in run.stdout + run.stderr


def test_re_ingesting_a_host_folder_without_the_flag_adds_nothing(
    tmp_path: Path, month_1988: date, host_name: str
) -> None:
    """The old default (this machine's name) filed every event again under another host."""
    first = tmp_path / "u_ex880101.log"
    first.write_bytes(log_file(month_1988, 40))
    again = tmp_path / "case" / "hosts" / host_name / "W3SVC1" / "u_ex880101.log"
    again.parent.mkdir(parents=True)
    again.write_bytes(first.read_bytes())

    def ingest(*args: str) -> dict[str, int]:
        run = subprocess.run(
            [*CLI, "ingest", *args, "--json"], capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stdout + run.stderr
        return json.loads(run.stdout)  # type: ignore[no-any-return]

    assert ingest(str(first), "--host-name", host_name)["indexed"] == 40
    summary = ingest(str(again))
    assert (summary["indexed"], summary["already_present"]) == (0, 40)
