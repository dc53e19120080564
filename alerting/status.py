"""What each rule did on its last run, kept in `iiswatch-state-status` (one document per
rule, rewritten every run; the ledger keeps the per-window history): last run, lag behind
ingest time, duration, hits, alerts, errors, and *why* nothing fired.

`iiswatch alerting status` reads these documents and the lease; it needs no running service.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from elasticsearch import Elasticsearch, NotFoundError

from iiswatch.elastic.client import backend_errors
from iiswatch.rules.model import Rule
from iiswatch.rules.query import Query, any_step, exception_clauses, own_query, time_range

STATUS_INDEX = "iiswatch-state-status"

Reason = Literal[
    "alerted",  # at least one alert raised
    "no hits",  # nothing matched the rule's query
    "excepted",  # matches, all dropped by the rule's exceptions
    "suppressed",  # alerts held back by suppression
    "already alerted",  # the same events alerted on by an overlapping window
    "below condition",  # matches, but no group reached the threshold / sequence / new term
    "error",
    "idle",  # nothing to do yet: no window settled since the last run
]


@dataclass
class WindowOutcome:
    """One evaluated window: counts and the reason (what status shows)."""

    hits: int = 0  # events the rule's query matched, exceptions applied
    excepted: int = 0  # events dropped by exceptions
    found: int = 0  # alerts the engine found before state (suppression, overlap)
    alerts: int = 0  # alerts raised (into the outbox)
    suppressed: int = 0
    duration_ms: int = 0
    reason: Reason = "no hits"

    def decide(self) -> WindowOutcome:
        if self.alerts:
            self.reason = "alerted"
        elif self.suppressed:
            self.reason = "suppressed"
        elif not self.hits:
            self.reason = "excepted" if self.excepted else "no hits"
        elif self.found:
            self.reason = "already alerted"
        else:
            self.reason = "below condition"
        return self

    def as_doc(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RuleStatus:
    rule_id: str
    rule_name: str
    last_run: str | None = None
    window_end: str | None = None  # end of the newest evaluated window (ingest time)
    lag_seconds: float | None = None  # last run time minus window_end
    duration_ms: int = 0
    windows: int = 0  # windows evaluated in the last run
    hits: int = 0
    excepted: int = 0
    alerts: int = 0
    suppressed: int = 0
    reason: Reason = "idle"
    errors: int = 0  # consecutive failed runs
    error: str | None = None  # the last error's message
    error_since: str | None = None
    totals: dict[str, int] = field(default_factory=dict)  # alerts/hits/errors since first run

    def as_doc(self) -> dict[str, Any]:
        d = asdict(self)
        d["rule"] = {"id": d.pop("rule_id"), "name": d.pop("rule_name")}
        return d

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RuleStatus:
        d = dict(doc)
        rule = d.pop("rule", {})
        known = {f for f in cls.__dataclass_fields__}
        return cls(
            rule_id=rule.get("id", ""),
            rule_name=rule.get("name", ""),
            **{k: v for k, v in d.items() if k in known and k not in ("rule_id", "rule_name")},
        )


def count_hits(
    es: Elasticsearch,
    rule: Rule,
    start: datetime,
    end: datetime,
    *,
    time_field: str,
    today: Any,
    extra: list[Query] | None = None,
    index: str | None = None,
) -> tuple[int, int]:
    """(hits, excepted) in [start, end): events the rule looks at, and how many of them its
    active exceptions drop. One request (a filter aggregation)."""
    base = [q for q in (own_query(rule), any_step(rule)) if q is not None]
    base.append(time_range(time_field, start, end))
    base.extend(extra or [])
    excepted = exception_clauses(rule.active_exceptions(today))
    body: dict[str, Any] = {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": base}},
    }
    if excepted:
        body["aggs"] = {
            "excepted": {"filter": {"bool": {"should": excepted, "minimum_should_match": 1}}}
        }
    with backend_errors(es):
        resp = es.search(
            index=index or rule.index, ignore_unavailable=True, allow_no_indices=True, **body
        )
    total = int(resp["hits"]["total"]["value"])
    exc = int(resp.get("aggregations", {}).get("excepted", {}).get("doc_count", 0))
    return total - exc, exc


class StatusStore:
    def __init__(self, es: Elasticsearch, index: str = STATUS_INDEX) -> None:
        self.es = es
        self.index = index

    def get(self, rule_id: str) -> RuleStatus | None:
        with backend_errors(self.es):
            try:
                doc = self.es.get(index=self.index, id=rule_id, realtime=True)
            except NotFoundError:
                return None
        return RuleStatus.from_doc(doc["_source"])

    def put(self, status: RuleStatus) -> None:
        with backend_errors(self.es):
            self.es.index(index=self.index, id=status.rule_id, document=status.as_doc())

    def all(self) -> list[RuleStatus]:
        with backend_errors(self.es):
            self.es.indices.refresh(index=self.index, ignore_unavailable=True)
            resp = self.es.search(
                index=self.index, size=1000, ignore_unavailable=True, sort=["_doc"]
            )
        return [RuleStatus.from_doc(h["_source"]) for h in resp["hits"]["hits"]]
