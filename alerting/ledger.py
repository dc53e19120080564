"""The window ledger (`iiswatch-state-windows`): which ingest-time windows of each rule have
been evaluated, and which were given up as a gap. Kept in Elasticsearch, so a restarted
service, or the standby taking over, continues exactly where the last one stopped.

Two kinds of documents:
- one per evaluated window or reported gap, id `<rule id>:<window start>` (`:gap:` for a
  gap), created with `op_type=create` once the window's alerts are in the outbox: a second
  attempt to record the same window is a conflict, never a second record;
- one cursor per rule, id `cursor:<rule id>`: where the next window starts. Read with a
  realtime GET, so it needs no refresh.

If the process dies after recording a window but before moving the cursor, the next run
finds the window already recorded and only moves the cursor.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError

from iiswatch.alerting.windows import Window
from iiswatch.elastic.client import backend_errors
from iiswatch.times import iso, time_or_none

WINDOWS_INDEX = "iiswatch-state-windows"


def window_doc_id(rule_id: str, w: Window, *, gap: bool = False) -> str:
    return f"{rule_id}:{'gap:' if gap else ''}{iso(w.start)}"


def cursor_doc_id(rule_id: str) -> str:
    return f"cursor:{rule_id}"


class Ledger:
    def __init__(self, es: Elasticsearch, index: str = WINDOWS_INDEX) -> None:
        self.es = es
        self.index = index

    def cursor(self, rule_id: str) -> datetime | None:
        """The end of the rule's last recorded window (None: never evaluated)."""
        with backend_errors(self.es):
            try:
                doc = self.es.get(index=self.index, id=cursor_doc_id(rule_id), realtime=True)
            except NotFoundError:
                return None
        return time_or_none(doc["_source"].get("end"))

    def cursors(self, rule_ids: Iterable[str]) -> dict[str, datetime]:
        ids = list(rule_ids)
        if not ids:
            return {}
        with backend_errors(self.es):
            resp = self.es.mget(index=self.index, ids=[cursor_doc_id(r) for r in ids])
        out = {}
        for r, doc in zip(ids, resp["docs"], strict=True):
            if doc.get("found") and (t := time_or_none(doc["_source"].get("end"))) is not None:
                out[r] = t
        return out

    def recorded(self, rule_id: str, w: Window, *, gap: bool = False) -> bool:
        with backend_errors(self.es):
            return bool(self.es.exists(index=self.index, id=window_doc_id(rule_id, w, gap=gap)))

    def record(
        self, rule_id: str, w: Window, outcome: dict[str, Any], *, gap: bool = False
    ) -> bool:
        """Record the window (or gap) once, then move the cursor to its end. Returns False if
        it had been recorded already (by a previous life of this process or another one)."""
        doc = {
            "kind": "gap" if gap else "window",
            "rule": {"id": rule_id},
            "window": {"start": iso(w.start), "end": iso(w.end), "time_field": "event.ingested"},
            "recorded": iso(datetime.now(UTC)),
            **outcome,
        }
        created = True
        with backend_errors(self.es):
            try:
                self.es.create(
                    index=self.index, id=window_doc_id(rule_id, w, gap=gap), document=doc
                )
            except ConflictError:
                created = False
            self.advance(rule_id, w.end)
        return created

    def advance(self, rule_id: str, end: datetime) -> None:
        """Move the cursor forward (never back: a slower process cannot rewind it)."""
        with backend_errors(self.es):
            try:
                cur = self.es.get(index=self.index, id=cursor_doc_id(rule_id), realtime=True)
            except NotFoundError:
                cur = None
            doc = {"kind": "cursor", "rule": {"id": rule_id}, "end": iso(end)}
            if cur is None:
                try:
                    self.es.create(index=self.index, id=cursor_doc_id(rule_id), document=doc)
                except ConflictError:
                    self.advance(rule_id, end)
                return
            old = time_or_none(cur["_source"].get("end"))
            if old is not None and old >= end:
                return
            try:
                self.es.index(
                    index=self.index,
                    id=cursor_doc_id(rule_id),
                    document=doc,
                    if_seq_no=cur["_seq_no"],
                    if_primary_term=cur["_primary_term"],
                )
            except ConflictError:
                self.advance(rule_id, end)  # someone moved it meanwhile: look again

    def recent(self, rule_id: str, size: int = 20) -> list[dict[str, Any]]:
        """The rule's latest recorded windows and gaps, newest first (searchable after the
        index refresh)."""
        with backend_errors(self.es):
            resp = self.es.search(
                index=self.index,
                query={
                    "bool": {
                        "filter": [
                            {"term": {"rule.id": rule_id}},
                            {"terms": {"kind": ["window", "gap"]}},
                        ]
                    }
                },
                sort=[{"window.start": "desc"}],
                size=size,
                ignore_unavailable=True,
            )
        return [h["_source"] for h in resp["hits"]["hits"]]
