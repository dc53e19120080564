"""The Elasticsearch sink: bulk-create documents and account for every one of them.

Built on `elasticsearch.helpers.parallel_bulk` with two requests in flight, so the node
indexes one chunk while the next is serialised (with `streaming_bulk`'s single request it
sat idle in between: bench/bench_ingest.py measured 0.43 of raw `_bulk` that way), plus a
bounded retry round for documents refused with 429. Each result is one of: indexed; already
present (409 on `create` — the deterministic id was seen before); rejected by the mapping
(re-routed to the dead-letter index with the reason, so nothing vanishes); or failed
(counted, and the caller reports it).

Parsing runs in a producer thread too: the client releases the GIL while it waits.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import parallel_bulk

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


@contextlib.contextmanager
def fewer_gc_pauses() -> Iterator[None]:
    """Bulk indexing keeps thousands of documents alive at once (queued, in flight), and
    each of CPython's frequent young-generation collections walks them again: measured
    ~35% of ingest throughput. The documents are plain trees with no reference cycles, so
    collecting rarely loses nothing; the old thresholds come back afterwards."""
    old = gc.get_threshold()
    gc.freeze()  # what exists already (modules, caches) is never scanned again
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


class BulkSink:
    def __init__(
        self,
        es: Elasticsearch,
        *,
        chunk_size: int = 1000,
        max_retries: int = 8,
        in_flight: int = 2,
        on_result: Callable[[IndexCounts], None] | None = None,
    ) -> None:
        self.es = es
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.in_flight = in_flight
        self.on_result = on_result
        self.counts = IndexCounts()

    def write(self, actions: Iterable[Action]) -> IndexCounts:
        retry, rejected = self._bulk(actions, reroute=True)
        # 429: Elasticsearch is busy. Send those again after a pause, a bounded number of
        # times; what is still refused after that is counted as failed, never dropped.
        for attempt in range(self.max_retries):
            if not retry:
                break
            time.sleep(min(30.0, 2.0**attempt))
            retry, more = self._bulk(retry, reroute=True)
            rejected += more
        for _ in retry:
            self.counts.add_error("es_rejected_execution_exception: still busy after retries")
        if rejected:
            self._bulk(rejected, reroute=False)
        return self.counts

    def write_threaded(self, actions: Iterable[Action], queue_chunks: int = 4) -> IndexCounts:
        """Like write(), with `actions` produced in a background thread.

        Actions cross between the threads in lists of `handoff`: one queue operation per
        action costs a GIL hand-over each, which made the queue itself the bottleneck."""
        q: queue.Queue[Any] = queue.Queue(maxsize=queue_chunks)
        failure: list[BaseException] = []
        handoff = max(1, self.chunk_size // 2)

        def produce() -> None:
            try:
                batch: list[Action] = []
                for a in actions:
                    batch.append(a)
                    if len(batch) >= handoff:
                        q.put(batch)
                        batch = []
                if batch:
                    q.put(batch)
            except BaseException as e:  # surfaced in the consumer, not lost in the thread
                failure.append(e)
            finally:
                q.put(_DONE)

        def consume() -> Iterator[Action]:
            while (batch := q.get()) is not _DONE:
                yield from batch

        t = threading.Thread(target=produce, name="iiswatch-parse", daemon=True)
        t.start()
        try:
            with fewer_gc_pauses():
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

    def _bulk(
        self, actions: Iterable[Action], *, reroute: bool
    ) -> tuple[list[Action], list[Action]]:
        """One pass over `actions`; returns (busy: send again, rejected: dead-letter)."""
        pending: dict[str, Action] = {}

        def track() -> Iterator[Action]:
            for a in actions:
                pending[a["_id"] + a["_index"]] = a
                yield a

        retry: list[Action] = []
        rejected: list[Action] = []
        # Two requests in flight: Elasticsearch indexes one chunk while the next is being
        # serialised, instead of idling between requests as with one (streaming_bulk).
        for ok, item in parallel_bulk(
            self.es,
            track(),
            thread_count=self.in_flight,
            queue_size=self.in_flight,
            chunk_size=self.chunk_size,
            raise_on_error=False,
            raise_on_exception=True,
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
            elif status == 429 and action is not None:
                retry.append(action)
            elif reroute and action is not None and _is_mapping_rejection(info):
                self.counts.rerouted += 1
                rejected.append(_dead_letter_for(action, _reason(info)))
            else:
                self.counts.add_error(_reason(info))
            if self.on_result is not None:
                self.on_result(self.counts)
        return retry, rejected
