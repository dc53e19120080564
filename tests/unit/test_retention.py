"""Which monthly log indices and documents retention removes (pure date logic), and the
ages it takes from the config file, checked as the file is loaded."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from iiswatch.config import ENV_OVERRIDES, RetentionSettings, load_settings
from iiswatch.elastic.retention import document_rules, expired_log_indices, month_end
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
    (windows,) = [q for p, _, q in document_rules(NOW, RetentionSettings()) if "windows" in p]
    assert {"terms": {"kind": ["window", "gap"]}} in windows["bool"]["filter"]


def test_alerts_are_kept_unless_an_age_is_set() -> None:
    kept = document_rules(NOW, RetentionSettings())
    assert not [p for p, _, _ in kept if p.startswith("iiswatch-alerts")]
    aged = document_rules(NOW, RetentionSettings(alerts=timedelta(days=730)))
    assert [p for p, _, _ in aged if p.startswith("iiswatch-alerts")]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config file the test writes its [retention] section into."""
    monkeypatch.setenv("IISWATCH_CONFIG", str(tmp_path / "config.toml"))
    for var in ENV_OVERRIDES.values():
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "config.toml"


def test_ages_in_the_config_file_are_read_as_durations_at_load(config: Path) -> None:
    config.write_text('[retention]\nlogs = "400d"\ndeadletter = "12h"\nalerts = "2w"\n')
    ages = load_settings().retention
    assert ages.logs == timedelta(days=400)
    assert ages.deadletter == timedelta(hours=12)
    assert ages.state == timedelta(days=30)  # the default
    assert ages.alerts == timedelta(weeks=2)
    rules = document_rules(NOW, ages)
    assert "dead letters older than 12h" in [reason for _, reason, _ in rules]


@pytest.mark.parametrize(
    ("toml", "where", "message"),
    [
        ('logs = "30 dayz"', "config.toml:3: retention.logs: not a duration", "'30 dayz'"),
        ('alerts = "a year"', "config.toml:3: retention.alerts: not a duration", "'a year'"),
        ('state = "1d"', "config.toml:3: retention.state: 1d is shorter than 7d", "7d or more"),
        ("logs = 365", "config.toml:3: retention.logs: an age needs a unit", "write 365d"),
        ('deadletter = "0d"', "config.toml:3: retention.deadletter: an age of zero", "30d"),
    ],
)
def test_a_bad_age_is_reported_at_load_with_its_file_line_and_setting(
    config: Path, toml: str, where: str, message: str
) -> None:
    config.write_text(f"[elasticsearch]\n[retention]\n{toml}\n")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert f"{config.parent}/{where}" in err.value.message
    assert message in err.value.message
    assert "Retention" in (err.value.hint or "")
