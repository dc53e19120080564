from datetime import UTC, datetime, timedelta

import pytest

from iiswatch.elastic.indices import index_for
from iiswatch.elastic.search import TimeRange, build_query, get_field, parse_duration
from iiswatch.errors import UsageError


def test_durations_read_common_units() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("7d") == timedelta(days=7)
    with pytest.raises(UsageError, match="15 minutes"):
        parse_duration("15 minutes")


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


def test_dotted_fields_are_read_from_nested_documents() -> None:
    assert get_field({"source": {"ip": "1.2.3.4"}}, "source.ip") == "1.2.3.4"
    assert get_field({"source": {}}, "source.ip") is None
