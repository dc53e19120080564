"""Parse HTTP.sys error logs (HTTPERR*.log): W3C-style lines whose columns come from the
latest `#Fields` directive, or, for headerless lines, from the layout their width implies."""

from __future__ import annotations

from typing import Any

from iiswatch.ingest.ecs_error import build_error_event
from iiswatch.ingest.formats.base import LineParser
from iiswatch.ingest.model import DeadLetter, Event, Source

FORMAT = "httperr"

_BASE = ("date", "time", "c-ip", "c-port", "s-ip", "s-port", "cs-version", "cs-method", "cs-uri")
_TAIL = ("sc-status", "s-siteid", "s-reason", "s-queuename")

# The layouts HTTP.sys has written, keyed by column count, for lines seen without a header:
# the classic one, Windows 10 / Server 2016 (HTTP/2 stream id), and Server 2022 (QUIC era).
KNOWN_LAYOUTS: dict[int, tuple[str, ...]] = {
    13: (*_BASE, *_TAIL),
    14: (*_BASE, "streamid", *_TAIL),
    16: (*_BASE, "streamid", "streamid_ex", *_TAIL, "transport"),
}
_REQUIRED = ("date", "time")


class HttpErrParser(LineParser):
    """FormatParser for HTTPERR files. Times are UTC in this format, so `tz` is not used."""

    format_name = FORMAT

    def __init__(self, source: Source, *, tz: str | None = None) -> None:
        self.source = source
        self._fields: tuple[str, ...] | None = None

    def parse(self, raw: bytes, text: str, offset: int) -> Event | DeadLetter | None:
        if text.startswith("#"):
            return self._directive(raw, text, offset)
        tokens = text.split()
        fields = self._fields
        if fields is None:
            fields = KNOWN_LAYOUTS.get(len(tokens))
            if fields is None:
                widths = "/".join(str(n) for n in KNOWN_LAYOUTS)
                return self.dead(
                    raw,
                    offset,
                    f"no #Fields header and {len(tokens)} columns match no known HTTPERR "
                    f"layout ({widths} columns)",
                )
        elif len(tokens) != len(fields):
            return self.dead(
                raw, offset, f"#Fields names {len(fields)} columns but the line has {len(tokens)}"
            )
        values = dict(zip(fields, tokens, strict=True))
        return build_error_event(values, raw=raw, offset=offset, source=self.source)

    def _directive(self, raw: bytes, text: str, offset: int) -> DeadLetter | None:
        name, _, rest = text[1:].partition(":")
        if name.strip().lower() == "fields":
            fields = tuple(rest.split())
            missing = [f for f in _REQUIRED if f not in fields]
            if missing or len(set(fields)) != len(fields):
                self._fields = None
                why = f"lacks {', '.join(missing)}" if missing else "repeats a field"
                return self.dead(raw, offset, f"#Fields directive {why}")
            self._fields = fields
        return None

    def state(self) -> dict[str, Any]:
        return {"fields": list(self._fields) if self._fields is not None else None}

    def restore(self, state: dict[str, Any]) -> None:
        fields = state.get("fields")
        self._fields = tuple(str(f) for f in fields) if isinstance(fields, list) else None
