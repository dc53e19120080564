"""`rules backtest` over 30 days: the replay (iiswatch/rules/replay.py) against window by
window evaluation, the whole pack, side by side in one run (goal: >= 20x).

The 30 days are generated sample days (`iiswatch demo`'s generator: shop traffic, crawlers,
monitors, an office NAT, background scanners and one web-shell attacker a day), `--requests`
a day, dated April 2002 (a month no one else uses). The index is reused when it already
holds them and deleted afterwards unless --keep. Both ways must give the same alerts; the
bench says so per rule and prints wall times and the ratio. No assertions on time.

    .venv/bin/python bench/bench_backtest.py [--requests 1000] [--days 30] [--rule TEXT] [--keep]

Window by window is slow on purpose here: the web-shell command rule runs every 5 s with a
regexp search (about 0.5 s on a loaded 2-core machine), so its side alone takes most of an
hour over 30 days; `--rule` picks rules by part of their name to measure in parts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from elasticsearch import Elasticsearch

from iiswatch.cli.demo.sample_day import write_sample_day
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.batch import ingest_files
from iiswatch.ingest.files import expand_inputs
from iiswatch.rules.backtest import backtest
from iiswatch.rules.loader import load_rules

FIRST = date(2002, 4, 1)
INDEX = "iis-access-2002.04"
HOST = "bench-backtest"


def ensure_days(admin: Elasticsearch, writer: Elasticsearch, days: int, requests: int) -> int:
    want = days * requests
    if admin.indices.exists(index=INDEX):
        have = int(admin.count(index=INDEX)["count"])
        if have >= want * 0.95:  # a day's file holds about `requests` access lines
            return have
        admin.indices.delete(index=INDEX)
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(days):
            day = FIRST + timedelta(days=n)
            write_sample_day(Path(tmp) / f"d{n}", day=day, seed=1000 + n, requests=requests)
        t0 = time.perf_counter()
        summary = ingest_files(writer, expand_inputs([tmp]), host_name=HOST)
        print(
            f"ingested {summary.indexed:,} events in {time.perf_counter() - t0:.0f}s "
            f"({summary.failed} failed)",
            file=sys.stderr,
        )
    admin.indices.refresh(index=INDEX)
    return int(admin.count(index=INDEX)["count"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--requests", type=int, default=1000, help="requests per generated day")
    ap.add_argument(
        "--rule", action="append", default=[], help="only rules whose name holds this text"
    )
    ap.add_argument("--keep", action="store_true", help="keep the bench index afterwards")
    args = ap.parse_args(argv)

    admin, writer = client_for(Purpose.ADMIN), client_for(Purpose.WRITER)
    reader = client_for(Purpose.ALERTING)  # what `rules backtest` uses
    events = ensure_days(admin, writer, args.days, args.requests)
    start = datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=UTC)
    end = start + timedelta(days=args.days)
    rules = [
        lr.rule
        for lr in load_rules()
        if not args.rule or any(t.lower() in lr.rule.name.lower() for t in args.rule)
    ]
    print(f"{events:,} events over {args.days} days; {len(rules)} rules; {start:%F} .. {end:%F}")
    print(f"{'rule':44} {'type':11} {'path':7} {'alerts':>6} {'windows s':>9} {'replay s':>8}")
    total_slow = total_fast = 0.0
    same = True
    try:
        for rule in rules:
            t0 = time.perf_counter()
            slow = backtest(reader, rule, start, end, index=INDEX, exact=True)
            t1 = time.perf_counter()
            fast = backtest(reader, rule, start, end, index=INDEX)
            t2 = time.perf_counter()
            total_slow += t1 - t0
            total_fast += t2 - t1
            agree = fast.alerts == slow.alerts and fast.suppressed == slow.suppressed
            same = same and agree
            print(
                f"{rule.name[:44]:44} {rule.type:11} {fast.path:7} {len(fast.alerts):>6}"
                f" {t1 - t0:>9.1f} {t2 - t1:>8.2f}{'' if agree else '  DIFFERENT ALERTS'}",
                flush=True,
            )
    finally:
        if not args.keep:
            admin.indices.delete(index=INDEX, ignore_unavailable=True)
    print(
        f"pack: window by window {total_slow:.1f}s, replay {total_fast:.1f}s, "
        f"ratio {total_slow / max(total_fast, 1e-9):.1f}x (goal >= 20x); "
        f"alerts {'identical' if same else 'DIFFERENT'}"
    )


if __name__ == "__main__":
    main()
