"""The rule model: constrained types, defaults, and the checks across keys."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from iiswatch.rules.model import Rule, parse_duration
from iiswatch.times import format_duration


def rule_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "3f0c6a52-8d0e-4d8e-9a51-2f1c4b7e9d10",
        "name": "Web shell command execution",
        "description": "A script under an upload folder receives commands.",
        "author": "iiswatch",
        "status": "stable",
        "severity": "critical",
        "risk_score": 95,
        "type": "match",
        "lucene": "iiswatch.url.query:*whoami*",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_a_minimal_rule_gets_the_documented_defaults() -> None:
    rule = Rule.model_validate(rule_data())
    assert rule.index == "iis-access-*"
    assert rule.schedule.interval == timedelta(minutes=5)
    assert rule.schedule.lookback == timedelta(minutes=1)
    assert rule.alert.samples == 5
    assert rule.group_fields == []


def test_rules_are_frozen() -> None:
    rule = Rule.model_validate(rule_data())
    with pytest.raises(ValidationError, match="Instance is frozen"):
        rule.name = "other"  # type: ignore[misc]


def test_rule_durations_use_the_one_grammar() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert format_duration(parse_duration("3600s")) == "1h"


@pytest.mark.parametrize(
    ("text", "message"),
    [("0s", "must be longer than zero"), ("5", "not a duration"), ("1 minute", "not a duration")],
)
def test_a_rule_duration_must_be_longer_than_zero(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_the_group_key_follows_the_type() -> None:
    nt = Rule.model_validate(
        rule_data(type="new_terms", new_terms={"fields": ["url.path"], "history": "30d"})
    )
    assert nt.group_fields == ["url.path"]
    seq = Rule.model_validate(
        rule_data(
            type="sequence",
            lucene=None,
            sequence={
                "by": ["source.ip"],
                "max_span": "30m",
                "steps": [{"name": "a", "lucene": "x:1"}, {"name": "b", "lucene": "x:2"}],
            },
        )
    )
    assert seq.group_fields == ["source.ip"]
    assert seq.query is None and seq.lucene is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": "threshold"}, "needs a `threshold:` section"),
        ({"threshold": {"value": 3}}, "`threshold` does not apply to type match"),
        ({"query": {"term": {"a": "b"}}}, "has both `query` and `lucene`"),
        ({"lucene": None}, "needs a `query` .* or a `lucene` query string"),
        (
            {
                "type": "new_terms",
                "new_terms": {"fields": ["url.path"], "history": "1d"},
                "group_by": ["source.ip"],
            },
            "type new_terms groups by `new_terms.fields`",
        ),
        (
            {
                "group_by": ["source.ip"],
                "suppression": {"group_by": ["user.name"], "duration": "1h"},
            },
            "user.name not in the rule's group key",
        ),
    ],
)
def test_keys_that_do_not_fit_together_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate(rule_data(**changes))


def test_exception_networks_are_normalised_and_expire_after_their_day() -> None:
    rule = Rule.model_validate(
        rule_data(
            exceptions=[
                {
                    "field": "source.ip",
                    "cidrs": ["10.20.1.1/16", "192.0.2.7"],
                    "owner": "soc",
                    "reason": "scanner",
                    "expires": "2027-06-30",
                }
            ]
        )
    )
    exc = rule.exceptions[0]
    assert exc.cidrs == ["10.20.0.0/16", "192.0.2.7/32"]
    assert exc.active(date(2027, 6, 30))
    assert not exc.active(date(2027, 7, 1))
    assert rule.expired_exceptions(date(2027, 7, 1)) == [(0, exc)]


def test_an_exception_needs_something_to_match() -> None:
    with pytest.raises(
        ValidationError, match="needs a non-empty `values`, `cidrs`, `wildcards` or `networks`"
    ):
        Rule.model_validate(
            rule_data(exceptions=[{"field": "source.ip", "owner": "soc", "reason": "x"}])
        )


def test_sequence_step_names_are_unique() -> None:
    with pytest.raises(ValidationError, match=r"step names repeat: \['a'\]"):
        Rule.model_validate(
            rule_data(
                type="sequence",
                lucene=None,
                sequence={
                    "by": ["source.ip"],
                    "max_span": "30m",
                    "steps": [{"name": "a", "lucene": "x:1"}, {"name": "a", "lucene": "x:2"}],
                },
            )
        )
