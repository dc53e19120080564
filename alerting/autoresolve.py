"""Auto-resolve: once an alert group has been quiet for a configured time, its tickets are
resolved and its alerts marked resolved. The next detection for that group then opens a new
ticket instead of commenting on a closed one.

"Quiet" means: the group's newest alert in the outbox is older than `clear_for`. The state
is the outbox itself, so this survives restarts and needs no memory of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.alerting.config import AlertingConfig
from iiswatch.alerting.delivery import resolve
from iiswatch.alerting.outbox import ALERTS_INDEX


def quiet_groups(
    es: Elasticsearch, clear_for: timedelta, now: datetime, *, index: str = ALERTS_INDEX
) -> list[str]:
    """group_refs with delivered alerts whose newest alert (any status) is older than
    `now - clear_for`."""
    cutoff = (now - clear_for).isoformat()
    after: dict[str, Any] | None = None
    quiet: list[str] = []
    while True:
        comp: dict[str, Any] = {"size": 500, "sources": [{"g": {"terms": {"field": "group_ref"}}}]}
        if after:
            comp["after"] = after
        resp = es.search(
            index=index,
            size=0,
            ignore_unavailable=True,
            aggs={
                "groups": {
                    "composite": comp,
                    "aggs": {
                        "newest": {"max": {"field": "@timestamp"}},
                        "open": {"filter": {"term": {"delivery.status": "delivered"}}},
                    },
                }
            },
        )
        agg = resp.get("aggregations", {}).get("groups", {})
        for b in agg.get("buckets", []):
            newest = b["newest"].get("value_as_string")
            if b["open"]["doc_count"] and newest and newest < cutoff:
                quiet.append(str(b["key"]["g"]))
        after = agg.get("after_key")
        if not agg.get("buckets") or after is None:
            return quiet


def auto_resolve(
    es: Elasticsearch,
    config: AlertingConfig,
    clear_for: timedelta,
    now: datetime,
    *,
    index: str = ALERTS_INDEX,
) -> list[str]:
    """Resolve every delivered alert of each quiet group; returns the alert ids resolved."""
    done: list[str] = []
    for group in quiet_groups(es, clear_for, now, index=index):
        hits = es.search(
            index=index,
            size=100,
            source=False,
            query={
                "bool": {
                    "filter": [
                        {"term": {"group_ref": group}},
                        {"term": {"delivery.status": "delivered"}},
                    ]
                }
            },
        )["hits"]["hits"]
        for h in hits:
            resolve(es, config, h["_id"], now, index=index)
            done.append(h["_id"])
    return done
