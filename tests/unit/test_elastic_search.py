from datetime import UTC, datetime, timedelta

import pytest

from iiswatch.elastic.indices import index_for
from iiswatch.elastic.search import TimeRange, build_query
from iiswatch.errors import UsageError


def test_since_reads_the_one_duration_grammar() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert TimeRange.from_options("1w", None, None, now=now).start == now - timedelta(weeks=1)
    with pytest.raises(UsageError, match="15 minutes") as e:
        TimeRange.from_options("15 minutes", None, None, now=now)
    assert e.value.hint and "1w" in e.value.hint


def test_since_is_relative_to_now_and_excludes_from_and_to() -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    r = TimeRange.from_options("1h", None, None, now=now)
    assert (r.start, r.end) == (now - timedelta(hours=1), now)
    with pytest.raises(UsageError):
        TimeRange.from_options("1h", "2026-01-01", None)


def test_naive_times_are_taken_as_utc() -> None:
    r = TimeRange.from_options(None, "2026-11-26T10:00:00", "2026-11-26T11:00:00Z")
    assert r.filter() == {
        "range": {
            "@timestamp": {"gte": "2026-11-26T10:00:00+00:00", "lt": "2026-11-26T11:00:00+00:00"}
        }
    }


def test_star_query_matches_all_within_the_range() -> None:
    q = build_query("*", TimeRange())
    assert q == {"bool": {"must": [{"match_all": {}}], "filter": []}}


def test_events_go_to_monthly_indices_by_event_time_and_dead_letters_to_their_own() -> None:
    assert index_for(
        {"@timestamp": "2026-11-26T10:00:00Z", "event": {"dataset": "iis.access"}}
    ) == ("iis-access-2026.11")
    assert index_for({"@timestamp": "2026-01-02T00:00:00Z", "event": {"dataset": "iis.error"}}) == (
        "iis-error-2026.01"
    )
    assert index_for({"event": {"dataset": "iiswatch.deadletter"}}) == "iiswatch-deadletter-v1"
