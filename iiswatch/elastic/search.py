"""Analyst searches: a Lucene query string over ECS fields within a time range, with hits,
top values, a time histogram, or an exact count."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.elastic.indices import DEFAULT_SEARCH
from iiswatch.elastic.query_errors import check_shards, query_errors
from iiswatch.errors import UsageError
from iiswatch.times import (
    DURATION_HINT,
    TIME_HINT,
    parse_duration,
    parse_time,
)

T = TypeVar("T")

# more rows than anyone reads, and far below Elasticsearch's search.max_buckets
MAX_HISTOGRAM_BUCKETS = 1000


def _read(parse: Callable[[str], T], text: str, hint: str) -> T:
    """A time or duration option, or a UsageError that says how to write one."""
    try:
        return parse(text)
    except ValueError as e:
        raise UsageError(f"cannot read {text!r}: {e}", hint) from None


@dataclass(frozen=True)
class TimeRange:
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def from_options(
        cls, since: str | None, start: str | None, end: str | None, now: datetime | None = None
    ) -> TimeRange:
        if since and (start or end):
            raise UsageError("--since cannot be combined with --from/--to", "use one or the other")
        if since:
            now = now or datetime.now(UTC)
            return cls(now - _read(parse_duration, since, DURATION_HINT), now)
        return cls(
            _read(parse_time, start, TIME_HINT) if start else None,
            _read(parse_time, end, TIME_HINT) if end else None,
        )

    def filter(self) -> dict[str, Any] | None:
        if not (self.start or self.end):
            return None
        rng: dict[str, str] = {}
        if self.start:
            rng["gte"] = self.start.isoformat()
        if self.end:
            rng["lt"] = self.end.isoformat()
        return {"range": {"@timestamp": rng}}


@dataclass(frozen=True)
class Query:
    """What the analyst typed, in Lucene syntax (the default) or Kibana's KQL."""

    text: str
    kql: bool = False

    def clause(self) -> dict[str, Any] | None:
        """The query DSL for the text, or None when it matches everything."""
        if not self.text.strip() or self.text.strip() == "*":
            return None
        if self.kql:
            from iiswatch.elastic.kql import translate

            return translate(self.text).query
        return {"query_string": {"query": self.text, "analyze_wildcard": True}}


def build_query(query: str | Query, time_range: TimeRange) -> dict[str, Any]:
    q = query if isinstance(query, Query) else Query(query)
    clause = q.clause()
    flt = time_range.filter()
    return {"bool": {"must": [clause or {"match_all": {}}], "filter": [flt] if flt else []}}


@dataclass
class SearchResult:
    total: int
    total_exact: bool
    hits: list[dict[str, Any]]
    top: list[tuple[Any, int]] | None = None
    histogram: list[tuple[str, int]] | None = None
    top_other: int = 0  # events whose value is not among the top buckets
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The whole result for `--json`: hits and every aggregation that was asked for."""
        d: dict[str, Any] = {
            "total": self.total,
            "total_exact": self.total_exact,
            "hits": self.hits,
        }
        if self.top is not None:
            d["top"] = [{"value": k, "count": n} for k, n in self.top]
            d["top_other"] = self.top_other
        if self.histogram is not None:
            d["histogram"] = [{"time": t, "count": n} for t, n in self.histogram]
        return d


def histogram_interval(text: str) -> timedelta:
    step = _read(parse_duration, text, DURATION_HINT)
    if step.total_seconds() < 1:
        raise UsageError(f"histogram interval {text!r} is too small", "use 1s or more")
    return step


def histogram_bounds(
    es: Elasticsearch, query: str | Query, time_range: TimeRange, index: str
) -> tuple[datetime, datetime] | None:
    """The span the histogram covers: the time range, completed by the first and last
    matching event where it is open. None when nothing matches."""
    start, end = time_range.start, time_range.end
    if start is None or end is None:
        with backend_errors(es), query_errors(query if isinstance(query, str) else query.text):
            resp = es.search(
                index=index,
                query=build_query(query, time_range),
                size=0,
                aggs={"span": {"stats": {"field": "@timestamp"}}},
                ignore_unavailable=True,
                allow_no_indices=True,
            ).body
        check_shards(resp, query if isinstance(query, str) else query.text)
        span = (resp.get("aggregations") or {}).get("span") or {}
        if not span.get("count"):
            return None
        first = datetime.fromtimestamp(span["min"] / 1000, UTC)
        last = datetime.fromtimestamp(span["max"] / 1000, UTC)
        start = start or first
        end = end or last + timedelta(milliseconds=1)
    return start, end


def check_bucket_count(start: datetime, end: datetime, step: timedelta, text: str) -> int:
    """The number of buckets, or a UsageError when there would be too many to read."""
    n = max(1, math.ceil((end - start) / step))
    if n > MAX_HISTOGRAM_BUCKETS:
        need = (end - start) / MAX_HISTOGRAM_BUCKETS
        raise UsageError(
            f"a {text} histogram from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} has {n:,} "
            f"buckets (at most {MAX_HISTOGRAM_BUCKETS:,})",
            f"use a larger interval (at least {_round_up(need)}) or a shorter time range",
        )
    return n


def _round_up(td: timedelta) -> str:
    secs = td.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{math.ceil(secs / size)}{unit}"
    return f"{math.ceil(secs)}s"


def run_search(
    es: Elasticsearch,
    query: str | Query,
    time_range: TimeRange,
    *,
    index: str = DEFAULT_SEARCH,
    fields: list[str] | None = None,
    limit: int = 20,
    top: str | None = None,
    top_size: int = 10,
    histogram: str | None = None,
    oldest_first: bool = False,
) -> SearchResult:
    text = query if isinstance(query, str) else query.text
    body: dict[str, Any] = {
        "query": build_query(query, time_range),
        "size": limit,
        "sort": [
            {"@timestamp": {"order": "asc" if oldest_first else "desc", "unmapped_type": "date"}},
            # ties (same second) keep the order of the log file
            {"log.offset": {"order": "asc" if oldest_first else "desc", "unmapped_type": "long"}},
        ],
        "track_total_hits": True,
    }
    if fields:
        body["_source"] = fields
    aggs: dict[str, Any] = {}
    if top:
        aggs["top"] = {"terms": {"field": top, "size": top_size}}
    bounds = None
    if histogram:
        step = histogram_interval(histogram)  # validate before asking Elasticsearch
        bounds = histogram_bounds(es, query, time_range, index)
        hist: dict[str, Any] = {
            "field": "@timestamp",
            "fixed_interval": f"{int(step.total_seconds())}s",
            "min_doc_count": 0,  # empty buckets are shown: a gap in logging must be visible
        }
        if bounds:
            check_bucket_count(*bounds, step, histogram)
            hist["extended_bounds"] = {
                "min": int(bounds[0].timestamp() * 1000),
                "max": int(bounds[1].timestamp() * 1000) - 1,
            }
        aggs["histogram"] = {"date_histogram": hist}
    if aggs:
        body["aggs"] = aggs
    with backend_errors(es), query_errors(text):
        resp = es.search(index=index, ignore_unavailable=True, allow_no_indices=True, **body).body
    check_shards(resp, text)
    total = resp["hits"]["total"]
    result = SearchResult(
        total=total["value"],
        total_exact=total["relation"] == "eq",
        hits=[
            h["_source"] | {"_index": h["_index"], "_id": h["_id"]} for h in resp["hits"]["hits"]
        ],
    )
    aggregations = resp.get("aggregations") or {}
    if top:
        terms = aggregations.get("top") or {}
        result.top = [(b["key"], b["doc_count"]) for b in terms.get("buckets", [])]
        result.top_other = int(terms.get("sum_other_doc_count", 0))
    if histogram:
        result.histogram = [
            (b["key_as_string"], b["doc_count"])
            for b in (aggregations.get("histogram") or {}).get("buckets", [])
        ]
    return result


def count(
    es: Elasticsearch, query: str | Query, time_range: TimeRange, *, index: str = DEFAULT_SEARCH
) -> int:
    """Exact number of matching events (the count API is never capped at 10,000)."""
    with backend_errors(es), query_errors(query if isinstance(query, str) else query.text):
        resp = es.count(
            index=index,
            query=build_query(query, time_range),
            ignore_unavailable=True,
            allow_no_indices=True,
        )
    check_shards(resp.body, query if isinstance(query, str) else query.text)
    return int(resp["count"])
