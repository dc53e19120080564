"""Search options that cannot go together, and histograms too long to read, are usage
errors rather than one option being silently ignored."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from iiswatch.cli.search import DEFAULT_LIMIT, check_flags
from iiswatch.elastic.query_errors import root_cause
from iiswatch.elastic.search import MAX_HISTOGRAM_BUCKETS, check_bucket_count
from iiswatch.errors import UsageError

BASE: dict[str, Any] = dict(
    count_only=False,
    export_all=False,
    json_out=False,
    top=None,
    histogram=None,
    fields=None,
    limit=DEFAULT_LIMIT,
    oldest_first=False,
)


@pytest.mark.parametrize(
    "flags",
    [
        {"count_only": True, "top": "source.ip"},
        {"count_only": True, "histogram": "1h"},
        {"count_only": True, "limit": 5},
        {"count_only": True, "export_all": True},
        {"export_all": True, "top": "source.ip"},
        {"export_all": True, "histogram": "1h"},
        {"export_all": True, "limit": 5},
    ],
)
def test_contradictory_flags_are_usage_errors(flags: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="cannot be combined"):
        check_flags(**(BASE | flags))


def test_compatible_flags_pass() -> None:
    check_flags(**(BASE | {"json_out": True, "top": "source.ip", "histogram": "1h"}))
    check_flags(**(BASE | {"export_all": True, "json_out": True, "fields": "source.ip"}))
    check_flags(**(BASE | {"count_only": True, "json_out": True}))


def test_bucket_guard_says_which_interval_would_fit() -> None:
    start = datetime(1985, 3, 1, tzinfo=UTC)
    assert check_bucket_count(start, start + timedelta(days=1), timedelta(hours=1), "1h") == 24
    with pytest.raises(UsageError, match=f"at most {MAX_HISTOGRAM_BUCKETS:,}") as e:
        check_bucket_count(start, start + timedelta(days=30), timedelta(minutes=1), "1m")
    assert "at least 44m" in (e.value.hint or "")


def test_root_cause_prefers_the_shards_deepest_reason() -> None:
    body = {
        "error": {
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
            "root_cause": [
                {"type": "query_shard_exception", "reason": "Failed to parse query [x]"}
            ],
            "failed_shards": [
                {
                    "reason": {
                        "type": "query_shard_exception",
                        "reason": "Failed to parse query [x]",
                        "caused_by": {
                            "type": "parse_exception",
                            "reason": "Cannot parse 'x': Encountered <EOF> at line 1, column 3.",
                        },
                    }
                }
            ],
        }
    }
    kind, reason = root_cause(body)
    assert kind == "query_shard_exception"
    assert "column 3" in reason and "all shards failed" not in reason
