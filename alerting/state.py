"""The rule engine's `SuppressionState` kept in Elasticsearch (`iiswatch-state-suppression`),
so what was alerted on and what is suppressed survives restarts and moves with the lease.

Writes are held back until `flush()`: the service flushes only after the window's alerts
are in the outbox. A crash in between leaves the state as it was before the window, so
evaluating the window again raises the same alerts (same ids: the outbox keeps one) instead
of finding them "already seen" and losing them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch, helpers

from iiswatch.elastic.client import backend_errors
from iiswatch.rules.suppression import GroupState
from iiswatch.times import iso, time_or_none

SUPPRESSION_INDEX = "iiswatch-state-suppression"


def state_doc_id(rule_id: str, key: str) -> str:
    """Group keys can be long (several field values): the id is a digest of rule and key."""
    return hashlib.blake2b(f"{rule_id}\0{key}".encode(), digest_size=16).hexdigest()


def _from_doc(src: Mapping[str, Any]) -> GroupState:
    return GroupState(
        last_event=time_or_none(src.get("last_event")),
        suppressed_until=time_or_none(src.get("suppressed_until")),
        alert_id=src.get("alert_id"),
        suppressed=int(src.get("suppressed") or 0),
    )


def _to_doc(rule_id: str, key: str, s: GroupState) -> dict[str, Any]:
    return {
        "rule": {"id": rule_id},
        "key": key,
        "last_event": iso(s.last_event) if s.last_event else None,
        "suppressed_until": iso(s.suppressed_until) if s.suppressed_until else None,
        "alert_id": s.alert_id,
        "suppressed": s.suppressed,
        "updated": iso(datetime.now(UTC)),
    }


class EsState:
    """A SuppressionState on Elasticsearch: realtime `mget` to load, one bulk to flush."""

    def __init__(self, es: Elasticsearch, index: str = SUPPRESSION_INDEX) -> None:
        self.es = es
        self.index = index
        self._pending: dict[tuple[str, str], GroupState] = {}
        self._loaded: dict[tuple[str, str], GroupState] = {}
        self._asked: set[tuple[str, str]] = set()  # keys evaluation asked about

    def load(self, rule_id: str, keys: Sequence[str]) -> dict[str, GroupState]:
        out: dict[str, GroupState] = {}
        self._asked.update((rule_id, k) for k in keys)
        missing = []
        for k in keys:
            s = self._pending.get((rule_id, k))
            if s is not None:
                out[k] = s
            else:
                missing.append(k)
        if missing:
            with backend_errors(self.es):
                resp = self.es.mget(
                    index=self.index,
                    ids=[state_doc_id(rule_id, k) for k in missing],
                    realtime=True,
                )
            for k, doc in zip(missing, resp["docs"], strict=True):
                if doc.get("found"):
                    out[k] = self._loaded[(rule_id, k)] = _from_doc(doc["_source"])
        return out

    def save(self, rule_id: str, states: Mapping[str, GroupState]) -> None:
        for k, s in states.items():
            self._pending[(rule_id, k)] = s

    def found(self, rule_id: str) -> int:
        """Alerts the engine found for `rule_id` before dropping any: it asks about one
        `seen:` key per alert."""
        return sum(1 for r, k in self._asked if r == rule_id and k.startswith("seen:"))

    def newly_suppressed(self, rule_id: str) -> int:
        """Alerts suppression held back among the pending changes of `rule_id`."""
        n = 0
        for (r, k), s in self._pending.items():
            if r != rule_id or not k.startswith("suppress:"):
                continue
            before = self._loaded.get((r, k))
            n += s.suppressed - (before.suppressed if before else 0)
        return n

    def discard(self) -> None:
        self._pending.clear()

    def flush(self) -> int:
        """Write the pending changes; returns how many documents were written."""
        if not self._pending:
            return 0
        actions = [
            {
                "_op_type": "index",
                "_index": self.index,
                "_id": state_doc_id(r, k),
                "_source": _to_doc(r, k, s),
            }
            for (r, k), s in self._pending.items()
        ]
        with backend_errors(self.es):
            ok, _ = helpers.bulk(self.es, actions, raise_on_error=True, refresh=False)
        for key, s in self._pending.items():
            self._loaded[key] = s
        self._pending.clear()
        return int(ok)
