"""Agent, collector and Elasticsearch as real processes on loopback, with a writer that
imitates IIS (header blocks, rollover, a `#Fields` change mid-file, lines written in two
pieces). The agent and the collector are killed with SIGKILL at random moments and restarted,
and Elasticsearch is restarted once; at the end every line written is a document exactly once,
and the archive verifies and gives back the files byte for byte.

This restarts the shared test node (`iiswatch es down` / `es up` with this run's
IISWATCH_HOME) and waits for it to be green again before finishing; marked `restarts_shared`,
it runs after every other test.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.ingest.collector.tokens import TokenStore
from tests.integration.collector_proc import CLI, CollectorProcess

pytestmark = pytest.mark.integration

AGENT = [sys.executable, "-m", "iiswatch.cli.agent", "run"]
# IIS restarted with cs-host added: a second header block in the middle of a file.
FIELDS_WITH_HOST = (*W3C_DEFAULT_FIELDS[:11], "cs-host", *W3C_DEFAULT_FIELDS[11:])
LINES_PER_FILE = 700
FILES = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class IisWriter(threading.Thread):
    """Writes FILES daily logs one after the other, in bursts, as IIS does: a header block
    when a file is opened, CRLF lines, sometimes a line in two writes (the agent must not
    ship half of it), and in the second file a restart with another field set."""

    def __init__(self, folder: Path, month: date, seed: int) -> None:
        super().__init__(daemon=True)
        self.folder, self.month, self.rng = folder, month, random.Random(seed)
        self.events = 0
        self.with_host = 0
        self.files: list[Path] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._write()
        except BaseException as e:  # surfaced by the test
            self.error = e

    def _write(self) -> None:
        rng = self.rng
        for day in range(FILES):
            start = datetime(self.month.year, self.month.month, 1 + day, tzinfo=UTC)
            path = self.folder / f"u_ex{start:%y%m%d}.log"
            self.files.append(path)
            lines = list(generate_w3c_lines(LINES_PER_FILE, seed=day + 11, start=start))
            restart_at = LINES_PER_FILE // 2 if day == 1 else None
            with path.open("ab", buffering=0) as fh:
                fh.write(w3c_header(W3C_DEFAULT_FIELDS, start).encode())
                i = 0
                while i < len(lines):
                    n = min(rng.randint(1, 25), len(lines) - i)
                    if restart_at is not None and i < restart_at < i + n:
                        n = restart_at - i
                    if i == restart_at:
                        when = start + timedelta(hours=12)
                        fh.write(w3c_header(FIELDS_WITH_HOST, when).encode())
                    after = restart_at is not None and i >= restart_at
                    data = b"".join(self._render(line, after) for line in lines[i : i + n])
                    if rng.random() < 0.3:  # a line cut in two writes
                        cut = len(data) - rng.randint(1, 60)
                        fh.write(data[:cut])
                        time.sleep(rng.uniform(0.05, 0.4))
                        fh.write(data[cut:])
                    else:
                        fh.write(data)
                    self.events += n
                    i += n
                    time.sleep(rng.uniform(0.05, 0.25))

    def _render(self, line: str, with_host: bool) -> bytes:
        if with_host:
            tokens = line.split(" ")
            tokens.insert(11, "www.example.com")
            line = " ".join(tokens)
            self.with_host += 1
        return (line + "\r\n").encode()


class Agent:
    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = args, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(self.args, stderr=err, stdout=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def es_cli(*args: str) -> None:
    done = subprocess.run([*CLI, "es", *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.restarts_shared
def test_nothing_is_lost_or_duplicated_when_agent_collector_and_elasticsearch_fail(
    tmp_path: Path, admin_es: Elasticsearch, test_month: date, host_name: str
) -> None:
    rng = random.Random(int(os.environ.get("IISWATCH_CHAOS_SEED", "20261126")))
    logs = tmp_path / "logs" / "W3SVC1"
    logs.mkdir(parents=True)
    archive, key = tmp_path / "archive", tmp_path / "keys" / "archive.key"
    name = f"agent-it-{os.getpid()}"
    token_file = tmp_path / "token"
    token_file.write_text(TokenStore(archive).add(name, hosts=[host_name]) + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "agent.toml"
    config.write_text(
        "[agent]\npoll_interval = 0.1\nbatch_max_wait = 0.3\nbackoff_initial = 0.2\n"
        "backoff_max = 2.0\nidentity_settle = 0.5\nbatch_max_lines = 400\n"
    )
    agent = Agent(
        [*AGENT, "--config", str(config), "--collector", url, "--token-file", str(token_file),
         "--path", str(tmp_path / "logs" / "*" / "*.log"), "--state", str(tmp_path / "state"),
         "--name", name, "--host-name", host_name],
        tmp_path / "agent.err",
    )  # fmt: skip
    collector = CollectorProcess(archive, key, "--listen", f"127.0.0.1:{port}")
    writer = IisWriter(logs, test_month, seed=rng.randrange(1 << 30))
    es_down = False
    try:
        collector.start()
        agent.start()
        writer.start()
        # chaos while IIS writes: (moment in seconds from now, action)
        plan = sorted(
            [(rng.uniform(2, 30), "agent") for _ in range(3)]
            + [(rng.uniform(2, 30), "collector") for _ in range(2)]
            + [(rng.uniform(6, 14), "elasticsearch")]
        )
        t0 = time.monotonic()
        for at, what in plan:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            if what == "agent":
                agent.kill()
                time.sleep(rng.uniform(0.1, 1.5))
                agent.start()
            elif what == "collector":
                collector.kill()
                time.sleep(rng.uniform(0.1, 1.5))
                collector.start()
            else:
                es_cli("down")
                es_down = True
                time.sleep(rng.uniform(1, 4))
                es_cli("up")
                es_down = False
        writer.join(120)
        assert not writer.is_alive() and writer.error is None, writer.error
        admin_es.cluster.health(wait_for_status="green", timeout="60s")

        def count() -> int:
            admin_es.indices.refresh(index="iis-access-*,iiswatch-deadletter*")
            return int(
                admin_es.count(
                    index=f"iis-access-{test_month:%Y.%m},iiswatch-deadletter*",
                    query={"term": {"host.name": host_name}},
                    ignore_unavailable=True,
                )["count"]
            )

        try:
            wait_for(lambda: count() >= writer.events, 60, f"{writer.events} documents")
        except AssertionError as e:
            log = (tmp_path / "agent.err").read_text(errors="replace")[-4000:]
            raise AssertionError(
                f"{e}: {count()} indexed\nagent:\n{log}\ncollector:\n{collector.stderr()[-4000:]}"
            ) from None
        time.sleep(1.5)  # anything still in flight would show up now
        assert agent.stop() == 0
        assert collector.stop() == 0, collector.stderr()
    finally:
        agent.kill()
        collector.kill()
        if es_down:
            es_cli("up")

    agent_log = (tmp_path / "agent.err").read_text(errors="replace")
    assert writer.events == FILES * LINES_PER_FILE
    hits = admin_es.search(
        index=f"iis-access-{test_month:%Y.%m},iiswatch-deadletter*",
        query={"term": {"host.name": host_name}},
        source=["log.offset", "iiswatch.file_id", "event.dataset", "destination.domain"],
        size=10_000,
    )["hits"]["hits"]
    datasets = [h["_source"]["event"]["dataset"] for h in hits]
    assert "iiswatch.deadletter" not in datasets, "a line was shipped in pieces or misparsed"
    keys = {(h["_source"]["iiswatch"]["file_id"], h["_source"]["log"]["offset"]) for h in hits}
    assert len(hits) == len(keys) == writer.events, agent_log[-3000:]
    # the lines after the mid-file header block were parsed with its #Fields, restarts or not
    domains = [h["_source"].get("destination", {}).get("domain") for h in hits]
    assert domains.count("www.example.com") == writer.with_host > 0

    verify = subprocess.run(
        [*CLI, "archive", "verify", str(archive), "--key", str(key)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for path in writer.files:
        exported = subprocess.run(
            [*CLI, "archive", "export", str(archive), "--host", host_name, "--file", path.name],
            capture_output=True, timeout=120,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr.decode()
        assert exported.stdout == path.read_bytes(), f"{path.name} differs from its export"
