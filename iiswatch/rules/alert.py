"""The alert: what a rule found for one group in one window, and its deterministic id.
Evaluation makes them; alerting stores, renders and delivers them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from iiswatch.times import iso


@dataclass(frozen=True)
class Alert:
    """What a rule found for one group in one window (docs/design/rule-schema.md)."""

    alert_id: str
    rule_id: str
    rule_name: str
    rule_type: str
    severity: str
    risk_score: int
    mitre: list[dict[str, str]]
    tags: list[str]
    group: dict[str, Any]
    source_ips: list[str]
    first_event: datetime
    last_event: datetime
    event_count: int
    samples: list[dict[str, Any]]
    window_start: datetime
    window_end: datetime
    time_field: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready document with ECS-style nesting (`rule.id`, `source.ip`)."""
        return {
            "alert_id": self.alert_id,
            "rule": {"id": self.rule_id, "name": self.rule_name, "type": self.rule_type},
            "severity": self.severity,
            "risk_score": self.risk_score,
            "mitre": self.mitre,
            "tags": self.tags,
            "group": self.group,
            "source": {"ip": self.source_ips},
            "first_event": iso(self.first_event),
            "last_event": iso(self.last_event),
            "event_count": self.event_count,
            "samples": self.samples,
            "window": {
                "start": iso(self.window_start),
                "end": iso(self.window_end),
                "time_field": self.time_field,
            },
            "details": self.details,
        }


def group_key(group: Mapping[str, Any]) -> str:
    """Canonical text of a group (sorted JSON), the same in every process."""
    return orjson.dumps(dict(group), option=orjson.OPT_SORT_KEYS).decode()


def alert_id(rule_id: str, group: Mapping[str, Any], window_start: datetime) -> str:
    """Deterministic: evaluating the same window again yields the same id, never a second."""
    text = orjson.dumps([rule_id, group_key(group), iso(window_start)])
    return hashlib.blake2b(text, digest_size=16).hexdigest()
