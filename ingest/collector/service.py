"""What the collector does with a valid batch, in order: archive the raw bytes durably, parse
them (the chunk's `parser_state` restored, each line at its absolute offset), index the
events and dead letters, and only then report success.

Elasticsearch down or refusing documents raises `Unavailable`: the caller answers 503 and the
agent sends the same batch again later. That is safe because the archive skips what it holds
and documents have deterministic ids (409 on `create` counts as accepted). There is no queue
in the collector: the agent's log files are the buffer until the acknowledgement.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

from iiswatch.ingest.archive.layout import ArchiveError
from iiswatch.ingest.archive.writer import ArchiveWriter, Chunk, OverlapMismatch
from iiswatch.ingest.collector.integrity import IntegrityLog, WitnessFailed
from iiswatch.ingest.collector.metrics import Metrics
from iiswatch.ingest.collector.protocol import Batch, BatchError
from iiswatch.ingest.collector.tokens import AgentIdentity
from iiswatch.ingest.files import iter_lines
from iiswatch.ingest.model import DeadLetter, Source
from iiswatch.ingest.parse import LogParser
from iiswatch.ingest.pipeline import Action, to_action
from iiswatch.ingest.sink_es import BulkSink
from iiswatch.times import now_iso

log = logging.getLogger(__name__)

__all__ = ["MAX_LINE_BYTES", "BatchResult", "Collector", "OverlapMismatch", "Unavailable"]

# A longer line is not parsed: it is archived raw like every byte, and indexed as a dead letter
# whose event.original holds its first ORIGINAL_KEPT bytes. IIS refuses request lines past
# 16 KiB by default, so a real access-log line never comes near this.
MAX_LINE_BYTES = 256 << 10
ORIGINAL_KEPT = 8 << 10


class Unavailable(Exception):
    """The batch could not be stored now (503): Elasticsearch or the archive failed."""

    def __init__(self, reason: str, *, where: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where  # "elasticsearch" or "archive"


@dataclass
class BatchResult:
    chunks: int = 0
    lines: int = 0
    events: int = 0
    dead_letters: int = 0
    indexed: int = 0
    already_present: int = 0
    archived_bytes: int = 0
    resent_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Collector:
    def __init__(
        self,
        archive: ArchiveWriter,
        es: Elasticsearch,
        metrics: Metrics,
        *,
        bulk_chunk_size: int = 1000,
        integrity: IntegrityLog | None = None,
    ) -> None:
        self.archive = archive
        self.es = es
        self.metrics = metrics
        self.bulk_chunk_size = bulk_chunk_size
        self.integrity = integrity or IntegrityLog(es, archive.key.key_id)

    def _parsers(self, batch: Batch) -> list[tuple[Source, LogParser]]:
        """One parser per chunk, in the state the agent had at the chunk's offset. Built
        before anything is stored, so a bad `parser_state` is a 400 with nothing kept."""
        host = batch.model.host
        parsers = []
        for i, c in enumerate(batch.model.chunks):
            source = Source(path=c.path, host_name=host, file_id=c.file_id)
            parser = LogParser(source, c.format)
            state = c.parser_state
            if state and state.get("format") is not None:
                try:
                    parser.restore(state)
                except Exception as e:  # attacker-controlled dict: any failure is a 400
                    raise BatchError(f"chunks[{i}].parser_state: cannot restore it ({e})") from e
            parsers.append((source, parser))
        return parsers

    def _actions(
        self,
        batch: Batch,
        parsers: list[tuple[Source, LogParser]],
        result: BatchResult,
        identity: AgentIdentity,
    ) -> Iterator[Action]:
        ingested = now_iso()
        sender = {"name": identity.name, "id": identity.id}  # ECS agent.*: who sent it
        for c, data, (source, parser) in zip(batch.model.chunks, batch.data, parsers, strict=True):
            for line, rel in iter_lines(io.BytesIO(data)):
                result.lines += 1
                offset = c.offset + rel
                out: Any
                if len(line) > MAX_LINE_BYTES:
                    out = DeadLetter(
                        line[:ORIGINAL_KEPT],
                        f"line of {len(line)} bytes is longer than {MAX_LINE_BYTES}: archived "
                        f"raw, not parsed; event.original holds its first {ORIGINAL_KEPT} bytes "
                        "(`iiswatch archive export` gives all of it)",
                        offset,
                    )
                else:
                    out = parser.feed(line, offset)
                if out is None:
                    continue
                if isinstance(out, DeadLetter):
                    result.dead_letters += 1
                else:
                    result.events += 1
                action = to_action(source, offset, out, ingested)
                action["_source"]["agent"] = sender
                yield action

    def ingest(self, identity: AgentIdentity, batch: Batch) -> BatchResult:
        """Archive, parse and index `batch`; return when all of it is stored."""
        m = batch.model
        agent = identity.name
        parsers = self._parsers(batch)
        result = BatchResult(chunks=len(m.chunks))
        chunks = [
            Chunk(m.host, c.site, c.file_id, c.path, c.offset, data, agent, m.batch_id)
            for c, data in zip(m.chunks, batch.data, strict=True)
        ]
        try:
            stored = self.archive.append(chunks)
        except OverlapMismatch as e:
            # rewritten logs, or a forger racing the real agent: refuse, count, raise an alert
            self.metrics.overlap_mismatches.labels(agent).inc()
            log.error("archive: batch %s of %s refused: %s", m.batch_id, agent, e)
            self.integrity.alert_overlap(identity, m.batch_id, e)
            raise
        except (ArchiveError, OSError) as e:
            self.metrics.archive_errors.inc()
            log.error("archive: cannot store batch %s of %s: %s", m.batch_id, agent, e)
            raise Unavailable(f"the archive could not store the batch: {e}", where="archive") from e
        result.archived_bytes, result.resent_bytes = stored.archived, stored.skipped
        try:
            self.integrity.witness(stored.heads)
        except (WitnessFailed, ApiError, TransportError) as e:
            self.metrics.es_errors.labels("unavailable").inc()
            log.warning("elasticsearch: batch %s of %s not witnessed: %s", m.batch_id, agent, e)
            raise Unavailable(f"Elasticsearch is unavailable: {e}", where="elasticsearch") from e
        self.metrics.archived.labels(agent).inc(stored.archived)
        self.metrics.resent.labels(agent).inc(stored.skipped)

        sink = BulkSink(self.es, chunk_size=self.bulk_chunk_size)
        try:
            # parsing overlaps with Elasticsearch indexing the previous bulk request
            counts = sink.write_threaded(self._actions(batch, parsers, result, identity))
        except (ApiError, TransportError) as e:
            self.metrics.es_errors.labels("unavailable").inc()
            log.warning("elasticsearch: batch %s of %s not indexed: %s", m.batch_id, agent, e)
            raise Unavailable(f"Elasticsearch is unavailable: {e}", where="elasticsearch") from e
        if counts.failed:
            self.metrics.es_errors.labels("rejected").inc(counts.failed)
            reason = next(iter(counts.errors), "unknown")
            log.warning(
                "elasticsearch: %d documents of batch %s refused: %s",
                counts.failed,
                m.batch_id,
                reason,
            )
            raise Unavailable(
                f"Elasticsearch refused {counts.failed} documents: {reason}", where="elasticsearch"
            )
        result.indexed = counts.indexed + counts.dead_lettered
        result.already_present = counts.already_present

        self.metrics.received_lines(agent, result.lines)
        self.metrics.events.labels(agent).inc(counts.indexed)
        self.metrics.dead_letters.labels(agent).inc(counts.dead_lettered)
        self.metrics.already_present.labels(agent).inc(counts.already_present)
        for c, data in zip(m.chunks, batch.data, strict=True):
            self.metrics.file_position(
                agent, m.host, c.file_id, c.path, c.offset + len(data), c.size
            )
        return result
