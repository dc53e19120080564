"""Which way `rules backtest` replays each rule, and the bins it counts in (pure logic; the
alerts themselves are compared with window-by-window evaluation in
tests/integration/test_backtest_paths.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from iiswatch.rules.backtest import windows
from iiswatch.rules.loader import load_rules
from iiswatch.rules.replay import bin_ms, path_for, to_ms


def test_every_rule_of_the_pack_is_replayed_without_window_by_window_evaluation() -> None:
    paths = {lr.rule.name: path_for(lr.rule) for lr in load_rules()}
    assert set(paths.values()) <= {"binned", "joined"}, paths


def test_every_window_edge_but_a_clipped_end_falls_on_a_bin() -> None:
    start = datetime(2026, 11, 1, 0, 0, 7, 250000, tzinfo=UTC)
    end = start + timedelta(days=1, seconds=-3)
    for lr in load_rules():
        rule = lr.rule
        width = bin_ms(rule)
        assert width is not None
        for a, b in windows(rule, start, end):
            assert (to_ms(a) - to_ms(start)) % width == 0 or b == end
            assert (to_ms(b) - to_ms(start)) % width == 0 or b == end


def test_milliseconds_truncate_as_iso_does() -> None:
    t = datetime(2026, 11, 1, 0, 0, 0, 999999, tzinfo=UTC)
    assert to_ms(t) == to_ms(t.replace(microsecond=999000))
