"""Analyst searches: a Lucene query string over ECS fields within a time range, with hits,
top values, a time histogram, or an exact count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.elastic.indices import DEFAULT_SEARCH
from iiswatch.errors import UsageError
from iiswatch.times import (
    DURATION_HINT,
    TIME_HINT,
    format_duration,
    parse_duration,
    parse_time,
)

T = TypeVar("T")

DEFAULT_FIELDS = (
    "@timestamp",
    "source.ip",
    "http.request.method",
    "url.original",
    "http.response.status_code",
    "user_agent.original",
)


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


def build_query(query: str, time_range: TimeRange) -> dict[str, Any]:
    must: list[dict[str, Any]] = []
    if query.strip() and query.strip() != "*":
        must.append({"query_string": {"query": query, "analyze_wildcard": True}})
    flt = time_range.filter()
    return {"bool": {"must": must or [{"match_all": {}}], "filter": [flt] if flt else []}}


@dataclass
class SearchResult:
    total: int
    total_exact: bool
    hits: list[dict[str, Any]]
    top: list[tuple[Any, int]] | None = None
    histogram: list[tuple[str, int]] | None = None


def run_search(
    es: Elasticsearch,
    query: str,
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
    if histogram:
        # our grammar, spelt in units Elasticsearch's fixed_interval knows (1w -> 7d)
        interval = format_duration(_read(parse_duration, histogram, DURATION_HINT))
        aggs["histogram"] = {
            "date_histogram": {
                "field": "@timestamp",
                "fixed_interval": interval,
                "min_doc_count": 1,
            }
        }
    if aggs:
        body["aggs"] = aggs
    with backend_errors(es):
        resp = es.search(index=index, ignore_unavailable=True, allow_no_indices=True, **body).body
    total = resp["hits"]["total"]
    result = SearchResult(
        total=total["value"],
        total_exact=total["relation"] == "eq",
        hits=[
            h["_source"] | {"_index": h["_index"], "_id": h["_id"]} for h in resp["hits"]["hits"]
        ],
    )
    if top:
        result.top = [(b["key"], b["doc_count"]) for b in resp["aggregations"]["top"]["buckets"]]
    if histogram:
        result.histogram = [
            (b["key_as_string"], b["doc_count"])
            for b in resp["aggregations"]["histogram"]["buckets"]
        ]
    return result


def count(
    es: Elasticsearch, query: str, time_range: TimeRange, *, index: str = DEFAULT_SEARCH
) -> int:
    """Exact number of matching events (the count API is never capped at 10,000)."""
    with backend_errors(es):
        resp = es.count(
            index=index,
            query=build_query(query, time_range),
            ignore_unavailable=True,
            allow_no_indices=True,
        )
    return int(resp["count"])
