"""Every hit of a search, past the 10,000-hit window: a point-in-time (a consistent view
of the indices while we page) and `search_after` on the sort values of the last hit, which
is how Elasticsearch documents deep pagination."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.elastic.indices import DEFAULT_SEARCH
from iiswatch.elastic.query_errors import check_shards, query_errors
from iiswatch.elastic.search import Query, TimeRange, build_query

KEEP_ALIVE = "2m"  # between two pages, not for the whole export


def export_hits(
    es: Elasticsearch,
    query: Query,
    time_range: TimeRange,
    *,
    index: str = DEFAULT_SEARCH,
    fields: list[str] | None = None,
    oldest_first: bool = True,
    page_size: int = 1000,
    on_page: Callable[[int, int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every matching event in time order. `on_page(done, total)` after each page."""
    order = "asc" if oldest_first else "desc"
    with backend_errors(es), query_errors(query.text):
        pit = es.open_point_in_time(
            index=index,
            keep_alive=KEEP_ALIVE,
            ignore_unavailable=True,
            allow_partial_search_results=False,
        ).body["id"]
    try:
        after: list[Any] | None = None
        done = 0
        total: int | None = None
        while True:
            body: dict[str, Any] = {
                "query": build_query(query, time_range),
                "size": page_size,
                "pit": {"id": pit, "keep_alive": KEEP_ALIVE},
                "sort": [
                    {"@timestamp": {"order": order, "unmapped_type": "date"}},
                    {"log.offset": {"order": order, "unmapped_type": "long"}},
                    # the point-in-time's own tie-breaker: unique, so no hit is skipped or repeated
                    {"_shard_doc": order},
                ],
                # counted once, on the first page, for the progress line
                "track_total_hits": total is None,
            }
            if fields:
                body["_source"] = fields
            if after is not None:
                body["search_after"] = after
            with backend_errors(es), query_errors(query.text):
                resp = es.search(**body).body
            check_shards(resp, query.text)
            pit = resp.get("pit_id", pit)
            if total is None:
                total = int(resp["hits"]["total"]["value"])
            hits = resp["hits"]["hits"]
            for h in hits:
                yield h["_source"] | {"_index": h["_index"], "_id": h["_id"]}
            done += len(hits)
            if on_page:
                on_page(done, total)
            if len(hits) < page_size:
                return
            after = hits[-1]["sort"]
    finally:
        # best effort: it expires by itself after KEEP_ALIVE
        with contextlib.suppress(Exception):
            es.close_point_in_time(id=pit)
