"""The values that flow through the ingest pipeline: where a line came from, and what a
parser makes of it (an ECS event document, or a dead letter that keeps the raw line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# An ECS event document: nested dicts, as Elasticsearch stores them ({"source": {"ip": ...}}).
Event = dict[str, Any]

FORMATS = ("w3c", "iis", "ncsa", "httperr")


@dataclass(frozen=True, slots=True)
class Source:
    """Where lines come from; stamped on every event and dead letter.

    `file_id` identifies the file's content independently of its name (a fingerprint of its
    first bytes), so a renamed or re-ingested file yields the same document ids.
    """

    path: str
    host_name: str
    file_id: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A line no parser could turn into an event: kept with the reason, never dropped."""

    raw: bytes
    reason: str
    offset: int
    format: str | None = None

    def to_doc(self, source: Source, ingested: str | None = None) -> Event:
        doc: Event = {
            "event": {
                "original": self.raw.decode("utf-8", errors="replace"),
                "kind": "pipeline_error",
                "dataset": "iiswatch.deadletter",
            },
            "error": {"message": self.reason, "type": "parse_error"},
            "log": {"file": {"path": source.path}, "offset": self.offset},
            "host": {"name": source.host_name},
            "iiswatch": {"file_id": source.file_id},
        }
        if self.format:
            doc["iiswatch"]["format"] = self.format
        if ingested:
            doc["event"]["ingested"] = ingested
            doc["@timestamp"] = ingested
        return doc


@dataclass(slots=True)
class ParseStats:
    lines: int = 0
    events: int = 0
    directives: int = 0
    dead_letters: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class LineError(ValueError):
    """A line's value cannot stand in an event (a bad timestamp, a count that is not a
    number). Parsers turn it into a dead letter with this message as the reason."""
