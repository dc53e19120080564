"""Analyst searches: a Lucene query string over ECS fields within a time range, with hits,
top values, a time histogram, or an exact count."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.elastic.indices import DEFAULT_SEARCH
from iiswatch.errors import UsageError

DEFAULT_FIELDS = (
    "@timestamp",
    "source.ip",
    "http.request.method",
    "url.original",
    "http.response.status_code",
    "user_agent.original",
)
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(
            f"cannot read the duration {text!r}", "use a number and a unit: 90s, 15m, 2h, 7d, 1w"
        )
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read the time {text!r}", "use ISO 8601, e.g. 2026-11-26T14:00:00Z"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


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
            return cls(now - parse_duration(since), now)
        return cls(parse_time(start) if start else None, parse_time(end) if end else None)

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
        parse_duration(histogram)  # validate before asking Elasticsearch
        aggs["histogram"] = {
            "date_histogram": {
                "field": "@timestamp",
                "fixed_interval": histogram,
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


def get_field(doc: dict[str, Any], dotted: str) -> Any:
    """A dotted ECS field from a nested document (`source.ip`), or None."""
    cur: Any = doc
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur
