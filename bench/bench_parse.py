"""Parser throughput against a bare loop, measured side by side in one run.

The bare loop is the floor any parser pays (as the issue defines it): split on spaces,
dict(zip(fields, values)), build the same nested ECS document iiswatch emits with every
value copied as a raw string — no conversion, validation, decoding or user-agent parsing —
and orjson.dumps it.
iiswatch's parser does the real work (types, timestamps, URL decoding, user agents, IPs,
dead letters) and its output is serialised the same way. Prints lines/s and the ratio
(goal: >= 0.5). Nothing is asserted: this is a measurement, not a test.

    .venv/bin/python bench/bench_parse.py [--lines 1000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import UTC, datetime

import orjson

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.ingest.model import Source
from iiswatch.ingest.parse import LogParser


def bare_loop(lines: list[bytes]) -> int:
    """The same nested ECS document iiswatch emits for these lines, every value copied as
    a raw string: no types, no validation, no decoding, no user-agent parsing."""
    fields = W3C_DEFAULT_FIELDS
    n = 0
    for raw in lines:
        text = raw.decode()
        d = dict(zip(fields, text.split(" "), strict=False))
        stem, query, ua = d["cs-uri-stem"], d["cs-uri-query"], d["cs(User-Agent)"]
        doc = {
            "@timestamp": d["date"] + "T" + d["time"] + "Z",
            "ecs": {"version": "8.11.0"},
            "event": {
                "kind": "event",
                "category": ["web", "network"],
                "module": "iis",
                "dataset": "iis.access",
                "original": text,
                "type": ["connection"],
                "outcome": "success",
                "duration": d["time-taken"],
            },
            "log": {"file": {"path": "bench.log"}, "offset": n},
            "iiswatch": {
                "file_id": "0" * 32,
                "format": "w3c",
                "url": {
                    "path": stem,
                    "path_twice": stem,
                    "query": query,
                    "query_twice": query,
                    "uri": stem + "?" + query,
                },
            },
            "source": {"address": d["c-ip"], "ip": d["c-ip"]},
            "destination": {"address": d["s-ip"], "ip": d["s-ip"], "port": d["s-port"]},
            "http": {
                "request": {"method": d["cs-method"], "referrer": d["cs(Referer)"]},
                "response": {"status_code": d["sc-status"]},
            },
            "url": {"original": stem, "path": stem, "extension": stem, "query": query},
            "user": {"name": d["cs-username"]},
            "user_agent": {
                "original": ua,
                "name": ua,
                "version": ua,
                "device": {"name": ua},
                "os": {"name": ua, "version": ua, "full": ua},
            },
            "iis": {
                "access": {"sub_status": d["sc-substatus"], "win32_status": d["sc-win32-status"]}
            },
            "host": {"name": "bench"},
            "related": {"ip": [d["c-ip"], d["s-ip"]], "hosts": ["bench"]},
        }
        n += len(orjson.dumps(doc))
    return n


def iiswatch_parser(lines: list[bytes]) -> int:
    parser = LogParser(Source(path="bench.log", host_name="bench", file_id="0" * 32), "w3c")
    header = w3c_header(W3C_DEFAULT_FIELDS, datetime(2024, 5, 14, tzinfo=UTC), newline="\n")
    offset = 0
    for h in header.encode().splitlines():
        parser.feed(h, offset)
        offset += len(h) + 1
    n = 0
    for raw in lines:
        out = parser.feed(raw, offset)
        offset += len(raw) + 1
        if isinstance(out, dict):
            n += len(orjson.dumps(out))
    return n


def timed(fn, lines: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    gc.collect()
    t = time.perf_counter()
    fn(lines)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    lines = [line.encode() for line in generate_w3c_lines(args.lines, seed=11)]
    print(f"{len(lines):,} generated W3C lines, {sum(map(len, lines)) / 1e6:.0f} MB")
    best = {"bare": float("inf"), "iiswatch": float("inf")}
    for r in range(args.rounds):
        # alternate the order so neither side always runs on a warmer machine
        order = [("bare", bare_loop), ("iiswatch", iiswatch_parser)]
        for name, fn in order if r % 2 == 0 else reversed(order):
            best[name] = min(best[name], timed(fn, lines))
    bare = len(lines) / best["bare"]
    ours = len(lines) / best["iiswatch"]
    print(f"bare split+dict+orjson loop : {bare:>10,.0f} lines/s")
    print(f"iiswatch parser + orjson    : {ours:>10,.0f} lines/s")
    print(f"ratio iiswatch / bare       : {ours / bare:.2f}   (goal >= 0.5)")


if __name__ == "__main__":
    main()
