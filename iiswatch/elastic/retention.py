"""`iiswatch retention`: delete what is older than the configured ages.

- monthly log indices (`iis-access-YYYY.MM`, `iis-error-YYYY.MM`): a whole index once its
  month ended more than `logs` ago (cheap, and the month is the unit analysts think in);
- dead letters: documents whose `@timestamp` (when they were ingested) is older than
  `deadletter`;
- alerting state: evaluated-window records of the ledger and expired suppressions older
  than `state` (the ledger's per-rule cursor is never deleted, so nothing is re-evaluated);
- alerts (the outbox, the audit trail of tickets): only when `alerts` is set.

The minimal distribution has no ILM and no `_delete_by_query`, so documents are deleted by
searching their ids and bulk-deleting them; this works on every cluster. A dry run is the
default: it says what would go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.config import RetentionSettings
from iiswatch.elastic import indices
from iiswatch.elastic.client import backend_errors
from iiswatch.errors import BackendUnavailable
from iiswatch.times import format_duration, iso

_MONTHLY = re.compile(
    rf"^(?:{re.escape(indices.ACCESS_PREFIX)}|{re.escape(indices.ERROR_PREFIX)})(\d{{4}})\.(\d{{2}})$"
)


@dataclass(frozen=True)
class Action:
    kind: str  # "index" (delete a whole index) | "documents" (delete matching documents)
    target: str  # index name or pattern
    reason: str
    count: int  # documents that go
    query: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "reason": self.reason,
            "count": self.count,
        }


def month_end(index: str) -> date | None:
    """The first day after the month a monthly log index holds (None: not a monthly index)."""
    m = _MONTHLY.match(index)
    if m is None:
        return None
    year, month = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12:
        return None
    return date(year + month // 12, month % 12 + 1, 1)


def expired_log_indices(names: Iterable[str], now: datetime, age: timedelta) -> list[str]:
    """Monthly log indices whose whole month ended more than `age` before `now`."""
    cutoff = (now - age).date()
    return sorted(n for n in names if (end := month_end(n)) is not None and end <= cutoff)


def _older(field: str, cutoff: datetime) -> dict[str, Any]:
    return {"range": {field: {"lt": iso(cutoff)}}}


def document_rules(now: datetime, ages: RetentionSettings) -> list[tuple[str, str, dict[str, Any]]]:
    """(index pattern, reason, query) for each kind of document that expires."""
    rules = [
        (
            f"{indices.DEADLETTER_ALIAS}*",
            f"dead letters older than {format_duration(ages.deadletter)}",
            _older("@timestamp", now - ages.deadletter),
        ),
        (
            "iiswatch-state-windows*",
            f"evaluated windows older than {format_duration(ages.state)}",
            {
                "bool": {
                    "filter": [
                        {"terms": {"kind": ["window", "gap"]}},
                        _older("window.end", now - ages.state),
                    ]
                }
            },
        ),
        (
            "iiswatch-state-suppression*",
            f"suppressions expired more than {format_duration(ages.state)} ago",
            _older("suppressed_until", now - ages.state),
        ),
    ]
    if ages.alerts is not None:
        rules.append(
            (
                "iiswatch-alerts*",
                f"alerts older than {format_duration(ages.alerts)}",
                _older("@timestamp", now - ages.alerts),
            )
        )
    return rules


def plan(es: Elasticsearch, ages: RetentionSettings, now: datetime | None = None) -> list[Action]:
    now = now or datetime.now(UTC)
    actions: list[Action] = []
    with backend_errors(es):
        names = es.indices.get(
            index=f"{indices.ACCESS_PREFIX}*,{indices.ERROR_PREFIX}*", expand_wildcards="open"
        ).keys()
        for name in expired_log_indices(names, now, ages.logs):
            n = es.count(index=name)["count"]
            actions.append(
                Action(
                    "index", name, f"its month ended more than {format_duration(ages.logs)} ago", n
                )
            )
        for pattern, reason, query in document_rules(now, ages):
            n = es.count(
                index=pattern, query=query, ignore_unavailable=True, allow_no_indices=True
            )["count"]
            if n:
                actions.append(Action("documents", pattern, reason, n, query))
    return actions


def apply(es: Elasticsearch, actions: Iterable[Action], batch: int = 1000) -> int:
    """Carry out a plan; the number of documents deleted."""
    deleted = 0
    with backend_errors(es):
        for a in actions:
            if a.kind == "index":
                es.indices.delete(index=a.target)
                deleted += a.count
                continue
            while True:
                es.indices.refresh(index=a.target, ignore_unavailable=True, allow_no_indices=True)
                hits = es.search(
                    index=a.target, query=a.query, size=batch, source=False,
                    ignore_unavailable=True, allow_no_indices=True,
                )["hits"]["hits"]  # fmt: skip
                if not hits:
                    break
                ops = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
                resp = es.bulk(operations=ops, refresh=True)
                failed = [i for i in resp["items"] if i["delete"].get("status") not in (200, 404)]
                if failed:  # never loop on documents that will not go
                    raise BackendUnavailable(
                        f"could not delete {len(failed)} document(s) from {a.target}: "
                        f"{failed[0]['delete'].get('error')}",
                        "check the credentials' privileges (retention uses the admin user)",
                    )
                deleted += len(hits)
    return deleted
