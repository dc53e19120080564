"""The one grammar of durations and the one spelling of times (iiswatch.times), which rule
files, the alerting config and search options all use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from iiswatch.times import format_duration, iso, parse_duration, parse_time, time_or_none


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1.5h", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        (" 10 s ", timedelta(seconds=10)),
    ],
)
def test_a_duration_is_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["5", "1 minute", "5M", "-5m", "15 minutes", "1y", ""])
def test_anything_else_is_refused_with_the_grammar(text: str) -> None:
    with pytest.raises(ValueError, match=r"a number and a unit \(ms, s, m, h, d, w\)"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=30), "30s"),
        (timedelta(hours=1), "1h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(days=14), "14d"),
        (timedelta(milliseconds=1500), "1500ms"),
    ],
)
def test_a_duration_is_written_in_its_shortest_exact_spelling(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_times_are_written_in_utc_with_milliseconds_and_z() -> None:
    paris = timezone(timedelta(hours=1))
    assert iso(datetime(2026, 11, 26, 15, 0, 0, 123456, tzinfo=paris)) == (
        "2026-11-26T14:00:00.123Z"
    )
    assert iso(datetime(2026, 11, 26, 14)) == "2026-11-26T14:00:00.000Z"  # naive is UTC


def test_times_are_read_with_z_an_offset_or_as_utc() -> None:
    want = datetime(2026, 11, 26, 14, tzinfo=UTC)
    assert parse_time("2026-11-26T14:00:00Z") == want
    assert parse_time("2026-11-26T15:00:00+01:00") == want
    assert parse_time("2026-11-26T14:00:00") == want
    with pytest.raises(ValueError, match="cannot read the time 'yesterday'"):
        parse_time("yesterday")


def test_a_stored_time_that_is_missing_or_unreadable_is_none() -> None:
    assert time_or_none(None) is None
    assert time_or_none(12) is None
    assert time_or_none("garbage") is None
    assert time_or_none("2026-11-26T14:00:00.000Z") == datetime(2026, 11, 26, 14, tzinfo=UTC)
