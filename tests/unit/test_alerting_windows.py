"""Window arithmetic of the alerting service: aligned, contiguous ingest-time windows, a
settle delay, bounded catch-up with the rest reported as one gap."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from iiswatch.alerting.windows import Window, align_down, align_up, next_run, plan

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
S = timedelta(seconds=1)


def _plan(cursor: datetime | None, now: datetime, **kw: Any):
    args = {"interval": MIN, "settle": 5 * S, "catch_up": 10 * MIN} | kw
    return plan(cursor, now, **args)


def test_alignment_counts_from_the_epoch_so_every_process_cuts_the_same_windows():
    t = T0 + timedelta(seconds=83, microseconds=5)
    assert align_down(t, MIN) == T0 + MIN
    assert align_up(t, MIN) == T0 + 2 * MIN
    assert align_up(T0, MIN) == T0
    assert align_down(T0 + 3 * S, 2 * S) == T0 + 2 * S


def test_a_window_is_evaluated_only_once_it_has_settled():
    # the window [12:00, 12:01) settles at 12:01:05
    assert _plan(T0, T0 + MIN + 4 * S).windows == []
    assert _plan(T0, T0 + MIN + 5 * S).windows == [Window(T0, T0 + MIN)]
    assert next_run(T0 + 10 * S, MIN, 5 * S) == T0 + MIN + 5 * S


def test_consecutive_windows_are_contiguous_and_never_overlap():
    p = _plan(T0, T0 + 4 * MIN + 30 * S)
    assert [(w.start, w.end) for w in p.windows] == [
        (T0 + i * MIN, T0 + (i + 1) * MIN) for i in range(4)
    ]
    assert p.gap is None
    assert p.end == T0 + 4 * MIN


def test_a_rule_never_run_starts_with_the_newest_settled_window():
    p = _plan(None, T0 + 30 * S)
    assert p.windows == [Window(T0 - MIN, T0)]


def test_a_new_rule_starts_where_its_file_appeared_within_the_catch_up_limit_and_no_gap():
    p = _plan(None, T0 + 3 * MIN + 30 * S, first=T0 + 20 * S)
    assert p.windows == [Window(T0 + i * MIN, T0 + (i + 1) * MIN) for i in range(3)]
    p = _plan(None, T0 + 60 * MIN + 30 * S, first=T0)
    assert p.gap is None
    assert len(p.windows) == 10
    assert p.windows[-1].end == T0 + 60 * MIN


def test_a_cursor_off_the_grid_after_an_interval_change_gets_a_short_first_window():
    p = _plan(T0 + 20 * S, T0 + 2 * MIN + 10 * S)
    assert p.windows == [Window(T0 + 20 * S, T0 + MIN), Window(T0 + MIN, T0 + 2 * MIN)]


def test_downtime_beyond_the_catch_up_limit_becomes_one_gap_and_the_newest_windows_run():
    now = T0 + 60 * MIN + 10 * S  # 60 windows behind, catch-up is 10 minutes
    p = _plan(T0, now)
    assert p.gap == Window(T0, T0 + 50 * MIN)
    assert len(p.windows) == 10
    assert p.windows[0].start == T0 + 50 * MIN
    assert p.windows[-1].end == T0 + 60 * MIN


def test_downtime_within_the_limit_is_caught_up_entirely():
    p = _plan(T0, T0 + 10 * MIN + 10 * S)
    assert p.gap is None
    assert len(p.windows) == 10


def test_a_catch_up_shorter_than_the_interval_still_evaluates_one_window():
    p = _plan(T0, T0 + 5 * MIN + 10 * S, catch_up=10 * S)
    assert p.windows == [Window(T0 + 4 * MIN, T0 + 5 * MIN)]
    assert p.gap == Window(T0, T0 + 4 * MIN)


def test_windows_and_gap_together_cover_everything_since_the_cursor_exactly_once():
    for minutes in range(1, 40):
        cursor = T0 + 7 * S
        now = cursor + minutes * MIN + 3 * S
        p = _plan(cursor, now, interval=2 * MIN, catch_up=9 * MIN)
        spans = ([p.gap] if p.gap else []) + p.windows
        if not spans:
            continue
        assert spans[0].start == cursor
        for a, b in itertools.pairwise(spans):
            assert a.end == b.start
        assert all(w.length <= 2 * MIN for w in p.windows)
        assert p.end is not None and p.end <= now - 5 * S


def test_sub_second_settle_and_second_intervals_work():
    now = T0 + 7 * S + timedelta(milliseconds=600)
    p = _plan(T0 + 4 * S, now, interval=S, settle=timedelta(milliseconds=500))
    assert p.windows == [Window(T0 + i * S, T0 + (i + 1) * S) for i in range(4, 7)]
