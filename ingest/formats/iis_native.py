"""Parse the fixed, comma-separated "IIS log file format" (Microsoft's pre-W3C native format).

Its fifteen fields are written in local server time, so the parser is told the server's zone
(an IANA name; by default this machine's) and hands the access builder a UTC timestamp.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzlocal

from iiswatch.errors import ConfigError
from iiswatch.ingest.ecs_access import AccessFieldError, build_access_event
from iiswatch.ingest.formats.base import LineParser
from iiswatch.ingest.model import DeadLetter, Event, Source

FORMAT: Final = "iis"

# The fifteen columns in file order, under their W3C names. "Client bytes sent" is what the
# server received (cs-bytes); "server bytes sent" is sc-bytes; "service" is W3SVC<n>.
FIELDS: Final = (
    "c-ip",
    "cs-username",
    "date",
    "time",
    "s-sitename",
    "s-computername",
    "s-ip",
    "time-taken",
    "cs-bytes",
    "sc-bytes",
    "sc-status",
    "sc-win32-status",
    "cs-method",
    "cs-uri-stem",
    "cs-uri-query",
)
_FIXED: Final = len(FIELDS) - 2  # target and parameters are split from the right

_DATE: Final = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$")
_TIME: Final = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})$")


def resolve_zone(tz: str | None) -> tzinfo:
    """The zone local times are read in: `tz` by IANA name, else this machine's zone."""
    if tz is None:
        return tzlocal.get_localzone()
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {tz!r}",
            hint="give an IANA zone name such as 'Europe/Paris' or 'America/New_York'",
        ) from None


def split_columns(text: str) -> list[str] | None:
    """The fifteen values of one line, or None when it does not have them.

    Fields are separated by ", " and the line ends with a comma. No value holds a space
    (IIS writes it as "+"), but the target and the parameters may hold commas, so the first
    thirteen fields are taken from the left and the last two split at the last separator.
    """
    body = text.rstrip()
    if not body.endswith(","):
        return None
    body = body[:-1]
    sep = ", " if ", " in body else ","
    parts = body.split(sep, _FIXED)
    if len(parts) != _FIXED + 1:
        return None
    target, found, params = parts[-1].rpartition(sep)
    if not found:
        return None
    return [p.strip() for p in parts[:-1]] + [target.strip(), params.strip()]


def local_to_utc(date: str, clock: str, zone: tzinfo) -> str:
    """ "03/20/01" "7:55:20" in `zone` -> "2001-03-20T06:55:20.000Z" (for Paris in winter).

    Two-digit years are 19xx from 70 up (IIS wrote two digits up to 1999), 20xx below.
    In the hour a clock goes back the earlier of the two readings is taken (nothing in the
    line can tell them apart).
    """
    d = _DATE.match(date)
    t = _TIME.match(clock)
    if d is None or t is None:
        raise AccessFieldError(f"date/time {date[:20]!r} {clock[:20]!r} is not M/D/YY H:MM:SS")
    month, day, year = (int(x) for x in d.groups())
    if len(d.group(3)) == 2:
        year += 1900 if year >= 70 else 2000
    try:
        hour, minute, second = (int(x) for x in t.groups())
        local = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as exc:
        raise AccessFieldError(f"date/time {date!r} {clock!r}: {exc}") from None
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class IisNativeParser(LineParser):
    """FormatParser for IIS-format files. Stateless: every line carries all its fields."""

    format_name = FORMAT

    def __init__(self, source: Source, *, tz: str | None = None) -> None:
        self.source = source
        self.zone = resolve_zone(tz)
        # ECS wants an IANA name or an offset; a zone read from a bare /etc/localtime has none.
        key = getattr(self.zone, "key", None)
        self.zone_name: str | None = key if key and key != "local" else None

    def parse(self, raw: bytes, text: str, offset: int) -> Event | DeadLetter | None:
        columns = split_columns(text)
        if columns is None:
            return self.dead(
                raw,
                offset,
                f"not an IIS-format line: expected {len(FIELDS)} comma-separated fields "
                "ending with a comma",
            )
        values = dict(zip(FIELDS, columns, strict=True))
        values["@timestamp"] = local_to_utc(values.pop("date"), values.pop("time"), self.zone)
        event = build_access_event(values, raw=raw, offset=offset, source=self.source, fmt=FORMAT)
        if self.zone_name:
            event["event"]["timezone"] = self.zone_name
        return event
