"""The `command` destination with real scripts: the alert arrives as JSON on stdin, the
first line of stdout is the ticket, and a failure or a timeout is recorded with the exit
status and the end of stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from iiswatch.alerting.config import AlertingConfig, parse_config
from iiswatch.alerting.delivery import Deliverer
from iiswatch.alerting.outbox import Outbox
from tests.integration.alerting_support import alerting_client, outbox_index, unique_alert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def es() -> Elasticsearch:
    return alerting_client()


@pytest.fixture
def index(es: Elasticsearch) -> Iterator[str]:
    name = outbox_index()
    yield name
    es.indices.delete(index=name, ignore_unavailable=True)


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "open-ticket.py"
    path.write_text(f"#!{sys.executable}\nimport json, os, sys, time\n{body}\n")
    path.chmod(0o755)
    return path


def config(argv: list[str], timeout: str = "10s") -> AlertingConfig:
    return parse_config(
        f"""
[delivery]
backoff_base = "10ms"
quick_attempts = 1
[destinations.script]
type = "command"
argv = {orjson.dumps(argv).decode()}
timeout = "{timeout}"
env = {{ TICKET_QUEUE = "web" }}
"""
    )


def test_the_script_gets_the_alert_on_stdin_and_its_stdout_is_the_ticket(
    tmp_path: Path, es: Elasticsearch, index: str
) -> None:
    received = tmp_path / "received.json"
    path = script(
        tmp_path,
        f"alert = json.load(sys.stdin)\n"
        f"open({str(received)!r}, 'w').write(json.dumps(alert))\n"
        f"print('TICKET-42', os.environ['TICKET_QUEUE'])\n"
        f"print('more output is ignored')",
    )
    alert = unique_alert()
    alert["samples"][0]["event"]["original"] += " {{7*7}}"
    outbox = Outbox(es, index)
    outbox.put_new(alert, destinations=["script"])
    [report] = Deliverer(es, config([str(path), "--queue", "web"]), index=index).deliver_pending(
        ids=[alert["alert_id"]]
    )

    assert report.status == "delivered"
    assert report.results[0].ticket_id == "TICKET-42 web"
    got = orjson.loads(received.read_bytes())
    assert got["alert_id"] == alert["alert_id"]
    assert got["samples"] == alert["samples"]  # the log line, {{7*7}} and all, as data
    assert "delivery" not in got  # the outbox's bookkeeping is not the alert
    rec = outbox.get(alert["alert_id"])
    assert rec is not None
    assert rec.delivery["attempts"][0]["detail"]["exit_status"] == 0


def test_a_failing_script_is_retried_with_its_exit_status_and_stderr_kept(
    tmp_path: Path, es: Elasticsearch, index: str
) -> None:
    path = script(
        tmp_path,
        "sys.stdin.read()\n"
        "sys.stderr.write('x' * 5000 + '\\nservice desk API returned 503\\n')\n"
        "sys.exit(3)",
    )
    alert = unique_alert()
    outbox = Outbox(es, index)
    outbox.put_new(alert, destinations=["script"])
    [report] = Deliverer(es, config([str(path)]), index=index).deliver_pending(
        ids=[alert["alert_id"]]
    )

    assert report.status == "new"  # retried later
    assert "exited with status 3: service desk API returned 503" in report.errors["script"]
    rec = outbox.get(alert["alert_id"])
    assert rec is not None
    attempt = rec.delivery["attempts"][0]
    assert attempt["outcome"] == "retryable"
    assert attempt["detail"]["exit_status"] == 3
    tail = attempt["detail"]["stderr_tail"]
    assert tail.endswith("service desk API returned 503\n") and len(tail) <= 2001


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_script_past_its_timeout_is_killed_and_the_timeout_recorded(
    tmp_path: Path, es: Elasticsearch, index: str
) -> None:
    pids, finished = tmp_path / "pids", tmp_path / "finished"
    sleeper = f"import time; time.sleep(60); open({str(finished)!r}, 'w').write('x')"
    path = script(
        tmp_path,
        "import subprocess\n"
        f"child = subprocess.Popen([sys.executable, '-c', {sleeper!r}])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "sys.stderr.write('waiting\\n'); sys.stderr.flush(); time.sleep(60)",
    )
    alert = unique_alert()
    outbox = Outbox(es, index)
    outbox.put_new(alert, destinations=["script"])
    [report] = Deliverer(es, config([str(path)], "5s"), index=index).deliver_pending(
        ids=[alert["alert_id"]]
    )

    assert report.status == "new"
    assert "did not finish within 5s" in report.errors["script"]
    rec = outbox.get(alert["alert_id"])
    assert rec is not None
    detail = rec.delivery["attempts"][0]["detail"]
    assert detail["timeout"] is True
    assert detail["stderr_tail"] == "waiting\n"
    # the mechanism: the script and the child it started were killed (its process group),
    # not left to sleep on; checked on the processes, not with a stopwatch
    script_pid, child_pid = map(int, pids.read_text().split())
    deadline = time.monotonic() + 30
    while (_alive(script_pid) or _alive(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(script_pid) and not _alive(child_pid)
    assert not finished.exists()  # killed, not waited for until it was done


def test_a_missing_program_is_a_permanent_failure(
    tmp_path: Path, es: Elasticsearch, index: str
) -> None:
    alert = unique_alert()
    Outbox(es, index).put_new(alert, destinations=["script"])
    [report] = Deliverer(
        es, config([str(tmp_path / "no-such-program")]), index=index
    ).deliver_pending(ids=[alert["alert_id"]])
    assert report.status == "failed"
    assert "cannot run command script" in report.errors["script"]
