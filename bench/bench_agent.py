"""The agent's footprint and the latency it adds, with a real collector and Elasticsearch.

1. RSS: the agent (`python -m iiswatch.cli.agent run`, as a Windows service would start it)
   follows `--files` files that all grow at once (`--rate` lines/s in total) for `--seconds`;
   VmRSS is sampled every 0.5 s (peak and last are printed). The same for `iiswatch agent run`
   (the full CLI, which loads the Elasticsearch client too), for comparison.
2. Latency: one file grows steadily at `--latency-rate` lines/s; for every line, the time from
   its write to the moment a search (no forced refresh) returns it. p50/p95/max printed.

Uses the local node of IISWATCH_HOME (`iiswatch es up` and `iiswatch setup` done); events land
in 2003-02 (a month no test uses); the indices are deleted afterwards. Linux (reads /proc).
Prints numbers; asserts nothing.

    IISWATCH_HOME=/tmp/iiswatch-dev-es .venv/bin/python bench/bench_agent.py \
        [--files 100] [--rate 500] [--seconds 20] [--latency-rate 20] [--latency-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.collector.tokens import TokenStore

DAY = datetime(2003, 2, 10, tzinfo=UTC)
INDEX = "iis-access-2003.02"
AGENT_LEAN = [sys.executable, "-m", "iiswatch.cli.agent", "run"]
AGENT_CLI = [sys.executable, "-m", "iiswatch.cli.main", "agent", "run"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_collector(archive: Path, key: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    cmd = [sys.executable, "-m", "iiswatch.cli.main", "collector", "run", "--listen",
           "127.0.0.1:0", "--archive", str(archive), "--key", str(key)]  # fmt: skip
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening" not in line:
        raise SystemExit(f"collector did not start: {log.read_text()}")
    return proc, line.split()[-1]


def start_agent(
    cmd: list[str], url: str, token: Path, pattern: str, state: Path, name: str, log: Path
) -> subprocess.Popen[bytes]:
    args = [*cmd, "--collector", url, "--token-file", str(token), "--path", pattern,
            "--state", str(state), "--name", name]  # fmt: skip
    with log.open("ab") as err:
        return subprocess.Popen(args, stderr=err, stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def lines_for(seed: int, n: int) -> list[bytes]:
    return [(x + "\r\n").encode() for x in generate_w3c_lines(n, seed=seed, start=DAY)]


def measure_rss(
    label: str, cmd: list[str], url: str, token: Path, work: Path, files: int, rate: float,
    seconds: float,
) -> None:  # fmt: skip
    folder = work / f"rss-{label}"
    folder.mkdir()
    paths = [folder / f"u_ex{i:06d}.log" for i in range(files)]
    for i, p in enumerate(paths):
        p.write_bytes(w3c_header(W3C_DEFAULT_FIELDS, DAY).encode() + b"".join(lines_for(i, 10)))
    per_tick = max(1, round(rate * 0.1 / files))  # lines per file every 0.1 s (at least 1)
    pool = lines_for(99, 2000)
    agent = start_agent(cmd, url, token, str(folder / "*.log"), work / f"state-{label}",
                        f"bench-{label}", work / f"agent-{label}.err")  # fmt: skip
    samples: list[int] = []
    written = 0
    try:
        handles = [p.open("ab", buffering=0) for p in paths]
        t0 = time.monotonic()
        next_sample = t0
        k = 0
        while time.monotonic() - t0 < seconds:
            for fh in handles:
                fh.write(b"".join(pool[(k + j) % len(pool)] for j in range(per_tick)))
                written += per_tick
            k += per_tick
            now = time.monotonic()
            if now >= next_sample:
                samples.append(rss_kib(agent.pid))
                next_sample = now + 0.5
            time.sleep(0.1)
        for fh in handles:
            fh.close()
        time.sleep(2)
        samples.append(rss_kib(agent.pid))
    finally:
        stop(agent)
    print(
        f"agent RSS ({label}), {files} files, {written / seconds:,.0f} lines/s: "
        f"peak {max(samples) / 1024:.1f} MB, last {samples[-1] / 1024:.1f} MB"
    )


def measure_latency(
    url: str, token: Path, work: Path, rate: float, seconds: float, host: str
) -> None:
    folder = work / "latency"
    folder.mkdir()
    path = folder / "u_ex030210.log"
    path.write_bytes(w3c_header(W3C_DEFAULT_FIELDS, DAY).encode())
    agent = start_agent(AGENT_LEAN, url, token, str(folder / "*.log"), work / "state-latency",
                        host, work / "agent-latency.err")  # fmt: skip
    es = client_for(Purpose.ADMIN)
    written: dict[int, float] = {}
    seen: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        last = -1
        while not (done.is_set() and len(seen) >= len(written)):
            resp = es.search(
                index=INDEX,
                query={"bool": {"filter": [{"term": {"host.name": host}},
                                           {"range": {"log.offset": {"gt": last}}}]}},
                sort=[{"log.offset": "asc"}],
                source=False,
                docvalue_fields=["log.offset"],
                size=1000,
                ignore_unavailable=True,
            )  # fmt: skip
            now = time.monotonic()
            for hit in resp["hits"]["hits"]:
                off = int(hit["fields"]["log.offset"][0])
                seen.setdefault(off, now)
                last = max(last, off)
            if done.is_set() and time.monotonic() > deadline:
                return
            time.sleep(0.05)

    deadline = float("inf")
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    pool = lines_for(7, int(rate * seconds) + 10)
    try:
        time.sleep(2)  # the agent is up and has the (short) file's id
        with path.open("ab", buffering=0) as fh:
            offset = path.stat().st_size
            t0 = time.monotonic()
            for i, line in enumerate(pool[: int(rate * seconds)]):
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                fh.write(line)
                written[offset] = time.monotonic()
                offset += len(line)
        deadline = time.monotonic() + 30
        done.set()
        poller.join(40)
    finally:
        stop(agent)
    lat = sorted(seen[o] - t for o, t in written.items() if o in seen)
    if not lat:
        print("latency: no line became searchable")
        return

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))]

    print(
        f"line -> searchable ({len(lat)}/{len(written)} lines at {rate:g}/s): "
        f"p50 {pct(0.5):.2f} s, p95 {pct(0.95):.2f} s, max {lat[-1]:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--rate", type=float, default=500.0, help="lines/s over all files")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--latency-rate", type=float, default=20.0)
    ap.add_argument("--latency-seconds", type=float, default=30.0)
    args = ap.parse_args()
    admin = client_for(Purpose.ADMIN)
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        work = Path(tmp)
        archive, key = work / "archive", work / "archive.key"
        token = work / "token"
        store = TokenStore(archive)
        token.write_text(store.add("bench-lean") + "\n")
        # one token per agent name: the collector checks the name the token was issued to
        tokens = {name: store.add(name) for name in ("bench-cli", f"bench-lat-{os.getpid()}")}
        collector, url = start_collector(archive, key, work / "collector.err")
        try:
            measure_rss("lean", AGENT_LEAN, url, token, work, args.files, args.rate, args.seconds)
            (work / "token-cli").write_text(tokens["bench-cli"] + "\n")
            measure_rss("cli", AGENT_CLI, url, work / "token-cli", work, args.files, args.rate,
                        args.seconds)  # fmt: skip
            host = f"bench-lat-{os.getpid()}"
            (work / "token-lat").write_text(tokens[host] + "\n")
            measure_latency(url, work / "token-lat", work, args.latency_rate,
                            args.latency_seconds, host)  # fmt: skip
        finally:
            stop(collector)
            admin.indices.delete(index=INDEX, ignore_unavailable=True)


if __name__ == "__main__":
    main()
