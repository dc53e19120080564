"""The durable outbox: one document per alert in `iiswatch-alerts`, `_id` = its
deterministic alert id, with its delivery status, every attempt and the tickets it reached.

Status: new → delivering → delivered | failed (→ resolved). `put_new` uses op_type=create,
so raising the same alert again is a no-op. Every change after that is conditional on the
document's `_seq_no`/`_primary_term`: `claim` succeeds for one process only, and a process
whose claim expired (it hung past `claim_timeout`) gets a `LostClaim` on its next write
instead of overwriting the new owner's work.

Document: the alert's own fields (docs/design/rule-schema.md: `alert_id`, `rule`,
`severity`, `mitre`, `group`, `source.ip`, `samples`, `window`, ...) at the top level, plus
`@timestamp` (stored), `group_ref` (rule + group, see templates.group_ref), `templates`
(title/body names) and `delivery`: {status, destinations, created, updated, since (start of
the current delivery round), next_attempt_at, attempt_count, claim {owner, at, until},
attempts [{at, destination, outcome, action, error, ticket_id, detail}], states
{destination: {status, attempts, ticket_id, url, action, error}}, tickets [{destination,
id, url, action}], last_error, delivered_at, failed_at, resolved_at}.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from elasticsearch import BadRequestError, ConflictError, Elasticsearch, NotFoundError

from iiswatch.alerting.templates import group_ref
from iiswatch.elastic.client import backend_errors, search_versioned
from iiswatch.errors import IiswatchError, UsageError
from iiswatch.times import iso, time_or_none

if TYPE_CHECKING:
    from iiswatch.rules.alert import Alert
    from iiswatch.rules.model import Rule

ALERTS_INDEX = "iiswatch-alerts"
STATUSES = ("new", "delivering", "delivered", "failed", "resolved")
MAX_ATTEMPTS_KEPT = 100  # attempts listed in the document; the count goes on


class LostClaim(IiswatchError):
    """Another process changed the alert since we claimed it (our claim had expired)."""


@dataclass(frozen=True)
class Record:
    """One alert document as read, with the version that conditional writes need."""

    doc: dict[str, Any]
    seq_no: int
    primary_term: int

    @property
    def alert_id(self) -> str:
        return str(self.doc["alert_id"])

    @property
    def delivery(self) -> dict[str, Any]:
        return dict(self.doc.get("delivery") or {})

    @property
    def status(self) -> str:
        return str(self.delivery.get("status", "new"))

    @property
    def alert(self) -> dict[str, Any]:
        """The alert as templates and destinations see it (no outbox bookkeeping)."""
        return {k: v for k, v in self.doc.items() if k not in ("delivery", "@timestamp")}


def alert_document(alert: Alert | Mapping[str, Any], rule: Rule | None = None) -> dict[str, Any]:
    """The alert's fields as stored, with what delivery needs from its rule: the query for
    the Kibana link and the title/body template names."""
    doc: dict[str, Any] = dict(alert.to_json() if hasattr(alert, "to_json") else alert)
    doc["rule"] = dict(doc.get("rule") or {})
    if rule is not None:
        doc["rule"].setdefault("index", rule.index)
        if rule.lucene is not None:
            doc["rule"].setdefault("lucene", rule.lucene)
        elif rule.query is not None:
            doc["rule"].setdefault("query", dict(rule.query))
        doc.setdefault("templates", {"title": rule.alert.title, "body": rule.alert.body})
    return doc


class Outbox:
    def __init__(self, es: Elasticsearch, index: str = ALERTS_INDEX) -> None:
        self.es = es
        self.index = index

    # -- writing --------------------------------------------------------------------------

    def ensure_index(self) -> None:
        """Create the index (its template gives the mapping) so reads work before the
        first alert; harmless when it exists."""
        with backend_errors(self.es):
            if not self.es.indices.exists(index=self.index):
                try:
                    self.es.indices.create(index=self.index)
                except BadRequestError as e:  # two processes raced to create it
                    if e.error != "resource_already_exists_exception":
                        raise

    def put_new(
        self,
        alert: Alert | Mapping[str, Any],
        *,
        destinations: Sequence[str],
        rule: Rule | None = None,
        now: datetime | None = None,
        routed: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store a new alert for delivery; False (and nothing written) if its id is known.
        `routed`: the alert is kept for the record but delivered otherwise (it went to an
        incident, `{"to": "incident"}`, or a silence held it, `{"to": "silence", ...}`)."""
        now = now or datetime.now(UTC)
        doc = alert_document(alert, rule)
        if not doc.get("alert_id"):
            raise UsageError("an alert needs an alert_id", "alerts come from the rule engine")
        doc["@timestamp"] = iso(now)
        doc["group_ref"] = group_ref(doc)
        doc["delivery"] = {
            "status": "new",
            "destinations": list(dict.fromkeys(destinations)),
            "created": iso(now),
            "updated": iso(now),
            "since": iso(now),
            "next_attempt_at": iso(now),
            "attempt_count": 0,
            "attempts": [],
            "states": {},
            "tickets": [],
        }
        if routed is not None:
            doc["delivery"].update(status="delivered", delivered_at=iso(now), routed=dict(routed))
        with backend_errors(self.es):
            try:
                self.es.create(index=self.index, id=str(doc["alert_id"]), document=doc)
            except ConflictError:
                return False
        return True

    def put(
        self, alerts: Sequence[Alert], destinations: Sequence[str], rule: Rule | None = None
    ) -> int:
        """The scheduler's sink: store each alert; how many were new."""
        return sum(self.put_new(a, destinations=destinations, rule=rule) for a in alerts)

    def _write(self, rec: Record, doc: dict[str, Any]) -> Record:
        with backend_errors(self.es):
            try:
                r = self.es.index(
                    index=self.index,
                    id=rec.alert_id,
                    document=doc,
                    if_seq_no=rec.seq_no,
                    if_primary_term=rec.primary_term,
                )
            except ConflictError as e:
                raise LostClaim(
                    f"alert {rec.alert_id} was changed by another process",
                    "another deliverer took it over; nothing to do",
                ) from e
        return Record(doc, int(r["_seq_no"]), int(r["_primary_term"]))

    def _changed(self, rec: Record, now: datetime, **delivery: Any) -> Record:
        doc = copy.deepcopy(rec.doc)
        doc["delivery"].update(delivery, updated=iso(now))
        return self._write(rec, doc)

    def claim(
        self,
        alert_id: str,
        *,
        owner: str,
        now: datetime,
        ttl: timedelta,
        force: bool = False,
    ) -> Record | None:
        """Take the alert for delivery, or None if it is not due or another process has
        it. Due: `new` whose next attempt time has come, or `delivering` whose claim
        expired (its deliverer died). `force` also takes a not-yet-due `new` alert."""
        rec = self.get(alert_id)
        if rec is None:
            return None
        d = rec.delivery
        if rec.status == "new":
            nxt = time_or_none(d.get("next_attempt_at"))
            if not force and nxt is not None and nxt > now:
                return None
        elif rec.status == "delivering":
            until = time_or_none((d.get("claim") or {}).get("until"))
            if until is not None and until > now:
                return None
        else:
            return None
        claim = {"owner": owner, "at": iso(now), "until": iso(now + ttl)}
        try:
            return self._changed(rec, now, status="delivering", claim=claim)
        except LostClaim:
            return None  # someone else claimed it between our read and write

    def record_attempt(
        self,
        rec: Record,
        *,
        destination: str,
        outcome: str,  # delivered | retryable | permanent
        now: datetime,
        error: str | None = None,
        action: str | None = None,
        ticket_id: str | None = None,
        url: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Record:
        d = copy.deepcopy(rec.delivery)
        attempt = {
            "at": iso(now),
            "destination": destination,
            "outcome": outcome,
            "action": action,
            "error": error,
            "ticket_id": ticket_id,
            "detail": dict(detail or {}),
        }
        attempts = [*(d.get("attempts") or []), attempt][-MAX_ATTEMPTS_KEPT:]
        states = dict(d.get("states") or {})
        st = dict(states.get(destination) or {"attempts": 0})
        st["attempts"] = int(st.get("attempts", 0)) + 1
        st["at"] = iso(now)
        if outcome == "delivered":
            st.update(status="delivered", ticket_id=ticket_id, url=url, action=action, error=None)
        else:
            st.update(status="failed" if outcome == "permanent" else "pending", error=error)
        states[destination] = st
        tickets = list(d.get("tickets") or [])
        if outcome == "delivered" and (ticket_id or url):
            tickets.append(
                {"destination": destination, "id": ticket_id, "url": url, "action": action}
            )
        changes: dict[str, Any] = {
            "attempts": attempts,
            "attempt_count": int(d.get("attempt_count", 0)) + 1,
            "states": states,
            "tickets": tickets,
        }
        if error:
            changes["last_error"] = f"{destination}: {error}"
        return self._changed(rec, now, **changes)

    def mark_delivered(self, rec: Record, now: datetime) -> Record:
        return self._changed(rec, now, status="delivered", delivered_at=iso(now), claim=None)

    def mark_failed(self, rec: Record, now: datetime, error: str | None = None) -> Record:
        changes: dict[str, Any] = {"status": "failed", "failed_at": iso(now), "claim": None}
        if error:
            changes["last_error"] = error
        return self._changed(rec, now, **changes)

    def mark_pending(self, rec: Record, now: datetime, next_attempt_at: datetime) -> Record:
        """Back to `new`, to be tried again from `next_attempt_at` on."""
        return self._changed(
            rec, now, status="new", next_attempt_at=iso(next_attempt_at), claim=None
        )

    def mark_resolved(self, rec: Record, now: datetime) -> Record:
        return self._changed(rec, now, status="resolved", resolved_at=iso(now), claim=None)

    def requeue(self, alert_id: str, now: datetime) -> Record:
        """A failed alert back to `new` for a fresh delivery round (`alerts retry`):
        destinations that already took it are not sent to again."""
        rec = self.get(alert_id)
        if rec is None:
            raise UsageError(f"no alert {alert_id}", "`iiswatch alerts list` shows the ids")
        if rec.status not in ("failed", "new"):
            raise UsageError(
                f"alert {alert_id} is {rec.status}, not failed",
                "only failed alerts are replayed; `iiswatch alerts show ID` shows its tickets",
            )
        states = {
            name: st
            if st.get("status") == "delivered"
            else {**st, "status": "pending", "attempts": 0}
            for name, st in (rec.delivery.get("states") or {}).items()
        }
        return self._changed(
            rec,
            now,
            status="new",
            since=iso(now),
            next_attempt_at=iso(now),
            states=states,
            claim=None,
            failed_at=None,
        )

    # -- reading --------------------------------------------------------------------------

    def get(self, alert_id: str) -> Record | None:
        with backend_errors(self.es):
            try:
                r = self.es.get(index=self.index, id=alert_id)
            except NotFoundError:
                return None
        return Record(dict(r["_source"]), int(r["_seq_no"]), int(r["_primary_term"]))

    def list(
        self,
        status: str | None = None,
        *,
        limit: int = 100,
        rule: str | None = None,
        severity: str | None = None,
        since: datetime | None = None,
    ) -> list[Record]:
        """Alerts, newest first, optionally with one status, rule (name or id prefix),
        severity, or raised since a time."""
        if status is not None and status not in STATUSES:
            raise UsageError(f"unknown status {status!r}", f"use one of: {', '.join(STATUSES)}")
        filters: builtins.list[dict[str, Any]] = []
        if status:
            filters.append({"term": {"delivery.status": status}})
        if rule:
            filters.append(
                {
                    "bool": {
                        "should": [{"term": {"rule.name": rule}}, {"prefix": {"rule.id": rule}}],
                        "minimum_should_match": 1,
                    }
                }
            )
        if severity:
            filters.append({"term": {"severity": severity}})
        if since:
            filters.append({"range": {"delivery.created": {"gte": iso(since)}}})
        query: dict[str, Any] = {"bool": {"filter": filters}} if filters else {"match_all": {}}
        return self._search(query, limit, [{"delivery.created": "desc"}])

    def find(self, prefix: str) -> Record:
        """The alert whose id is `prefix` or starts with it (unique)."""
        rec = self.get(prefix) if prefix else None
        if rec is not None:
            return rec
        found = self._search({"prefix": {"alert_id": prefix}}, 3, [{"delivery.created": "desc"}])
        if len(found) != 1:
            raise UsageError(
                f"{'no' if not found else 'more than one'} alert {prefix!r}",
                "`iiswatch alerts list` shows the ids (a unique prefix is enough)",
            )
        return found[0]

    def due(self, now: datetime, *, limit: int = 50) -> builtins.list[Record]:
        """Alerts a delivery pass should claim: due `new` ones and abandoned claims."""
        query = {
            "bool": {
                "should": [
                    {
                        "bool": {
                            "filter": [
                                {"term": {"delivery.status": "new"}},
                                {"range": {"delivery.next_attempt_at": {"lte": iso(now)}}},
                            ]
                        }
                    },
                    {
                        "bool": {
                            "filter": [
                                {"term": {"delivery.status": "delivering"}},
                                {"range": {"delivery.claim.until": {"lt": iso(now)}}},
                            ]
                        }
                    },
                ],
                "minimum_should_match": 1,
            }
        }
        return self._search(query, limit, [{"delivery.next_attempt_at": "asc"}])

    def _search(
        self, query: dict[str, Any], limit: int, sort: builtins.list[Any]
    ) -> builtins.list[Record]:
        found = search_versioned(self.es, self.index, query, limit, sort)
        return [Record(*hit) for hit in found]
