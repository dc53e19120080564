"""Parse NCSA Common log format lines as IIS writes them
(`host - user [10/Oct/2000:13:55:36 -0700] "GET /x?y HTTP/1.0" 200 2326`), and the Combined
variant with a quoted referrer and user agent after them. The offset in the line gives UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from iiswatch.ingest.ecs_access import AccessFieldError, build_access_event
from iiswatch.ingest.formats.base import LineParser
from iiswatch.ingest.model import DeadLetter, Event, Source

FORMAT: Final = "ncsa"

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_LINE: Final = re.compile(
    r"^(?P<host>\S+) (?P<ident>\S+) (?P<user>.+?) \[(?P<time>[^\]]*)\] "
    rf"{_QUOTED} (?P<status>\S+) (?P<bytes>\S+)"
    rf"(?: {_QUOTED} {_QUOTED})?\s*$"
)
_TIME: Final = re.compile(
    r"^(\d{2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$"
)
# English month abbreviations whatever the process locale (strptime's %b is locale-bound).
_MONTHS: Final = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_UNESCAPE: Final = re.compile(r"\\(.)")


def ncsa_time_to_utc(value: str) -> str:
    """ "10/Oct/2000:13:55:36 -0700" -> "2000-10-10T20:55:36.000Z"."""
    match = _TIME.match(value)
    month = _MONTHS.get(match.group(2).lower()) if match else None
    if match is None or month is None:
        raise AccessFieldError(f"time {value[:40]!r} is not dd/Mon/yyyy:HH:MM:SS +hhmm")
    day, _, year, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        moment = datetime(
            int(year),
            month,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError as exc:
        raise AccessFieldError(f"time {value!r}: {exc}") from None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def split_request(request: str) -> dict[str, str]:
    """W3C values from a request line: "GET /a/b?x=1 HTTP/1.1" -> method, stem, query,
    version. An HTTP/0.9 line has no version; a line of any other shape gives nothing."""
    parts = request.split(" ")
    if len(parts) not in (2, 3) or not all(parts):
        return {}
    values = {"cs-method": parts[0]}
    stem, sep, query = parts[1].partition("?")
    values["cs-uri-stem"] = stem or "-"
    values["cs-uri-query"] = query if sep and query else "-"
    if len(parts) == 3:
        values["cs-version"] = parts[2]
    return values


class NcsaParser(LineParser):
    """FormatParser for NCSA Common (and Combined) files. Stateless."""

    format_name = FORMAT

    def __init__(self, source: Source, *, tz: str | None = None) -> None:
        # Every NCSA line carries its own UTC offset; `tz` is accepted for the common signature.
        self.source = source

    def parse(self, raw: bytes, text: str, offset: int) -> Event | DeadLetter | None:
        match = _LINE.match(text)
        if match is None:
            return self.dead(
                raw,
                offset,
                'not an NCSA line: expected host ident user [time] "request" status bytes',
            )
        host, _ident, user, when, request, status, size, referrer, agent = match.groups()
        values = {
            "c-ip": host,
            "cs-username": user,
            "sc-status": status,
            "sc-bytes": size,
        }
        # A request that is not "METHOD target [version]" still leaves an event (its status
        # and client matter); the line itself is kept in event.original.
        values.update(split_request(_UNESCAPE.sub(r"\1", request)))
        if referrer is not None:
            values["cs(Referer)"] = _UNESCAPE.sub(r"\1", referrer)
            values["cs(User-Agent)"] = _UNESCAPE.sub(r"\1", agent)
        values["@timestamp"] = ncsa_time_to_utc(when)
        return build_access_event(values, raw=raw, offset=offset, source=self.source, fmt=FORMAT)
