"""How the service spreads rule runs: jitter for ordinary rules, none for a rule that opens
an incident at once (its ticket is the latency goal)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from iiswatch.alerting.service import rule_jitter
from iiswatch.rules.model import Rule


def _rule(**extra: Any) -> Rule:
    return Rule.model_validate(
        {
            "id": str(uuid.uuid4()),
            "name": "test rule",
            "description": "test",
            "author": "tests",
            "status": "test",
            "severity": "high",
            "risk_score": 50,
            "type": "match",
            "lucene": "url.path:*",
        }
        | extra
    )


def test_a_rule_that_opens_an_incident_at_once_runs_without_jitter() -> None:
    shell = _rule(opens_incident="always")
    assert shell.schedule.interval == timedelta(seconds=5)
    assert rule_jitter(shell, timedelta(seconds=1)) == timedelta(0)


def test_other_rules_get_the_jitter_up_to_a_quarter_of_their_interval() -> None:
    assert rule_jitter(_rule(), timedelta(seconds=1)) == timedelta(seconds=1)
    short = _rule(schedule={"interval": "2s"})
    assert rule_jitter(short, timedelta(seconds=1)) == timedelta(milliseconds=500)
