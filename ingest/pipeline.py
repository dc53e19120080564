"""The ingest pipeline in the order data flows: file → lines → parse/enrich → index actions.

Every line becomes exactly one document (an event or a dead letter) except header lines,
with an `_id` derived from (shipping host, file identity, byte offset): re-reading a file,
after a crash or on purpose, produces the same ids and so adds nothing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from iiswatch.elastic.indices import index_for
from iiswatch.ingest.encoding import decoded
from iiswatch.ingest.files import file_identity, iter_lines, open_log
from iiswatch.ingest.model import DeadLetter, Event, ParseStats, Source
from iiswatch.ingest.parse import LogParser

Action = dict[str, Any]


def doc_id(host_name: str, file_id: str, offset: int) -> str:
    digest = hashlib.blake2b(f"{host_name}\0{file_id}\0{offset}".encode(), digest_size=15)
    return base64.urlsafe_b64encode(digest.digest()).decode()


def source_for(path: Path, host_name: str) -> Source:
    return Source(path=str(path), host_name=host_name, file_id=file_identity(path))


def parse_file(
    path: Path,
    *,
    host_name: str,
    fmt: str | None = None,
    tz: str | None = None,
    stats: ParseStats | None = None,
    on_bytes: Callable[[int], None] | None = None,
    encoding: str | None = None,
) -> Iterator[tuple[Source, int, Event | DeadLetter]]:
    """Parse one file: yields (source, offset, event or dead letter); header lines yield
    nothing. `on_bytes` is told how many bytes each line consumed (for progress bars).
    `encoding` None detects UTF-16 (see encoding.py) and reads anything else as bytes."""
    source = source_for(path, host_name)
    with open_log(path) as fh:
        yield from parse_stream(
            fh, source, fmt=fmt, tz=tz, stats=stats, on_bytes=on_bytes, encoding=encoding
        )


def parse_stream(
    raw: BinaryIO,
    source: Source,
    *,
    fmt: str | None = None,
    tz: str | None = None,
    stats: ParseStats | None = None,
    on_bytes: Callable[[int], None] | None = None,
    encoding: str | None = None,
) -> Iterator[tuple[Source, int, Event | DeadLetter]]:
    """`parse_file` for an open binary stream (a file, or standard input for `parse -`)."""
    parser = LogParser(source, fmt, tz=tz)
    stats = stats if stats is not None else ParseStats()
    with decoded(raw, encoding) as fh:
        for line, offset in iter_lines(fh):
            stats.lines += 1
            if on_bytes is not None:
                on_bytes(len(line) + 1)
            out = parser.feed(line, offset)
            if out is None:
                stats.directives += 1
                continue
            if isinstance(out, DeadLetter):
                stats.dead_letters += 1
                stats.reasons[out.reason] = stats.reasons.get(out.reason, 0) + 1
            else:
                stats.events += 1
            yield source, offset, out


def to_action(source: Source, offset: int, out: Event | DeadLetter, ingested: str) -> Action:
    """An index action with op_type `create`: an existing id is reported, never overwritten."""
    if isinstance(out, DeadLetter):
        doc = out.to_doc(source, ingested)  # dead letters are dated by their arrival
    else:
        doc = out
        doc.setdefault("event", {})["ingested"] = ingested
    return {
        "_op_type": "create",
        "_index": index_for(doc),
        "_id": doc_id(source.host_name, source.file_id, offset),
        "_source": doc,
    }
