"""The agent against a real HTTP receiver on 127.0.0.1 (a small `http.server`, not the
collector): protocol, acknowledgements and checkpoints, retries, outages, 401/413, TLS,
latency, restarts and a graceful stop."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from iiswatch.ingest.agent.checkpoint import CheckpointStore
from iiswatch.ingest.agent.config import AgentConfig, InputConfig
from iiswatch.ingest.agent.run import Agent
from iiswatch.ingest.agent.shipper import CollectorUnavailable, Shipper
from iiswatch.ingest.files import file_identity

HEADER = (
    b"#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
    b"#Date: 2026-11-26 00:00:00\r\n"
    b"#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    b"cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n"
)
TOKEN = "agent-token-for-tests"


def line(i: int) -> bytes:
    return (
        f"2026-11-26 00:00:{i % 60:02d} 10.0.0.1 GET /p/{i} - 443 - 203.0.113.9 curl/8 - "
        f"200 0 0 {i}\r\n"
    ).encode()


def lines(a: int, b: int) -> bytes:
    return b"".join(line(i) for i in range(a, b))


class Receiver:
    """Records every POST; answers with the statuses queued in `script`, then 200."""

    def __init__(self, tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.attempts: list[dict[str, Any]] = []  # every request, decoded
        self.acked: list[dict[str, Any]] = []  # batches answered 200
        self.script: deque[int] = deque()
        self.max_data: int | None = None  # 413 for a batch carrying more log bytes than this
        self.token = TOKEN
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                doc = json.loads(gzip.decompress(body))
                doc["_headers"] = dict(self.headers)
                doc["_path"] = self.path
                doc["_received"] = time.monotonic()
                with receiver.lock:
                    receiver.attempts.append(doc)
                    carried = sum(len(base64.b64decode(c["data"])) for c in doc["chunks"])
                    if self.headers.get("Authorization") != f"Bearer {receiver.token}":
                        status = 401
                    elif receiver.max_data is not None and carried > receiver.max_data:
                        status = 413
                    else:
                        status = receiver.script.popleft() if receiver.script else 200
                    if status == 200:
                        receiver.acked.append(doc)
                answer = (
                    {
                        "acked": doc["batch_id"],
                        "chunks": len(doc["chunks"]),
                        "events": 0,
                        "dead_letters": 0,
                    }
                    if status == 200
                    else {"error": f"scripted {status}"}
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def shipped(self) -> dict[str, bytes]:
        """Acknowledged bytes per file name, in offset order, checked to be contiguous."""
        per: dict[str, list[tuple[int, bytes]]] = {}
        with self.lock:
            for doc in self.acked:
                for c in doc["chunks"]:
                    name = c["path"].replace("\\", "/").rsplit("/", 1)[-1]
                    per.setdefault(name, []).append((c["offset"], base64.b64decode(c["data"])))
        out = {}
        for name, parts in per.items():
            data = b""
            for offset, chunk in sorted(parts):
                assert offset <= len(data), f"gap in {name} at {len(data)}"
                data = data[:offset] + chunk if offset < len(data) else data + chunk
            out[name] = data
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def config(tmp_path: Path, url: str, **kw: Any) -> AgentConfig:
    token_file = tmp_path / "token"
    if not token_file.exists():
        token_file.write_text(TOKEN + "\n")
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    settings: dict[str, Any] = {
        "name": "web01",
        "host": "web01.corp.example",
        "collector": url,
        "token_file": token_file,
        "state": tmp_path / "state",
        "inputs": (InputConfig(path=str(logs / "*.log")),),
        "poll_interval": 0.05,
        "batch_max_wait": 0.1,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "identity_settle": 0.2,
    }
    settings.update(kw)
    return AgentConfig(**settings)


class Running:
    """An agent in a thread, stopped (and joined) on exit."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.stop = threading.Event()
        self.agent = Agent(cfg, stop=self.stop)
        self.thread = threading.Thread(target=self.agent.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def checkpoint_offsets(cfg: AgentConfig) -> dict[str, int]:
    state = CheckpointStore(cfg.state).load()
    return {Path(f.path).name: f.offset for f in state.files}


def test_batches_follow_the_protocol(tmp_path: Path, receiver: Receiver) -> None:
    cfg = config(tmp_path, receiver.url)
    log = tmp_path / "logs" / "u_ex261126.log"
    log.write_bytes(HEADER + lines(0, 20))
    with Running(cfg):
        wait_for(lambda: receiver.shipped().get("u_ex261126.log") == log.read_bytes())
    doc = receiver.acked[0]
    assert doc["_path"] == "/v1/batch"
    h = doc["_headers"]
    assert h["Authorization"] == f"Bearer {TOKEN}"
    assert (h["Content-Type"], h["Content-Encoding"]) == ("application/json", "gzip")
    assert (doc["agent"], doc["host"]) == ("web01", "web01.corp.example")
    assert doc["batch_id"].startswith("web01-000001-")
    (chunk,) = doc["chunks"]
    assert chunk["file_id"] == file_identity(log)
    assert (chunk["path"], chunk["site"], chunk["offset"]) == (str(log), "logs", 0)
    assert chunk["parser_state"] == {"format": None, "parser": None}
    assert checkpoint_offsets(cfg) == {"u_ex261126.log": log.stat().st_size}


def test_a_lone_line_leaves_the_agent_in_a_batch_closed_by_time_not_size(
    tmp_path: Path, receiver: Receiver
) -> None:
    # How fast is measured by bench/bench_agent.py; here: a single complete line is not
    # held back waiting for a batch to fill, it leaves on its own once batch_max_wait ends.
    cfg = config(tmp_path, receiver.url, poll_interval=0.2, batch_max_wait=0.5)
    log = tmp_path / "logs" / "u_ex1.log"
    log.write_bytes(HEADER + lines(0, 20))
    with Running(cfg):
        wait_for(lambda: "u_ex1.log" in receiver.shipped())
        for i in range(20, 25):
            before = len(receiver.acked)
            with log.open("ab") as fh:
                fh.write(line(i))
            wait_for(lambda before=before: len(receiver.acked) > before)
            [chunk] = receiver.acked[-1]["chunks"]
            assert base64.b64decode(chunk["data"]) == line(i)


def test_server_errors_are_retried_and_the_checkpoint_waits_for_the_ack(
    tmp_path: Path, receiver: Receiver
) -> None:
    cfg = config(tmp_path, receiver.url)
    log = tmp_path / "logs" / "u_ex1.log"
    log.write_bytes(HEADER + lines(0, 20))
    receiver.script.extend([500, 503, 502])
    with Running(cfg) as running:
        wait_for(lambda: len(receiver.attempts) >= 2)
        assert checkpoint_offsets(cfg) == {}  # nothing acknowledged yet, nothing committed
        wait_for(lambda: receiver.shipped().get("u_ex1.log") == log.read_bytes())
        assert running.agent.stats.failed_attempts == 3
    ids = [a["batch_id"] for a in receiver.attempts]
    assert ids[:4] == [ids[0]] * 4  # the same batch, sent again
    assert checkpoint_offsets(cfg) == {"u_ex1.log": log.stat().st_size}


def test_outage_of_any_length_loses_nothing_and_reads_only_one_batch_ahead(
    tmp_path: Path,
) -> None:
    # a collector that is not there yet: connection refused
    down = Receiver()
    url = down.url
    down.close()
    cfg = config(tmp_path, url, batch_max_bytes=8192)
    log = tmp_path / "logs" / "u_ex1.log"
    log.write_bytes(HEADER + lines(0, 400))  # about 35 batches
    with Running(cfg) as running:
        wait_for(lambda: running.agent.stats.failed_attempts >= 5)
        time.sleep(0.3)
        assert checkpoint_offsets(cfg) == {}
        with log.open("ab") as fh:
            fh.write(lines(400, 450))
        # the collector comes back on the same port
        up = Receiver(port=int(url.rsplit(":", 1)[1]))
        try:
            wait_for(lambda: up.shipped().get("u_ex1.log") == log.read_bytes(), timeout=20)
        finally:
            up.close()
    first = up.attempts[0]
    raw = sum(len(base64.b64decode(c["data"])) for c in first["chunks"])
    assert raw <= 8192  # while down, only one batch was read from the file
    assert len({a["batch_id"] for a in up.attempts}) == len(up.attempts)


def test_401_is_retried_and_a_fixed_token_file_is_picked_up_without_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    cfg = config(tmp_path, receiver.url)
    cfg.token_file.write_text("wrong-token\n")
    log = tmp_path / "logs" / "u_ex1.log"
    log.write_bytes(HEADER + lines(0, 5))
    with Running(cfg):
        wait_for(lambda: len(receiver.attempts) >= 2)
        assert not receiver.acked and checkpoint_offsets(cfg) == {}
        cfg.token_file.write_text(TOKEN + "\n")
        wait_for(lambda: receiver.shipped().get("u_ex1.log") == log.read_bytes())


def test_413_makes_batches_smaller(tmp_path: Path, receiver: Receiver) -> None:
    cfg = config(tmp_path, receiver.url, batch_max_bytes=256 << 10)
    log = tmp_path / "logs" / "u_ex1.log"
    log.write_bytes(HEADER + lines(0, 4000))  # ~350 KiB
    receiver.script.append(413)
    with Running(cfg):
        wait_for(lambda: receiver.shipped().get("u_ex1.log") == log.read_bytes())
    sizes = [sum(len(base64.b64decode(c["data"])) for c in a["chunks"]) for a in receiver.acked]
    assert max(sizes) <= 128 << 10


def test_restart_ships_only_new_lines_with_the_fields_in_force(
    tmp_path: Path, receiver: Receiver
) -> None:
    cfg = config(tmp_path, receiver.url)
    log = tmp_path / "logs" / "u_ex1.log"
    log.write_bytes(HEADER + lines(0, 20))
    with Running(cfg):
        wait_for(lambda: receiver.shipped().get("u_ex1.log") == log.read_bytes())
    size = log.stat().st_size
    with log.open("ab") as fh:
        fh.write(lines(20, 30))
    before = len(receiver.acked)
    with Running(cfg):
        wait_for(lambda: receiver.shipped().get("u_ex1.log") == log.read_bytes())
    (chunk,) = [c for a in receiver.acked[before:] for c in a["chunks"]]
    assert chunk["offset"] == size
    assert chunk["parser_state"]["parser"]["fields"][:3] == ["date", "time", "s-ip"]
    assert receiver.acked[before]["batch_id"].startswith("web01-000002-")


def test_stop_during_backoff_returns_promptly_without_committing(
    tmp_path: Path, receiver: Receiver
) -> None:
    cfg = config(tmp_path, receiver.url, backoff_initial=5.0, backoff_max=60.0)
    log = tmp_path / "logs" / "u_ex1.log"
    log.write_bytes(HEADER + lines(0, 20))
    receiver.script.extend([503] * 100)
    running = Running(cfg)
    with running:
        wait_for(lambda: len(receiver.attempts) >= 1)
        time.sleep(0.1)
        running.stop.set()
        # the pause before the next attempt is 5 s: ending well before it means the stop
        # interrupted the backoff rather than waiting it out
        running.thread.join(3)
        assert not running.thread.is_alive()
    assert checkpoint_offsets(cfg) == {}


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_verifies_the_collector_against_the_given_ca(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    r = Receiver(tls=ctx)
    try:
        log = tmp_path / "logs" / "u_ex1.log"
        untrusted = Shipper(r.url, lambda: TOKEN)
        with pytest.raises(CollectorUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.send("x", gzip.compress(b"{}"))
        assert not r.attempts  # nothing was sent to a server we could not verify
        cfg = config(tmp_path, r.url, ca=cert)
        log.write_bytes(HEADER + lines(0, 5))
        with Running(cfg):
            wait_for(lambda: r.shipped().get("u_ex1.log") == log.read_bytes())
    finally:
        r.close()


def test_sigterm_stops_the_agent_process_cleanly(tmp_path: Path, receiver: Receiver) -> None:
    cfg = config(tmp_path, receiver.url)
    log = tmp_path / "logs" / "u_ex1.log"
    log.write_bytes(HEADER + lines(0, 5))
    cmd = [
        sys.executable, "-m", "iiswatch.cli.agent", "run",
        "--collector", receiver.url, "--token-file", str(cfg.token_file),
        "--path", str(tmp_path / "logs" / "*.log"), "--state", str(cfg.state), "--name", "web01",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: receiver.shipped().get("u_ex1.log") == log.read_bytes(), timeout=20)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr.decode()
    assert b"agent stopped" in stderr
    assert checkpoint_offsets(cfg) == {"u_ex1.log": log.stat().st_size}


def test_bad_configuration_is_reported_with_every_problem(tmp_path: Path) -> None:
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text('[agent]\ncollector = "ftp://x"\nbatch_max_lines = 0\n')
    proc = subprocess.run(
        [sys.executable, "-m", "iiswatch.cli.agent", "run", "--config", str(cfg_file)],
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": "200"},
    )
    assert proc.returncode == 2
    for problem in ("collector", "batch_max_lines", "token_file", "state", "inputs"):
        assert problem in proc.stderr
