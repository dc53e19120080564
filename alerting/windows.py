"""Window arithmetic of the alerting service: which ingest-time windows a rule evaluates next,
and what is too old to catch up on (a gap). Pure functions; the ledger stores the result.

A window `[start, end)` is a span of `event.ingested` (the time iiswatch indexed an event,
set once: log documents are created, never overwritten). Ingest time only moves forward, so
the windows of a rule partition it: every event falls in exactly one window, however old
its `@timestamp` — a line IIS buffered for a minute or an agent's backlog of hours.

Windows are aligned to the rule's interval counted from the Unix epoch, so two processes
(or one process before and after a restart) cut the same windows and the deterministic
ids built from their starts agree. A window is evaluated once it has *settled*: `settle`
after its end, so that documents stamped just before the end are searchable (the index
refresh interval plus the time a bulk request is in flight).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """`[start, end)` on ingest time."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class Plan:
    """What one run of a rule does: report `gap` (if any), then evaluate `windows` in order."""

    windows: list[Window]
    gap: Window | None = None
    start: datetime | None = None  # where the plan starts (the cursor, or a new rule's start)

    @property
    def end(self) -> datetime | None:
        """Where the rule's cursor stands once the plan is done (None: nothing to do)."""
        if self.windows:
            return self.windows[-1].end
        return self.gap.end if self.gap else None


def align_down(t: datetime, step: timedelta) -> datetime:
    """The latest multiple of `step` since the epoch at or before `t`."""
    us = _us(t - EPOCH)
    return EPOCH + timedelta(microseconds=us - us % _us(step))


def align_up(t: datetime, step: timedelta) -> datetime:
    down = align_down(t, step)
    return down if down == t else down + step


def settled_end(now: datetime, interval: timedelta, settle: timedelta) -> datetime:
    """The end of the newest window that has settled at `now`."""
    return align_down(now - settle, interval)


def next_run(now: datetime, interval: timedelta, settle: timedelta) -> datetime:
    """When the window open at `now` settles: the moment a run finds it ready."""
    return align_up(now - settle, interval) + settle


def plan(
    cursor: datetime | None,
    now: datetime,
    *,
    interval: timedelta,
    settle: timedelta,
    catch_up: timedelta,
    first: datetime | None = None,
) -> Plan:
    """The windows to evaluate at `now` for a rule whose windows are done up to `cursor`.

    - no cursor (a rule never run): from `first` (when the rule appeared: its file's
      modification time), but no more than `catch_up` back and without a gap — the rule
      missed nothing before it existed; without `first`, the newest settled window only;
    - cursor not on the grid (the interval changed): a short first window up to the grid;
    - more than `catch_up` behind (downtime): the newest `catch_up` worth of windows (at
      least one) is evaluated, and `[cursor, first window)` is the gap, reported once.
    """
    end = settled_end(now, interval, settle)
    limit = max(1, _us(catch_up) // _us(interval))
    earliest = end - interval * limit
    if cursor is None:
        cursor = end - interval if first is None else max(align_down(first, interval), earliest)
    begin = cursor
    if cursor >= end:
        return Plan([], start=begin)
    gap = None
    if cursor < earliest:
        # the gap ends on the grid, so the windows after it are whole
        gap = Window(cursor, earliest)
        cursor = earliest
    windows = []
    first_end = align_up(cursor, interval)
    if first_end == cursor:
        first_end = cursor + interval
    start = cursor
    stop = first_end
    while stop <= end:
        windows.append(Window(start, stop))
        start, stop = stop, stop + interval
    return Plan(windows, gap, start=begin)


def _us(d: timedelta) -> int:
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
