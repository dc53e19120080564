"""`iiswatch ingest` throughput against raw `_bulk` requests, side by side in one run.

Both sides index the same generated lines into fresh indices made by the same template
(so the same mappings and settings), with the same batch size:
- raw: documents pre-rendered by the parser, sent as ready-made NDJSON `_bulk` bodies — the
  cost of Elasticsearch alone;
- iiswatch: `iiswatch ingest FILE --json` as a user runs it (read, parse, bulk, account),
  in a child process whose peak RSS is reported.
Prints docs/s and the ratio (goal >= 0.85). Needs the local node and `iiswatch setup`.

    .venv/bin/python bench/bench_ingest.py [--lines 300000] [--chunk 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.pipeline import parse_file, to_action

BENCH_DAY = datetime(2003, 1, 15, tzinfo=UTC)  # a month no one else uses; deleted afterwards
RAW_INDEX = "iis-access-bench.raw"
OURS_INDEX = "iis-access-2003.01"


def write_log(path: Path, n: int) -> None:
    with path.open("w", newline="") as f:
        f.write(w3c_header(W3C_DEFAULT_FIELDS, BENCH_DAY))
        for line in generate_w3c_lines(n, seed=5, start=BENCH_DAY):
            f.write(line + "\r\n")


def bulk_bodies(log: Path, chunk: int) -> list[bytes]:
    """The documents iiswatch would send, rendered once, ready for `_bulk`."""
    bodies, lines = [], []
    now = datetime.now(UTC).isoformat()
    for source, offset, out in parse_file(log, host_name="bench-raw"):
        a = to_action(source, offset, out, now)
        lines.append(orjson.dumps({"create": {"_index": RAW_INDEX, "_id": a["_id"]}}))
        lines.append(orjson.dumps(a["_source"]))
        if len(lines) == 2 * chunk:
            bodies.append(b"\n".join(lines) + b"\n")
            lines = []
    if lines:
        bodies.append(b"\n".join(lines) + b"\n")
    return bodies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--chunk", type=int, default=1000)
    args = ap.parse_args()

    admin = client_for(Purpose.ADMIN)
    admin.indices.delete(index=f"{RAW_INDEX},{OURS_INDEX}", ignore_unavailable=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "u_ex030115.log"
        write_log(log, args.lines)
        print(f"{args.lines:,} lines, {log.stat().st_size / 1e6:.0f} MB, chunk {args.chunk}")
        try:
            # iiswatch ingest, as a user runs it, in a child process to measure its RSS;
            # first, while this process is small: a child's ru_maxrss counts its pre-exec
            # peak, which would otherwise include the pre-rendered bodies below
            t = time.perf_counter()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "iiswatch.cli.main",
                    "ingest",
                    str(log),
                    "--json",
                    "--host-name",
                    "bench-ours",
                    "--chunk-size",
                    str(args.chunk),
                ],
                stdout=subprocess.PIPE,
            )
            stdout = proc.stdout.read() if proc.stdout else b""
            _, status, usage = os.wait4(proc.pid, 0)
            ours_s = time.perf_counter() - t
            if status != 0:
                sys.exit(f"iiswatch ingest failed with status {status}")
            summary = json.loads(stdout)
            # raw _bulk: the documents are rendered before the clock starts
            bodies = bulk_bodies(log, args.chunk)
            admin.indices.create(index=RAW_INDEX)
            t = time.perf_counter()
            for body in bodies:
                resp = admin.bulk(operations=body, index=RAW_INDEX)
                assert not resp["errors"], "raw bulk reported errors"
            raw_s = time.perf_counter() - t
            del bodies

        finally:
            admin.indices.delete(index=f"{RAW_INDEX},{OURS_INDEX}", ignore_unavailable=True)

    raw = args.lines / raw_s
    ours = summary["indexed"] / ours_s
    print(f"raw _bulk of pre-rendered docs : {raw:>9,.0f} docs/s ({raw_s:.1f} s)")
    print(
        f"iiswatch ingest (whole command): {ours:>9,.0f} docs/s ({ours_s:.1f} s, "
        f"{summary['indexed']:,} indexed)"
    )
    print(f"ratio iiswatch / raw           : {ours / raw:.2f}   (goal >= 0.85)")
    print(f"iiswatch ingest peak RSS       : {usage.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
