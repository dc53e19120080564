"""One entry point for every IIS log format: `LogParser` takes the raw lines of one file, in
order, and returns an ECS event, a dead letter, or nothing (header/directive lines).

The concrete format is detected from the first meaningful line unless forced, and a W3C file
may switch its `#Fields` layout at any header block. `state()`/`restore()` let a follower
resume mid-file with the layout that was in force at its checkpoint.
"""

from __future__ import annotations

from typing import Any, Protocol

from iiswatch.ingest.model import DeadLetter, Event


class FormatParser(Protocol):
    """What each format module provides (w3c, httperr, iis, ncsa)."""

    format_name: str

    def feed(self, line: bytes, offset: int) -> Event | DeadLetter | None:
        """Parse one line (without its line terminator). Never raises."""
        ...

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state needed to resume parsing after this line."""
        ...

    def restore(self, state: dict[str, Any]) -> None: ...
