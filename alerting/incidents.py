"""Incidents in Elasticsearch (`iiswatch-incidents`): one document per entity and
generation, id `incident_id(entity, value, generation)` (`iiswatch.alerting.risk`), so
every process and every restart names an entity's incident the same way.

An entity's current incident is its lowest generation that is not resolved, found with
real-time GETs (no refresh needed). A finding is added with a conditional write
(`_seq_no`/`_primary_term`; `op_type=create` for a new document) keyed by its alert id:
adding the same alert twice (a window evaluated again after a crash, the standby taking
over) changes nothing; two writers racing retry on the conflict. Below the threshold the
document is `watching` (no ticket); once its findings open it, it is `open` and
`delivery.pending` tells the delivery pass (`iiswatch.alerting.incident_delivery`) there is
a ticket to open or a finding to comment. States after that: acked, snoozed, resolved (a
new finding for a resolved entity starts its next generation).
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import BadRequestError, ConflictError, Elasticsearch, NotFoundError

from iiswatch.alerting.risk import (
    NO_ENTITY,
    IncidentPolicy,
    entity_values,
    incident_id,
    iso,
    opens,
    summary,
)
from iiswatch.elastic.client import backend_errors, search_versioned
from iiswatch.errors import UsageError

INCIDENTS_INDEX = "iiswatch-incidents"
STATES = ("watching", "open", "acked", "snoozed", "resolved")
LIVE = ("open", "acked", "snoozed")  # states with a ticket
MAX_FINDINGS = 500  # findings kept in one incident document; the risk of later ones counts
MAX_GENERATIONS = 1000


@dataclass(frozen=True)
class Incident:
    doc: dict[str, Any]
    seq_no: int
    primary_term: int

    @property
    def incident_id(self) -> str:
        return str(self.doc["incident_id"])

    @property
    def state(self) -> str:
        return str(self.doc.get("state", "watching"))

    @property
    def findings(self) -> list[dict[str, Any]]:
        return list(self.doc.get("findings") or [])

    @property
    def delivery(self) -> dict[str, Any]:
        return dict(self.doc.get("delivery") or {})


class IncidentStore:
    def __init__(
        self,
        es: Elasticsearch,
        policy: IncidentPolicy | None = None,
        index: str = INCIDENTS_INDEX,
    ) -> None:
        self.es = es
        self.policy = policy or IncidentPolicy()
        self.index = index

    def ensure_index(self) -> None:
        with backend_errors(self.es):
            if not self.es.indices.exists(index=self.index):
                try:
                    self.es.indices.create(index=self.index)
                except BadRequestError as e:  # two processes raced to create it
                    if e.error != "resource_already_exists_exception":
                        raise

    # -- adding findings ------------------------------------------------------------------

    def add(
        self,
        alert: Mapping[str, Any],
        finding: Mapping[str, Any],
        *,
        destinations: list[str],
        now: datetime | None = None,
    ) -> list[Incident]:
        """Credit the finding to each entity of the alert; the incidents that changed."""
        now = now or datetime.now(UTC)
        changed = []
        for value in entity_values(alert, self.policy.entity) or [NO_ENTITY]:
            inc = self._add_to_entity(value, dict(finding), destinations, now)
            if inc is not None:
                changed.append(inc)
        return changed

    def _add_to_entity(
        self, value: str, finding: dict[str, Any], destinations: list[str], now: datetime
    ) -> Incident | None:
        entity = self.policy.entity
        for generation in range(1, MAX_GENERATIONS + 1):
            iid = incident_id(entity, value, generation)
            while True:
                cur = self.get(iid)
                if cur is not None and finding["alert_id"] in (cur.doc.get("finding_ids") or []):
                    return None  # known already (this generation or an earlier one)
                if cur is not None and cur.state == "resolved":
                    break  # the next generation
                doc = self._with_finding(cur, iid, generation, value, finding, destinations, now)
                try:
                    return self._write(cur, iid, doc)
                except ConflictError:
                    continue  # another process wrote meanwhile: read again
        raise UsageError(
            f"entity {entity}={value} has {MAX_GENERATIONS} resolved incidents",
            "resolve less eagerly, or add an exception for this entity",
        )

    def _with_finding(
        self,
        cur: Incident | None,
        iid: str,
        generation: int,
        value: str,
        finding: dict[str, Any],
        destinations: list[str],
        now: datetime,
    ) -> dict[str, Any]:
        if cur is None:
            doc: dict[str, Any] = {
                "kind": "incident",
                "incident_id": iid,
                "generation": generation,
                "state": "watching",
                "@timestamp": iso(now),
                "findings": [],
                "finding_ids": [],
                "delivery": {"destinations": list(destinations), "pending": False, "states": {}},
            }
        else:
            doc = copy.deepcopy(cur.doc)
        findings = [*doc["findings"], finding][-MAX_FINDINGS:]
        doc["findings"] = findings
        doc["finding_ids"] = [*doc.get("finding_ids", []), finding["alert_id"]]
        doc.update(summary(findings, self.policy, value))
        doc["updated"] = iso(now)
        if doc["state"] == "watching":
            why = opens(findings, self.policy)
            if why is not None:
                doc.update(state="open", opened_at=iso(now), opened_by=why)
        if doc["state"] != "watching":
            doc["delivery"]["pending"] = True
            doc["delivery"].setdefault("next_attempt_at", iso(now))
        return doc

    def _write(self, cur: Incident | None, iid: str, doc: dict[str, Any]) -> Incident:
        """Create, or replace the version `cur` was read at; ConflictError (raised outside
        `backend_errors`, which would turn it into BackendUnavailable) when it moved on."""
        conflict: ConflictError | None = None
        with backend_errors(self.es):
            try:
                if cur is None:
                    r = self.es.create(index=self.index, id=iid, document=doc)
                else:
                    r = self.es.index(
                        index=self.index,
                        id=iid,
                        document=doc,
                        if_seq_no=cur.seq_no,
                        if_primary_term=cur.primary_term,
                    )
            except ConflictError as e:
                conflict = e
        if conflict is not None:
            raise conflict
        return Incident(doc, int(r["_seq_no"]), int(r["_primary_term"]))

    def update(self, cur: Incident, doc: dict[str, Any]) -> Incident:
        """A conditional write of a changed document (ConflictError when it moved on)."""
        return self._write(cur, cur.incident_id, doc)

    # -- on-call actions ------------------------------------------------------------------

    def set_state(
        self,
        prefix: str,
        state: str,
        *,
        by: str | None = None,
        until: datetime | None = None,
        now: datetime | None = None,
    ) -> Incident:
        """ack / snooze (until) / resolve an incident, retried on a conflicting write."""
        now = now or datetime.now(UTC)
        if state not in ("acked", "snoozed", "resolved", "open"):
            raise UsageError(f"cannot set an incident to {state!r}", "ack, snooze or resolve it")
        iid = self.find(prefix).incident_id
        while True:
            cur = self.get(iid)
            assert cur is not None
            if cur.state == "watching" and state != "resolved":
                raise UsageError(
                    f"incident {iid} has not opened (its risk is below the threshold)",
                    "only open incidents are acked or snoozed; resolve it to start afresh",
                )
            doc = copy.deepcopy(cur.doc)
            doc["state"] = state
            doc["updated"] = iso(now)
            doc.setdefault("history", []).append({"at": iso(now), "state": state, "by": by})
            if state == "snoozed":
                doc["snoozed_until"] = iso(until) if until else None
            if state == "resolved":
                doc["resolved_at"] = iso(now)
            try:
                return self.update(cur, doc)
            except ConflictError:
                continue

    # -- reading --------------------------------------------------------------------------

    def get(self, iid: str) -> Incident | None:
        with backend_errors(self.es):
            try:
                r = self.es.get(index=self.index, id=iid, realtime=True)
            except NotFoundError:
                return None
        return Incident(dict(r["_source"]), int(r["_seq_no"]), int(r["_primary_term"]))

    def find(self, prefix: str) -> Incident:
        """The incident whose id is `prefix` or starts with it (unique)."""
        exact = self.get(prefix) if prefix else None
        if exact is not None:
            return exact
        hits = self._search({"prefix": {"incident_id": prefix}}, 3, [{"opened_at": "desc"}])
        if len(hits) != 1:
            raise UsageError(
                f"{'no' if not hits else 'more than one'} incident {prefix!r}",
                "`iiswatch incidents list` shows the ids (a unique prefix is enough)",
            )
        return hits[0]

    def list(
        self,
        *,
        states: builtins.list[str] | None = None,
        rule: str | None = None,
        severity: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> builtins.list[Incident]:
        """Incidents, newest activity first (`watching` ones only when asked for)."""
        filters: builtins.list[dict[str, Any]] = [{"term": {"kind": "incident"}}]
        filters.append({"terms": {"state": list(states or LIVE)}})
        if rule:
            filters.append(
                {
                    "bool": {
                        "should": [
                            {"term": {"rule_names": rule}},
                            {"prefix": {"rules.id": rule}},
                        ],
                        "minimum_should_match": 1,
                    }
                }
            )
        if severity:
            filters.append({"term": {"severity": severity}})
        if since:
            filters.append({"range": {"last_event": {"gte": iso(since)}}})
        return self._search({"bool": {"filter": filters}}, limit, [{"updated": "desc"}])

    def with_finding(self, alert_id: str) -> builtins.list[Incident]:
        return self._search({"term": {"finding_ids": alert_id}}, 10, [{"updated": "desc"}])

    def due(self, now: datetime, limit: int = 50) -> builtins.list[Incident]:
        """Incidents with something to deliver whose claim is free or expired."""
        query = {
            "bool": {
                "filter": [
                    {"term": {"delivery.pending": True}},
                    {"terms": {"state": list(LIVE)}},
                    {"range": {"delivery.next_attempt_at": {"lte": iso(now)}}},
                ],
                "must_not": [{"range": {"delivery.claim.until": {"gt": iso(now)}}}],
            }
        }
        return self._search(query, limit, [{"delivery.next_attempt_at": "asc"}])

    def _search(
        self, query: dict[str, Any], limit: int, sort: builtins.list[Any]
    ) -> builtins.list[Incident]:
        found = search_versioned(self.es, self.index, query, limit, sort)
        return [Incident(*hit) for hit in found]
