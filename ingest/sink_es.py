"""The Elasticsearch sink: bulk-create documents and account for every one of them.

Built on `elasticsearch.helpers.streaming_bulk` (retries on 429 with backoff). Each result
is one of: indexed; already present (409 on `create` — the deterministic id was seen
before); rejected by the mapping (re-routed to the dead-letter index with the reason, so
nothing vanishes); or failed (counted, and the caller turns failures into an error).

Parsing runs in a producer thread so it overlaps with Elasticsearch indexing the previous
chunk: the client releases the GIL while it waits for the response.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import streaming_bulk

from iiswatch.elastic.indices import DEADLETTER_INDEX

Action = dict[str, Any]
_DONE = object()


@dataclass
class IndexCounts:
    indexed: int = 0  # events stored
    dead_lettered: int = 0  # dead letters stored (unparseable lines and mapping rejections)
    already_present: int = 0
    rerouted: int = 0  # of dead_lettered: events the mapping rejected, kept with the reason
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def add_error(self, reason: str) -> None:
        self.failed += 1
        if len(self.errors) < 20 or reason in self.errors:
            self.errors[reason] = self.errors.get(reason, 0) + 1


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reason(info: dict[str, Any]) -> str:
    err = info.get("error")
    if isinstance(err, dict):
        reason = f"{err.get('type')}: {err.get('reason')}"
        cause = err.get("caused_by")
        if isinstance(cause, dict):
            reason += f" ({cause.get('reason')})"
        return reason
    return str(err or f"status {info.get('status')}")


def _is_mapping_rejection(info: dict[str, Any]) -> bool:
    err = info.get("error")
    kind = err.get("type", "") if isinstance(err, dict) else ""
    return info.get("status") == 400 and ("parsing" in kind or "mapper" in kind)


def _dead_letter_for(action: Action, reason: str) -> Action:
    src = action["_source"]
    event = src.get("event", {})
    doc = {
        "@timestamp": event.get("ingested"),
        "event": {
            "original": event.get("original", ""),
            "kind": "pipeline_error",
            "dataset": "iiswatch.deadletter",
            "ingested": event.get("ingested"),
        },
        "error": {"message": f"rejected by Elasticsearch: {reason}", "type": "mapping_error"},
        "log": src.get("log", {}),
        "host": src.get("host", {}),
        "iiswatch": {k: v for k, v in src.get("iiswatch", {}).items() if k != "url"},
    }
    return {"_op_type": "create", "_index": DEADLETTER_INDEX, "_id": action["_id"], "_source": doc}


class BulkSink:
    def __init__(
        self,
        es: Elasticsearch,
        *,
        chunk_size: int = 1000,
        max_retries: int = 8,
        on_result: Callable[[IndexCounts], None] | None = None,
    ) -> None:
        self.es = es
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.on_result = on_result
        self.counts = IndexCounts()

    def write(self, actions: Iterable[Action]) -> IndexCounts:
        rejected = self._bulk(actions, reroute=True)
        if rejected:
            self._bulk(rejected, reroute=False)
        return self.counts

    def write_threaded(self, actions: Iterable[Action], queue_chunks: int = 4) -> IndexCounts:
        """Like write(), with `actions` produced in a background thread."""
        q: queue.Queue[Any] = queue.Queue(maxsize=queue_chunks * self.chunk_size)
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                for a in actions:
                    q.put(a)
            except BaseException as e:  # surfaced in the consumer, not lost in the thread
                failure.append(e)
            finally:
                q.put(_DONE)

        def consume() -> Iterator[Action]:
            while (item := q.get()) is not _DONE:
                yield item

        t = threading.Thread(target=produce, name="iiswatch-parse", daemon=True)
        t.start()
        try:
            self.write(consume())
        finally:
            if t.is_alive():  # the consumer stopped early: unblock and drain the producer
                while t.is_alive():
                    with contextlib.suppress(queue.Empty):
                        q.get(timeout=0.1)
            t.join()
        if failure:
            raise failure[0]
        return self.counts

    def _bulk(self, actions: Iterable[Action], *, reroute: bool) -> list[Action]:
        pending: dict[str, Action] = {}

        def track() -> Iterator[Action]:
            for a in actions:
                pending[a["_id"] + a["_index"]] = a
                yield a

        rejected: list[Action] = []
        for ok, item in streaming_bulk(
            self.es,
            track(),
            chunk_size=self.chunk_size,
            max_retries=self.max_retries,
            initial_backoff=1,
            max_backoff=30,
            raise_on_error=False,
            yield_ok=True,
        ):
            info = next(iter(item.values()))
            action = pending.pop(info.get("_id", "") + info.get("_index", ""), None)
            status = info.get("status")
            if ok:
                if info.get("_index") == DEADLETTER_INDEX:
                    self.counts.dead_lettered += 1
                else:
                    self.counts.indexed += 1
            elif status == 409:
                self.counts.already_present += 1
            elif reroute and action is not None and _is_mapping_rejection(info):
                self.counts.rerouted += 1
                rejected.append(_dead_letter_for(action, _reason(info)))
            else:
                self.counts.add_error(_reason(info))
            if self.on_result is not None:
                self.on_result(self.counts)
        return rejected
