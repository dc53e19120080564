"""What a format parser is: it takes the raw lines of one file, in order, and returns an ECS
event, a dead letter, or nothing (header/directive lines). `state()`/`restore()` let a
follower resume mid-file with the layout in force at its checkpoint. `LogParser`
(iiswatch.ingest.parse) picks the format and delegates to one of these.
"""

from __future__ import annotations

from typing import Any, Protocol

from iiswatch.ingest.model import DeadLetter, Event, LineError


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


class LineParser:
    """What every format shares: decode the line, skip blank ones, and turn any failure into
    a dead letter, so one bad line never stops a file (the FormatParser contract)."""

    format_name: str = ""

    def feed(self, line: bytes, offset: int) -> Event | DeadLetter | None:
        try:
            text = line.decode("utf-8", errors="replace")
            if text[-1:] in ("\n", "\r"):
                text = text.rstrip("\r\n")
            if text[:1] in ("\ufeff", "\x00"):
                # a BOM on a first line; NUL runs where IIS preallocated a file and crashed
                text = text.lstrip("\ufeff\x00")
            if not text or text.isspace():
                return None
            return self.parse(line, text, offset)
        except LineError as exc:
            return self.dead(line, offset, str(exc))
        except Exception as exc:  # a parser bug must not cost the line: keep it, say why
            return self.dead(line, offset, f"internal parser error: {type(exc).__name__}: {exc}")

    def parse(self, raw: bytes, text: str, offset: int) -> Event | DeadLetter | None:
        """Parse one decoded, non-blank line; may raise LineError."""
        raise NotImplementedError

    def dead(self, raw: bytes, offset: int, reason: str) -> DeadLetter:
        return DeadLetter(raw=raw, reason=reason, offset=offset, format=self.format_name)

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        return None
