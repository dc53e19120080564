"""How IIS writes W3C logs, as the demo and bench generators need it: the field layouts of
IIS 10 and HTTP.sys, the header block IIS writes when it opens a log, the time of day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

# fmt: off
W3C_DEFAULT_FIELDS: tuple[str, ...] = (
    "date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "s-port",
    "cs-username", "c-ip", "cs(User-Agent)", "cs(Referer)", "sc-status", "sc-substatus",
    "sc-win32-status", "time-taken",
)
# The layout after the mid-day configuration change. IIS keeps standard fields in its own
# order and appends custom fields under their configured logFieldName (not as `cs(...)`).
W3C_EXTENDED_FIELDS: tuple[str, ...] = (
    *W3C_DEFAULT_FIELDS[:11], "cs-host", "sc-status", "sc-substatus", "sc-win32-status",
    "sc-bytes", "cs-bytes", "time-taken", "X-Forwarded-For",
)
HTTPERR_FIELDS: tuple[str, ...] = (
    "date", "time", "c-ip", "c-port", "s-ip", "s-port", "cs-version", "cs-method", "cs-uri",
    "sc-status", "s-siteid", "s-reason", "s-queuename",
)
# fmt: on
IIS_SOFTWARE = "Microsoft Internet Information Services 10.0"
HTTPAPI_SOFTWARE = "Microsoft HTTP API 2.0"


def clock(at: float) -> str:
    sec = int(at)
    return f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"


def utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def w3c_header(
    fields: Sequence[str], when: datetime, *, software: str = IIS_SOFTWARE, newline: str = "\r\n"
) -> str:
    """The 4 directive lines IIS writes when it opens a log, each ended by `newline`
    (`when` naive means UTC)."""
    lines = (
        f"#Software: {software}",
        "#Version: 1.0",
        f"#Date: {utc(when):%Y-%m-%d %H:%M:%S}",
        f"#Fields: {' '.join(fields)}",
    )
    return newline.join(lines) + newline
