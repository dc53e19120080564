"""The parsing step of the pipeline: one `LogParser` per file turns its lines, in order, into ECS
events and dead letters, whichever IIS format the file is in.

The format is detected from the first non-blank line unless the caller forces it. W3C access
logs and HTTP.sys error logs share the directive syntax, so a `#Software:` header that names the
other one switches parser at that header block.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from iiswatch.errors import UsageError
from iiswatch.ingest.formats.base import FormatParser
from iiswatch.ingest.formats.detect import detect_format
from iiswatch.ingest.formats.httperr import HttpErrParser
from iiswatch.ingest.formats.iis_native import IisNativeParser
from iiswatch.ingest.formats.ncsa import NcsaParser
from iiswatch.ingest.formats.w3c import W3CParser
from iiswatch.ingest.model import FORMATS, DeadLetter, Event, Source

# each is built as `Parser(source, *, tz=tz)`
_PARSERS: dict[str, type[W3CParser | HttpErrParser | IisNativeParser | NcsaParser]] = {
    "w3c": W3CParser,
    "httperr": HttpErrParser,
    "iis": IisNativeParser,
    "ncsa": NcsaParser,
}
_HTTP_API = b"microsoft http api"


def _software_format(line: bytes) -> str | None:
    """ "httperr" or "w3c" when `line` is a `#Software:` directive naming HTTP.sys or IIS."""
    text = line.lstrip(b"\xef\xbb\xbf\x00")
    if text[:10].lower() != b"#software:":
        return None
    return "httperr" if _HTTP_API in text.lower() else "w3c"


class LogParser:
    """Parses the lines of one file (`FormatParser`, for every format).

    `fmt` forces a format ("w3c", "iis", "ncsa", "httperr"); None detects it from the first
    non-blank line and falls back to W3C. `tz` is the time zone of formats that log local time
    (IIS native, NCSA); W3C logs are UTC and ignore it.
    """

    def __init__(self, source: Source, fmt: str | None = None, *, tz: str | None = None) -> None:
        if fmt is not None and fmt not in FORMATS:
            raise UsageError(
                f"unknown log format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}"
            )
        self._source = source
        self._tz = tz
        self._parser: FormatParser | None = None
        self.format_name: str | None = None
        # a forced format outside the directive family (iis, ncsa) is kept: a W3C
        # `#Software:` header must not override it (w3c and httperr still switch between
        # each other at their headers, as one log folder may hold both)
        self._forced = fmt is not None and fmt not in ("w3c", "httperr")
        if fmt is not None:
            self._switch(fmt)

    def _switch(self, fmt: str) -> None:
        self._parser = _PARSERS[fmt](self._source, tz=self._tz)
        self.format_name = fmt

    def feed(self, line: bytes, offset: int) -> Event | DeadLetter | None:
        """Parse one line (without its terminator). Never raises."""
        parser = self._parser
        if parser is None:
            if not line.strip(b" \t\r\n\x00"):
                return None
            self._switch(detect_format(line) or "w3c")
        elif not self._forced and (line[:1] == b"#" or line[:3] == b"\xef\xbb\xbf"):
            switched = _software_format(line)
            if switched is not None and switched != self.format_name:
                self._switch(switched)
        assert self._parser is not None
        return self._parser.feed(line, offset)

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state to resume after the last line fed."""
        return {
            "format": self.format_name,
            "parser": self._parser.state() if self._parser is not None else None,
        }

    def restore(self, state: dict[str, Any]) -> None:
        fmt = state.get("format")
        if not isinstance(fmt, str) or fmt not in FORMATS:
            self._parser, self.format_name = None, None
            return
        self._switch(fmt)
        inner = state.get("parser")
        if isinstance(inner, dict) and self._parser is not None:
            self._parser.restore(inner)


def parse_lines(
    lines: Iterable[tuple[bytes, int]],
    source: Source,
    fmt: str | None = None,
    tz: str | None = None,
) -> Iterator[Event | DeadLetter]:
    """Events and dead letters for `(line, offset)` pairs of one file, directives skipped."""
    parser = LogParser(source, fmt, tz=tz)
    for line, offset in lines:
        result = parser.feed(line, offset)
        if result is not None:
            yield result
