"""One-shot ingest of finished files (`iiswatch ingest`): parse every line of every file
and bulk-index the results, reporting what happened to each line."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.ingest.model import ParseStats
from iiswatch.ingest.pipeline import Action, parse_file, to_action
from iiswatch.ingest.sink_es import BulkSink, IndexCounts
from iiswatch.times import now_iso


@dataclass
class IngestSummary:
    files: int = 0
    lines: int = 0
    events: int = 0
    indexed: int = 0
    already_present: int = 0
    dead_lettered: int = 0
    failed: int = 0
    seconds: float = 0.0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d["lines_per_second"] = round(self.lines_per_second, 1)
        return d


def ingest_files(
    es: Elasticsearch,
    files: list[Path],
    *,
    host_name: str | Mapping[Path, str],
    fmt: str | None = None,
    tz: str | None = None,
    encoding: str | None = None,
    chunk_size: int = 1000,
    on_bytes: Callable[[int], None] | None = None,
    on_result: Callable[[IndexCounts], None] | None = None,
) -> IngestSummary:
    """Index every line of `files`. Documents that could not be stored even after retries
    are counted in `failed` (the caller reports them); running the same ingest again is
    safe, since ids make it idempotent. `host_name` is the host of every file, or each
    file's own (see host_path.py)."""
    started = time.perf_counter()
    stats = ParseStats()

    def actions() -> Iterator[Action]:
        for path in files:
            host = host_name if isinstance(host_name, str) else host_name[path]
            for source, offset, out in parse_file(
                path,
                host_name=host,
                fmt=fmt,
                tz=tz,
                stats=stats,
                on_bytes=on_bytes,
                encoding=encoding,
            ):
                yield to_action(source, offset, out, now_iso())

    sink = BulkSink(es, chunk_size=chunk_size, on_result=on_result)
    counts = sink.write_threaded(actions())
    summary = IngestSummary(
        files=len(files),
        lines=stats.lines,
        events=stats.events,
        indexed=counts.indexed,
        already_present=counts.already_present,
        dead_lettered=counts.dead_lettered,
        failed=counts.failed,
        seconds=time.perf_counter() - started,
        dead_letter_reasons=dict(stats.reasons),
        errors=dict(counts.errors),
    )
    return summary
