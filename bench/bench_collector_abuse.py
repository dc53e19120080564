"""Lock-out under abuse: strangers hold idle sockets while real agents ship.

A `iiswatch collector run` child process; `--idle` TCP connections that never send a byte
(re-opened as soon as the collector closes them, as a persistent attacker would); `--agents`
agents, each with its own token bound to its own host, shipping `--batches` batches of
`--lines` lines over one keep-alive connection, each waiting for its ack like the real agent.
Before issue 10, 70 idle sockets made every request a 503.

Log events are dated 1988-03 (no test uses it); that index is deleted afterwards. Needs the
local node and `iiswatch setup`. Prints the agents' errors (the goal: 0), batches/s, latency
percentiles and how often the collector closed an idle socket; asserts nothing.

    .venv/bin/python bench/bench_collector_abuse.py [--idle 200] [--agents 50] [--batches 10]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import io
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import orjson

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.collector.tokens import TokenStore
from iiswatch.ingest.files import fingerprint, iter_lines
from iiswatch.ingest.model import Source
from iiswatch.ingest.parse import LogParser

DAY = datetime(1988, 3, 1, tzinfo=UTC)
INDEX = "iis-access-1988.03"


def agent_bodies(agent: str, n_batches: int, n_lines: int, seed: int) -> list[bytes]:
    lines = generate_w3c_lines(n_batches * n_lines, seed=seed, start=DAY)
    data = (w3c_header(W3C_DEFAULT_FIELDS, DAY) + "".join(x + "\r\n" for x in lines)).encode()
    file_id = fingerprint(data[:1024])
    path = rf"C:\inetpub\logs\LogFiles\W3SVC1\u_ex880301-{agent}.log"
    parser = LogParser(Source(path, agent, file_id))
    offsets = [off for _, off in iter_lines(io.BytesIO(data))]
    bounds = [offsets[min(i * n_lines, len(offsets) - 1)] for i in range(n_batches)] + [len(data)]
    bodies, pos = [], 0
    for i in range(n_batches):
        start, end = bounds[i], bounds[i + 1]
        state = parser.state()
        for line, off in iter_lines(io.BytesIO(data[start:end])):
            parser.feed(line, start + off)
        pos = start
        chunk = {
            "file_id": file_id, "path": path, "site": "W3SVC1", "offset": pos,
            "data": base64.b64encode(data[start:end]).decode(), "parser_state": state,
            "format": None, "size": len(data),
        }  # fmt: skip
        batch = {"agent": agent, "host": agent, "batch_id": f"{agent}-{i:09d}", "chunks": [chunk]}
        bodies.append(gzip.compress(orjson.dumps(batch), compresslevel=1))
    return bodies


def start_collector(archive: Path, key: Path, err: Path) -> tuple[subprocess.Popen[bytes], str]:
    args = [sys.executable, "-m", "iiswatch.cli.main", "collector", "run", "--listen",
            "127.0.0.1:0", "--archive", str(archive), "--key", str(key)]  # fmt: skip
    with err.open("wb") as e:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=e, bufsize=0)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line, deadline = b"", time.monotonic() + 120
    while not line.endswith(b"\n"):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            sys.exit(f"the collector did not start: {err.read_text()}")
        if sel.select(0.1):
            line += proc.stdout.read(1)
    return proc, line.decode().split()[-1]


class Strangers(threading.Thread):
    """Keeps `n` idle connections open; counts those the collector closed."""

    def __init__(self, addr: tuple[str, int], n: int) -> None:
        super().__init__(daemon=True)
        self.addr, self.n = addr, n
        self.stop = threading.Event()
        self.closed_by_server = 0
        self.socks: list[socket.socket] = []

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        while not self.stop.is_set():
            while len(self.socks) < self.n:
                s = socket.create_connection(self.addr, timeout=30)
                s.setblocking(False)
                self.socks.append(s)
                sel.register(s, selectors.EVENT_READ)
            for key, _ in sel.select(0.2):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    gone = s.recv(4096) == b""
                except OSError:
                    gone = True
                if gone:
                    self.closed_by_server += 1
                    sel.unregister(s)
                    s.close()
                    self.socks.remove(s)
        for s in self.socks:
            s.close()


def ship(url: str, token: str, bodies: list[bytes], latencies: list[float], errors: list[str]):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=300)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Content-Encoding": "gzip"}  # fmt: skip
    try:
        for body in bodies:
            t = time.perf_counter()
            try:
                conn.request("POST", "/v1/batch", body, headers)
                resp = conn.getresponse()
                answer = resp.read()
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"{type(e).__name__}: {e}")
                conn.close()
                continue
            latencies.append(time.perf_counter() - t)
            if resp.status != 200:
                errors.append(f"{resp.status}: {answer[:200]!r}")
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--lines", type=int, default=100)
    args = ap.parse_args()
    admin = client_for(Purpose.ADMIN)
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
        root = Path(tmp)
        archive = root / "archive"
        store = TokenStore(archive)
        names = [f"bench-abuse-{i:03d}" for i in range(args.agents)]
        tokens = {n: store.add(n) for n in names}  # each bound to its own host (its name)
        bodies = {n: agent_bodies(n, args.batches, args.lines, i) for i, n in enumerate(names)}
        proc, url = start_collector(archive, root / "archive.key", root / "collector.err")
        u = urllib.parse.urlsplit(url)
        strangers = Strangers((u.hostname or "", u.port or 0), args.idle)
        try:
            strangers.start()
            while len(strangers.socks) < args.idle:
                time.sleep(0.05)
            latencies: list[float] = []
            errors: list[str] = []
            threads = [
                threading.Thread(target=ship, args=(url, tokens[n], bodies[n], latencies, errors))
                for n in names
            ]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            elapsed = time.perf_counter() - t0
            held = len(strangers.socks)
        finally:
            strangers.stop.set()
            strangers.join(10)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            admin.indices.delete(index=INDEX, ignore_unavailable=True)
        sent = args.agents * args.batches
        lat = sorted(latencies)
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0  # noqa: E731
        print(f"{args.idle} idle sockets held open ({held} at the end; the collector closed "
              f"{strangers.closed_by_server} that sent no request in time)")  # fmt: skip
        print(f"{args.agents} agents x {args.batches} batches x {args.lines} lines: {sent} batches "
              f"in {elapsed:.1f} s ({sent / elapsed:.1f} batches/s)")  # fmt: skip
        print(f"latency ms: p50 {p(0.5):.0f}  p90 {p(0.9):.0f}  p99 {p(0.99):.0f}  "
              f"mean {statistics.fmean(lat) * 1000 if lat else 0:.0f}")  # fmt: skip
        print(f"agent errors: {len(errors)} of {sent} batches")
        for e in errors[:5]:
            print(f"  {e}")


if __name__ == "__main__":
    main()
