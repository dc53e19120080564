"""1,000 rules over one 5-minute window on >= 1 M indexed events: how much of the scheduler's
1-minute interval they take, one request per rule against batched `_msearch`, in one run.

The rules are the content pack in searches/ replicated with variations (each copy its own
id, threshold or cardinality value, history, and an exception on a different network, so no
two request bodies are alike and no result comes from another's cache; the shard request
cache is off for every request). Three ways, in the same run, on the same window:
- engine: `evaluate()` for each rule, one after the other, as the scheduler does today (a
  rule may send follow-up requests when its first one finds something);
- per-rule: each rule's first request (the window query and its aggregation: what decides
  whether the rule fires), one `_search` per rule;
- batched: the same requests in `_msearch` bodies of `--batch` searches.
Prints wall times, each as a fraction of a 1-minute interval, and the ratios. No assertions.

Events are dated 2001-01-15 (a month no one else uses) and the index is deleted afterwards
unless --keep; an index already holding enough events is reused.

    .venv/bin/python bench/bench_rules.py [--events 1000000] [--rules 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.batch import ingest_files
from iiswatch.rules.evaluate import evaluate
from iiswatch.rules.loader import load_rules
from iiswatch.rules.model import Rule, RuleException
from iiswatch.rules.query import window_query

DAY = datetime(2001, 1, 15, tzinfo=UTC)
INDEX = "iis-access-2001.01"
WINDOW_START = DAY + timedelta(hours=12)  # the busiest hours of the generated day
WINDOW = timedelta(minutes=5)
INTERVAL = 60.0  # seconds: the scheduler's interval the rules must fit in
HOST = "bench-rules"
_NS = uuid.UUID("0b7c2f4e-2a57-4c4e-8d3f-6a1f4f0b9e11")


def ensure_events(admin: Elasticsearch, writer: Elasticsearch, n: int) -> int:
    if admin.indices.exists(index=INDEX):
        have = int(admin.count(index=INDEX)["count"])
        if have >= n:
            return have
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "u_ex010115.log"
        with log.open("w", newline="") as f:
            f.write(w3c_header(W3C_DEFAULT_FIELDS, DAY))
            for line in generate_w3c_lines(n, seed=11, start=DAY):
                f.write(line + "\r\n")
        t0 = time.perf_counter()
        summary = ingest_files(writer, [log], host_name=HOST)
        print(
            f"ingested {summary.indexed:,} events in {time.perf_counter() - t0:.0f}s "
            f"({summary.failed} failed)",
            file=sys.stderr,
        )
    admin.indices.refresh(index=INDEX)
    return int(admin.count(index=INDEX)["count"])


def variants(pack: list[Rule], n: int) -> list[Rule]:
    """`n` rules: the pack's, then copies that differ in id, name, numbers and an
    exception on their own documentation network."""
    out: list[Rule] = []
    for i, base in enumerate(itertools.islice(itertools.cycle(pack), n)):
        copy = i // len(pack)
        if copy == 0:
            out.append(base)
            continue
        update: dict[str, Any] = {
            "id": uuid.uuid5(_NS, f"{base.id}/{copy}"),
            "name": f"{base.name} #{copy}",
            "exceptions": [
                *base.exceptions,
                RuleException(
                    field="source.ip",
                    cidrs=[f"198.18.{copy % 256}.0/24"],
                    owner="bench",
                    reason="variation",
                ),
            ],
        }
        if base.threshold is not None:
            update["threshold"] = base.threshold.model_copy(
                update={"value": base.threshold.value + copy % 7}
            )
        if base.cardinality is not None:
            update["cardinality"] = base.cardinality.model_copy(
                update={"value": base.cardinality.value + copy % 5}
            )
        if base.new_terms is not None:
            days = (7, 14, 30, 60)[copy % 4]
            update["new_terms"] = base.new_terms.model_copy(
                update={"history": timedelta(days=days)}
            )
        out.append(base.model_copy(update=update))
    return out


def first_request(rule: Rule, start: datetime, end: datetime) -> dict[str, Any]:
    """The search that decides whether a rule fires in the window, as the engine sends it
    first: a composite aggregation over the group key (with the distinct count for
    cardinality), or the first step's events for a sequence."""
    today = end.date()
    if rule.sequence is not None:
        step = rule.sequence.steps[0]
        q = window_query(rule, start - rule.sequence.max_span, end, today=today, step=step)
        return {"query": q, "size": 500, "sort": [{"@timestamp": "asc"}]}
    fields = rule.group_fields
    sources = [{f"g{i}": {"terms": {"field": f}}} for i, f in enumerate(fields)]
    comp: dict[str, Any] = {"composite": {"size": 1000, "sources": sources}}
    if rule.cardinality is not None:
        comp["aggs"] = {"distinct": {"cardinality": {"field": rule.cardinality.field}}}
    body: dict[str, Any] = {
        "query": window_query(rule, start, end, today=today),
        "size": 0,
        "track_total_hits": False,
    }
    if fields:
        body["aggs"] = {"groups": comp}
    return body


def run_engine(es: Elasticsearch, rules: list[Rule], start: datetime, end: datetime) -> float:
    t0 = time.perf_counter()
    for rule in rules:
        evaluate(es, rule, start, end, index=INDEX)
    return time.perf_counter() - t0


def run_per_rule(es: Elasticsearch, bodies: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    for body in bodies:
        es.search(index=INDEX, request_cache=False, **body)
    return time.perf_counter() - t0


def run_batched(es: Elasticsearch, bodies: list[dict[str, Any]], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(bodies), batch):
        searches: list[dict[str, Any]] = []
        for body in bodies[i : i + batch]:
            searches += [{"index": INDEX, "request_cache": False}, body]
        resp = es.msearch(searches=searches)
        failed = [r for r in resp["responses"] if "error" in r]
        if failed:
            raise RuntimeError(f"msearch: {failed[0]['error']}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100, help="searches per _msearch request")
    ap.add_argument("--keep", action="store_true", help="keep the bench index afterwards")
    args = ap.parse_args(argv)

    admin, writer = client_for(Purpose.ADMIN), client_for(Purpose.WRITER)
    reader = client_for(Purpose.ALERTING)
    try:
        events = ensure_events(admin, writer, args.events)
        pack = [lr.rule for lr in load_rules()]
        rules = variants(pack, args.rules)
        start, end = WINDOW_START, WINDOW_START + WINDOW
        in_window = reader.count(
            index=INDEX, query={"range": {"@timestamp": {"gte": start, "lt": end}}}
        )["count"]
        bodies = [first_request(r, start, end) for r in rules]
        run_batched(reader, bodies[: args.batch], args.batch)  # warm up connections and JIT

        engine = run_engine(reader, rules, start, end)
        per_rule = run_per_rule(reader, bodies)
        batched = run_batched(reader, bodies, args.batch)

        print(
            f"{len(rules)} rules ({len(pack)} in the pack), window {start:%Y-%m-%d %H:%M}"
            f"+5m with {in_window:,} of {events:,} events, _msearch batches of {args.batch}"
        )
        for label, secs in (
            ("engine evaluate(), rule after rule", engine),
            ("first request, one _search per rule", per_rule),
            ("first request, batched _msearch", batched),
        ):
            print(f"  {label:38s} {secs:7.2f}s  = {secs / INTERVAL:6.3f} of a 1-minute interval")
        print(f"  per-rule / batched: {per_rule / batched:.2f}x")
        print(f"  engine / batched:   {engine / batched:.2f}x")
    finally:
        if not args.keep:
            admin.indices.delete(index=INDEX, ignore_unavailable=True)


if __name__ == "__main__":
    main()
