"""Which monthly log indices and documents retention removes: pure date logic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from iiswatch.config import RetentionSettings
from iiswatch.elastic.retention import Ages, document_rules, expired_log_indices, month_end
from iiswatch.errors import ConfigError

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_month_end_of_monthly_indices_only() -> None:
    assert month_end("iis-access-2026.11") == date(2026, 12, 1)
    assert month_end("iis-error-2025.12") == date(2026, 1, 1)
    for other in ("iis-access-undated", "iis-access-2026.13", "iiswatch-deadletter-v1",
                  "iis-access-2026.11-restored", "iis-other-2020.01"):  # fmt: skip
        assert month_end(other) is None, other


def test_an_index_goes_only_when_its_whole_month_is_older_than_the_age() -> None:
    names = ["iis-access-2025.10", "iis-access-2025.11", "iis-error-2025.12", "iis-access-2026.11",
             "iis-access-undated", "iiswatch-deadletter-v1"]  # fmt: skip
    # 365 days before NOW is 2025-12-03: November 2025 ended on 2025-12-01, December not yet
    assert expired_log_indices(names, NOW, timedelta(days=365)) == [
        "iis-access-2025.10",
        "iis-access-2025.11",
    ]
    assert expired_log_indices(names, NOW, timedelta(days=3650)) == []


def test_the_ledger_cursor_is_never_a_retention_target() -> None:
    ages = Ages.from_settings(RetentionSettings())
    (windows,) = [q for pattern, _, q in document_rules(NOW, ages) if "windows" in pattern]
    assert {"terms": {"kind": ["window", "gap"]}} in windows["bool"]["filter"]


def test_alerts_are_kept_unless_an_age_is_set() -> None:
    kept = document_rules(NOW, Ages.from_settings(RetentionSettings()))
    assert not [p for p, _, _ in kept if p.startswith("iiswatch-alerts")]
    aged = document_rules(NOW, Ages.from_settings(RetentionSettings(alerts="730d")))
    assert [p for p, _, _ in aged if p.startswith("iiswatch-alerts")]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (RetentionSettings(logs="a year"), "retention.logs: not a duration"),
        (RetentionSettings(state="1d"), "retention.state: 1d is shorter than 7d"),
    ],
)
def test_bad_ages_are_config_errors(settings: RetentionSettings, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Ages.from_settings(settings)
    assert message in err.value.message
    assert err.value.hint
