"""The W3C extended log format as IIS writes it: `#` directives, then space-separated values in
the order the latest `#Fields` directive names.

IIS starts a new header block whenever the log restarts or its field set is changed, so the
layout is read again at every `#Fields`. Lines seen before any `#Fields` (a file cut from the
middle, or samples pasted without headers) are matched against the default layouts Elastic's
IIS pipeline recognises; a line that fits nothing becomes a dead letter with the reason.
"""

from __future__ import annotations

import re
from typing import Any, Final

from iiswatch.ingest.ecs_access import KNOWN_FIELDS, build_from_text
from iiswatch.ingest.formats.base import LineParser
from iiswatch.ingest.model import DeadLetter, Event, Source

# Field names as IIS spells them, keyed by lower case: `#Fields` names are case-insensitive.
_CANONICAL: Final = {name.lower(): name for name in KNOWN_FIELDS}
_CANONICAL["cs(x-forwarded-for)"] = "X-Forwarded-For"
_CANONICAL["x-forwarded-for"] = "X-Forwarded-For"

_XFF = "X-Forwarded-For"


def canonical_fields(names: list[str]) -> tuple[str, ...]:
    """`#Fields` names with the known ones in IIS's spelling; custom fields kept as written."""
    return tuple(_CANONICAL.get(n.lower(), n) for n in names)


# -- default layouts, for lines with no #Fields in force ------------------------------------
# In the order Elastic's grok patterns try them, so an ambiguous line reads the same way; each
# may carry one trailing X-Forwarded-For value (IIS 8.5+ custom field), as in Elastic's.
_HEAD = "date time"
_REQ = "cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip"
_TAIL = "sc-status sc-substatus sc-win32-status"
_LAYOUTS: Final = [
    f"{_HEAD} s-ip {_REQ} cs(User-Agent) cs(Referer) {_TAIL} time-taken",  # IIS default
    f"{_HEAD} s-sitename {_REQ} cs(User-Agent) cs(Cookie) cs(Referer) cs-host {_TAIL}"
    " sc-bytes cs-bytes time-taken",
    f"{_HEAD} s-sitename s-ip {_REQ} cs-version cs(User-Agent) cs(Cookie) cs(Referer) {_TAIL}"
    " sc-bytes cs-bytes time-taken",
    f"{_HEAD} s-sitename s-computername s-ip {_REQ} cs-version cs(User-Agent) cs(Cookie)"
    f" cs(Referer) cs-host {_TAIL} sc-bytes cs-bytes time-taken",  # every standard field
    f"{_HEAD} s-ip {_REQ} cs(User-Agent) {_TAIL} time-taken",  # IIS 7.5 default
    f"{_HEAD} s-ip {_REQ} cs(User-Agent) cs(Cookie) cs(Referer) {_TAIL} time-taken",
    f"{_HEAD} s-computername s-ip {_REQ} cs(User-Agent) cs(Referer) {_TAIL} time-taken",
    f"{_HEAD} s-sitename s-computername s-ip {_REQ} cs(User-Agent) cs(Referer) cs-host {_TAIL}"
    " time-taken",
    f"{_HEAD} s-ip {_REQ} cs(User-Agent) cs(Referer) {_TAIL} sc-bytes cs-bytes time-taken",
    f"{_HEAD} s-ip {_REQ} cs(User-Agent) cs(Cookie) cs(Referer) {_TAIL} sc-bytes cs-bytes"
    " time-taken",
]
# IIS FTP service default layout (no X-Forwarded-For there).
_FTP_LAYOUT: Final = (
    f"{_HEAD} c-ip cs-username s-ip s-port cs-method cs-uri-stem sc-status sc-win32-status"
    " sc-substatus x-session x-fullpath"
)

_ADDR = r"(?:[\w.:%-]+|\[[\w.:%-]+\]\(https?://[\w.:%-]+/?\))"
_NUM = r"(?:\d+|-)"
_SHAPES: Final = {
    "date": r"\d{4}-\d\d-\d\d",
    "time": r"\d\d:\d\d:\d\d(?:\.\d+)?",
    "s-ip": _ADDR,
    "c-ip": _ADDR,
    "cs-method": r"(?:[A-Za-z][\w-]*|-)",
    "s-port": _NUM,
    "sc-status": _NUM,
    "sc-substatus": _NUM,
    "sc-win32-status": _NUM,
    "sc-bytes": _NUM,
    "cs-bytes": _NUM,
    "time-taken": _NUM,
    "cs-version": r"(?:HTTP/[\d.]+|-)",
    _XFF: r"(?:-|[0-9A-Fa-f.:%\[\]]+(?:,[^ ]*)?)",
}


def _compile(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(" ".join(_SHAPES.get(n, r"[^ ]+") for n in names))


def _build_layouts() -> dict[int, list[tuple[tuple[str, ...], re.Pattern[str]]]]:
    by_count: dict[int, list[tuple[tuple[str, ...], re.Pattern[str]]]] = {}
    for text in _LAYOUTS:
        base = tuple(text.split())
        for names in (base, (*base, _XFF)):
            by_count.setdefault(len(names), []).append((names, _compile(names)))
    ftp = tuple(_FTP_LAYOUT.split())
    by_count.setdefault(len(ftp), []).append((ftp, _compile(ftp)))
    return by_count


_BY_COUNT: Final = _build_layouts()
_MIN_COUNT: Final = min(_BY_COUNT)
_TRAILING = "trailing"


def match_default_layout(tokens: list[str]) -> dict[str, str] | None:
    """Field values for a header-less line, by the first default layout its tokens fit.

    A line longer than every layout that fits it keeps its extra tokens, space-joined, in the
    custom field `trailing` (Elastic's patterns ignore them; we keep them).
    """
    line = " ".join(tokens)
    for names, pattern in _BY_COUNT.get(len(tokens), ()):
        if pattern.fullmatch(line):
            return dict(zip(names, tokens, strict=True))
    for count in sorted(_BY_COUNT, reverse=True):
        if count >= len(tokens):
            continue
        head = " ".join(tokens[:count])
        for names, pattern in _BY_COUNT[count]:
            if pattern.fullmatch(head):
                values = dict(zip(names, tokens, strict=False))
                values[_TRAILING] = " ".join(tokens[count:])
                return values
    return None


class W3CParser(LineParser):
    """Streaming parser for one W3C extended log file (`FormatParser`).

    `tz` is accepted for a uniform constructor and ignored: W3C times are UTC by definition.
    """

    format_name = "w3c"

    def __init__(self, source: Source, *, tz: str | None = None) -> None:
        self._source = source
        self._fields: tuple[str, ...] | None = None
        self._custom: tuple[str, ...] = ()
        self.software: str | None = None

    @property
    def fields(self) -> tuple[str, ...] | None:
        """The layout of the `#Fields` directive in force, or None before the first one."""
        return self._fields

    def state(self) -> dict[str, Any]:
        return {
            "fields": list(self._fields) if self._fields is not None else None,
            "software": self.software,
        }

    def restore(self, state: dict[str, Any]) -> None:
        fields = state.get("fields")
        if isinstance(fields, list) and fields and all(isinstance(f, str) for f in fields):
            self._set_fields(canonical_fields(fields))
        else:
            self._set_fields(None)
        software = state.get("software")
        self.software = software if isinstance(software, str) else None

    def parse(self, raw: bytes, text: str, offset: int) -> Event | DeadLetter | None:
        if text[0] == "#":
            self._directive(text)
            return None
        tokens = text.split(" ")
        fields = self._fields
        values: dict[str, str] | None
        custom: tuple[str, ...] | None = self._custom
        if fields is not None and len(tokens) == len(fields):
            values = dict(zip(fields, tokens, strict=True))
        else:
            values, custom = self._fallback(tokens, text), None
            if values is None:
                return self.dead(raw, offset, self._mismatch(tokens))
        return build_from_text(
            values, text=text, offset=offset, source=self._source, fmt="w3c", custom=custom
        )

    def _fallback(self, tokens: list[str], text: str) -> dict[str, str] | None:
        fields = self._fields
        if fields is not None:
            loose = text.split()  # tabs or doubled spaces from a hand-edited file
            if len(loose) == len(fields):
                return dict(zip(fields, loose, strict=True))
        # A header-less line, or a line of another layout after a restart whose header
        # block was lost (Elastic's own samples have both).
        if len(tokens) >= _MIN_COUNT:
            return match_default_layout(tokens)
        return None

    def _mismatch(self, tokens: list[str]) -> str:
        if self._fields is not None:
            return f"expected {len(self._fields)} fields per #Fields, got {len(tokens)}"
        return (
            f"no #Fields directive yet and no known IIS default layout has {len(tokens)} "
            "fields of these shapes"
        )

    def _set_fields(self, fields: tuple[str, ...] | None) -> None:
        self._fields = fields
        self._custom = tuple(n for n in fields or () if n not in KNOWN_FIELDS)

    def _directive(self, text: str) -> None:
        name, _, value = text[1:].partition(":")
        key = name.strip().lower()
        if key == "fields":
            names = value.split()
            self._set_fields(canonical_fields(names) if names else None)
        elif key == "software":
            self.software = value.strip()
