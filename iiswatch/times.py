"""Times and durations, one spelling each, for every part of iiswatch.

Times leave iiswatch as UTC ISO 8601 with milliseconds and `Z` (`2026-11-26T14:00:00.000Z`),
the form alerts, windows and state documents use; a time without a zone is read as UTC.
Durations are a number and a unit (`ms s m h d w`): `250ms`, `90s`, `1.5h`, `7d`, `1w`,
the one grammar of rule files, the alerting config and search options.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

DURATION_HINT = "a number and a unit (ms, s, m, h, d, w): 500ms, 30s, 5m, 2h, 7d, 1w"
TIME_HINT = "use ISO 8601, e.g. 2026-11-26T14:00:00Z"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def iso(t: datetime) -> str:
    """UTC ISO 8601 with milliseconds and `Z` (a naive time is taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (`Z` or an offset; none means UTC); ValueError naming the text."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def time_or_none(value: Any) -> datetime | None:
    """A time field of a stored document: None when it is absent, not text or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def parse_duration(value: str | timedelta) -> timedelta:
    """`250ms`, `90s`, `5m`, `1.5h`, `7d`, `1w` (or a timedelta, returned as it is);
    ValueError with the grammar as its message otherwise. Zero and sign are the caller's
    business."""
    if isinstance(value, timedelta):
        return value
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"not a duration: {DURATION_HINT}")
    return timedelta(seconds=float(m.group(1)) * UNIT_SECONDS[m.group(2)])


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling in whole units up to days: 3600s → `1h`, 0.5s → `500ms`.
    (Weeks are read but not written, so `7d` in a rule file stays `7d`.)"""
    ms = round(value.total_seconds() * 1000)
    if ms % 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    for unit in ("d", "h", "m"):
        size = int(UNIT_SECONDS[unit])
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
