"""The collector's metrics in the Prometheus text format (`GET /metrics`).

One registry per collector (no process-global state). Lag is per agent and file: the bytes
between the end of the last chunk received and the file size the agent reported with it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from pathlib import PureWindowsPath

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "iiswatch_collector"
STALE_SECONDS = 24 * 3600  # a file not heard of for a day leaves the per-file series
RATE_WINDOW = 60.0
# Per-file series are agent-driven: past this many, new files are not given series (their
# bytes are still counted per agent), so /metrics stays small whatever agents send.
MAX_FILE_SERIES = 2000
MAX_LABEL = 128


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.batches = Counter(
            f"{PREFIX}_batches", "Batches answered, by outcome.", ["agent", "outcome"], registry=r
        )
        self.lines = Counter(f"{PREFIX}_lines", "Log lines received.", ["agent"], registry=r)
        self.events = Counter(f"{PREFIX}_events", "Events indexed.", ["agent"], registry=r)
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters", "Lines stored as dead letters.", ["agent"], registry=r
        )
        self.already_present = Counter(
            f"{PREFIX}_already_present",
            "Documents Elasticsearch already held (re-sent batches).",
            ["agent"],
            registry=r,
        )
        self.es_errors = Counter(
            f"{PREFIX}_es_errors",
            "Elasticsearch failures: unavailable (request failed) or rejected (documents).",
            ["kind"],
            registry=r,
        )
        self.overlap_mismatches = Counter(
            f"{PREFIX}_overlap_mismatches",
            "Batches refused (409): bytes for an archived range differ from those archived.",
            ["agent"],
            registry=r,
        )
        self.archive_errors = Counter(
            f"{PREFIX}_archive_errors", "Batches the archive could not store.", registry=r
        )
        self.archived = Counter(
            f"{PREFIX}_archived_bytes", "Bytes newly archived.", ["agent"], registry=r
        )
        self.resent = Counter(
            f"{PREFIX}_resent_bytes",
            "Bytes received that were already archived.",
            ["agent"],
            registry=r,
        )
        self.rate = Gauge(
            f"{PREFIX}_lines_per_second",
            f"Lines received per second over the last {RATE_WINDOW:.0f} s.",
            registry=r,
        )
        labels = ["agent", "host", "file_id", "file"]
        self.offset = Gauge(
            f"{PREFIX}_file_offset_bytes", "End of the last chunk received.", labels, registry=r
        )
        self.size = Gauge(
            f"{PREFIX}_file_size_bytes", "File size the agent last reported.", labels, registry=r
        )
        self.lag = Gauge(
            f"{PREFIX}_file_lag_bytes",
            "Bytes of the file not received yet (reported size minus offset).",
            labels,
            registry=r,
        )
        self.last_batch = Gauge(
            f"{PREFIX}_last_batch_timestamp_seconds",
            "When the agent's last acknowledged batch arrived.",
            ["agent"],
            registry=r,
        )
        self.duration = Histogram(
            f"{PREFIX}_batch_seconds",
            "Time from request to answer.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str, str], float] = {}
        self._window: deque[tuple[float, int]] = deque()

    def file_position(
        self, agent: str, host: str, file_id: str, path: str, end: int, size: int | None
    ) -> None:
        key = (agent, host, file_id, PureWindowsPath(path).name[:MAX_LABEL])
        with self._lock:
            if key not in self._seen and len(self._seen) >= MAX_FILE_SERIES:
                return
            self._seen[key] = time.monotonic()
        self.offset.labels(*key).set(end)
        if size is not None:
            self.size.labels(*key).set(size)
            self.lag.labels(*key).set(max(0, size - end))

    def received_lines(self, agent: str, n: int) -> None:
        self.lines.labels(agent).inc(n)
        now = time.monotonic()
        with self._lock:
            self._window.append((now, n))

    def render(self) -> bytes:
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0][0] < now - RATE_WINDOW:
                self._window.popleft()
            span = min(RATE_WINDOW, now - self._window[0][0]) if self._window else 0.0
            total = sum(n for _, n in self._window)
            stale = [k for k, t in self._seen.items() if now - t > STALE_SECONDS]
            for k in stale:
                del self._seen[k]
        self.rate.set(total / max(span, 1.0) if total else 0.0)
        for k in stale:
            for g in (self.offset, self.size, self.lag):
                with contextlib.suppress(KeyError):
                    g.remove(*k)
        return generate_latest(self.registry)
