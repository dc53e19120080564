"""What evaluation remembers between windows, per rule and group: the newest event an alert
already covered (windows overlap by `lookback`) and how long a group stays suppressed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from iiswatch.rules.alert import Alert, group_key
from iiswatch.rules.model import Rule


@dataclass(frozen=True)
class GroupState:
    last_event: datetime | None = None  # newest event an alert of this group covered
    suppressed_until: datetime | None = None
    alert_id: str | None = None  # the alert that set this state
    suppressed: int = 0  # alerts not raised for this group because of suppression


class SuppressionState(Protocol):
    """Per rule and group key, what evaluation remembers between windows.

    Keys are opaque strings made by `evaluate`. The backtest keeps them in memory; the
    alerting service stores them in an Elasticsearch state index (batched: one `load` and
    one `save` per evaluation).
    """

    def load(self, rule_id: str, keys: Sequence[str]) -> dict[str, GroupState]: ...

    def save(self, rule_id: str, states: Mapping[str, GroupState]) -> None: ...


class MemoryState:
    """A SuppressionState in a dict, for `rules run`, `rules backtest` and `rules test`."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], GroupState] = {}

    def load(self, rule_id: str, keys: Sequence[str]) -> dict[str, GroupState]:
        return {k: s for k in keys if (s := self._states.get((rule_id, k))) is not None}

    def save(self, rule_id: str, states: Mapping[str, GroupState]) -> None:
        for k, s in states.items():
            self._states[(rule_id, k)] = s

    def suppressed(self, rule_id: str) -> int:
        return sum(
            s.suppressed
            for (r, k), s in self._states.items()
            if r == rule_id and k.startswith("suppress:")
        )


def apply_suppression(
    rule: Rule, alerts: list[Alert], state: SuppressionState, clock: datetime
) -> list[Alert]:
    """Drop alerts whose events an earlier window already alerted on (windows overlap by
    `lookback`), then those of a group still suppressed; remember what was raised."""
    if not alerts:
        return []
    sup_fields = rule.suppression_fields

    def seen_key(a: Alert) -> str:
        return "seen:" + group_key(a.group)

    def sup_key(a: Alert) -> str:
        return "suppress:" + group_key({f: a.group.get(f) for f in sup_fields})

    keys = {seen_key(a) for a in alerts} | (
        {sup_key(a) for a in alerts} if rule.suppression else set()
    )
    known = state.load(rule.rule_id, sorted(keys))
    changed: dict[str, GroupState] = {}
    raised = []
    for a in sorted(alerts, key=lambda a: (a.first_event, a.alert_id)):
        # a new term is identified by its first appearance; other groups by their newest event
        mark = a.first_event if rule.type == "new_terms" else a.last_event
        sk = seen_key(a)
        prev = changed.get(sk) or known.get(sk)
        if prev is not None and prev.last_event is not None and mark <= prev.last_event:
            continue
        changed[sk] = GroupState(last_event=mark, alert_id=a.alert_id)
        if rule.suppression is not None:
            uk = sup_key(a)
            sup = changed.get(uk) or known.get(uk)
            if (
                sup is not None
                and sup.suppressed_until is not None
                and clock < sup.suppressed_until
            ):
                changed[uk] = replace(sup, suppressed=sup.suppressed + 1)
                continue
            changed[uk] = GroupState(
                suppressed_until=clock + rule.suppression.duration,
                alert_id=a.alert_id,
                suppressed=sup.suppressed if sup else 0,
            )
        raised.append(a)
    state.save(rule.rule_id, changed)
    return raised
