"""Collector throughput end to end (HTTP → archive with fsync → parse → Elasticsearch) as a
ratio to `iiswatch ingest` (`ingest_files`) on the same generated lines, in the same run.

- ingest: `ingest_files` on the log file, in this process, writer credentials;
- collector: `iiswatch collector run` in a child process with a fresh archive; the batches an
  agent would send (whole lines, ~`--batch-kb` each, gzip, parser state) are built before the
  clock starts, then sent by `--senders` concurrent connections, each waiting for its ack
  like an agent does. One file per sender (an agent sends a file's batches in order).

Events land in 2002-01 (a month no test uses); those indices are deleted afterwards.
Needs the local node and `iiswatch setup`. Prints lines/s and the ratio; asserts nothing.

    .venv/bin/python bench/bench_collector.py [--lines 200000] [--batch-kb 1024] [--senders 1]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import io
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.batch import ingest_files
from iiswatch.ingest.collector.tokens import TokenStore
from iiswatch.ingest.files import fingerprint, iter_lines
from iiswatch.ingest.model import Source
from iiswatch.ingest.parse import LogParser

BENCH_DAY = datetime(2002, 1, 10, tzinfo=UTC)
INDEX = "iis-access-2002.01"


def write_log(path: Path, n: int, day: datetime, seed: int) -> bytes:
    with path.open("w", newline="") as f:
        f.write(w3c_header(W3C_DEFAULT_FIELDS, day))
        for line in generate_w3c_lines(n, seed=seed, start=day):
            f.write(line + "\r\n")
    return path.read_bytes()


def build_batches(data: bytes, name: str, host: str, batch_bytes: int) -> list[bytes]:
    """Gzip bodies an agent would send for this file: whole lines, parser state included."""
    file_id = fingerprint(data[:1024])
    path = rf"C:\inetpub\logs\LogFiles\W3SVC1\{name}"
    parser = LogParser(Source(path, host, file_id))
    bodies: list[bytes] = []
    start, state = 0, parser.state()
    for line, off in iter_lines(io.BytesIO(data)):
        if off - start >= batch_bytes:
            bodies.append(_body(host, file_id, path, start, data[start:off], state, len(bodies)))
            start, state = off, parser.state()
        parser.feed(line, off)
    bodies.append(_body(host, file_id, path, start, data[start:], state, len(bodies)))
    return bodies


def _body(host, file_id, path, offset, chunk, state, n) -> bytes:
    batch = {
        "agent": "bench",
        "host": host,
        "batch_id": f"bench-{file_id[:8]}-{n:09d}",
        "chunks": [
            {
                "file_id": file_id,
                "path": path,
                "site": "W3SVC1",
                "offset": offset,
                "data": base64.b64encode(chunk).decode(),
                "parser_state": state,
                "format": None,
            }
        ],
    }
    return gzip.compress(orjson.dumps(batch), compresslevel=1)


def start_collector(archive: Path, key: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iiswatch.cli.main",
            "collector",
            "run",
            "--listen",
            "127.0.0.1:0",
            "--archive",
            str(archive),
            "--key",
            str(key),
            "--max-body",
            str(64 << 20),
        ],
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = b""
    deadline = time.monotonic() + 60
    while not line.endswith(b"\n"):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            sys.exit("the collector did not start")
        if sel.select(0.1):
            line += proc.stdout.read(1)
    return proc, line.decode().split()[-1]


def send_all(url: str, token: str, bodies: list[bytes], errors: list[str]) -> None:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=300)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    for body in bodies:
        while True:
            conn.request("POST", "/v1/batch", body, headers)
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status == 200:
                break
            if resp.status != 503:
                errors.append(f"{resp.status}: {answer[:200]!r}")
                return
            time.sleep(1)
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000, help="lines in total")
    ap.add_argument("--batch-kb", type=int, default=1024, help="raw bytes per batch")
    ap.add_argument("--senders", type=int, default=1, help="concurrent agents (one file each)")
    args = ap.parse_args()

    admin = client_for(Purpose.ADMIN)
    writer = client_for(Purpose.WRITER)
    admin.indices.delete(index=INDEX, ignore_unavailable=True)
    per = args.lines // args.senders
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        logs, datas = [], []
        for i in range(args.senders):
            day = BENCH_DAY + timedelta(days=i)
            log = root / f"u_ex{day:%y%m%d}.log"
            datas.append(write_log(log, per, day, seed=11 + i))
            logs.append(log)
        total_mb = sum(len(d) for d in datas) / 1e6
        print(f"{per * args.senders:,} lines in {args.senders} file(s), {total_mb:.0f} MB")
        try:
            summary = ingest_files(writer, logs, host_name="bench-ingest")
            ingest_s = summary.seconds
            ingest_rate = summary.lines / ingest_s

            bodies = [
                build_batches(d, log.name, "bench-collector", args.batch_kb << 10)
                for d, log in zip(datas, logs, strict=True)
            ]
            archive = root / "archive"
            token = TokenStore(archive).add("bench", hosts=["bench-collector"])
            proc, url = start_collector(archive, root / "archive.key")
            try:
                errors: list[str] = []
                threads = [
                    threading.Thread(target=send_all, args=(url, token, b, errors)) for b in bodies
                ]
                t = time.perf_counter()
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                coll_s = time.perf_counter() - t
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
            if errors:
                sys.exit(f"collector refused batches: {errors[0]}")
            lines = sum(d.count(b"\n") for d in datas)
            coll_rate = lines / coll_s
            archived = sum(p.stat().st_size for p in archive.rglob("*.data"))
            admin.indices.refresh(index=INDEX)
            docs = admin.count(index=INDEX)["count"]
        finally:
            admin.indices.delete(index=INDEX, ignore_unavailable=True)

    nbatches = sum(len(b) for b in bodies)
    print(f"iiswatch ingest (ingest_files)   : {ingest_rate:>9,.0f} lines/s ({ingest_s:.1f} s)")
    print(
        f"collector (HTTP→archive→ES)      : {coll_rate:>9,.0f} lines/s ({coll_s:.1f} s, "
        f"{nbatches} batches of ~{args.batch_kb} KiB, {args.senders} sender(s))"
    )
    print(f"ratio collector / ingest         : {coll_rate / ingest_rate:.2f}")
    print(f"archived {archived / 1e6:.0f} MB; documents in {INDEX}: {docs:,} (both runs)")
    print(f"cpu count {os.cpu_count()}")


if __name__ == "__main__":
    main()
