"""Evaluate rules once over a span of ingest time and deliver what they raise, as the
service would — for the demo, and for `iiswatch alerting replay` after a reported gap.

It does not touch the service's ledger or suppression state (suppression applies within the
span only), so it never disturbs a running service. Alert ids are deterministic for a given
span: replaying the same span twice adds nothing to the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.alerting.config import AlertingConfig
from iiswatch.alerting.runner import destinations_of, evaluate_ingest_window
from iiswatch.alerting.sink import OutboxSink
from iiswatch.alerting.status import WindowOutcome
from iiswatch.alerting.windows import Window
from iiswatch.rules.alert import Alert
from iiswatch.rules.model import Rule
from iiswatch.rules.suppression import MemoryState


@dataclass
class OneShotResult:
    alerts: list[Alert] = field(default_factory=list)
    new: int = 0  # of those, alerts the outbox did not have yet
    outcomes: dict[str, WindowOutcome] = field(default_factory=dict)  # per rule id
    delivery: Any = None  # what the delivery pass returned


def run_once(
    es: Elasticsearch,
    rules: Sequence[Rule],
    window: tuple[datetime, datetime],
    config: AlertingConfig,
    *,
    deliver: bool = True,
    index: str | None = None,
    now: datetime | None = None,
    default_destinations: Sequence[str] = (),
) -> OneShotResult:
    """Evaluate `rules` over events ingested in `window` = (start, end), put the alerts in
    the outbox for each rule's `alert.destinations` (or `default_destinations` when it
    names none), then (by default) run one delivery pass. Events must be searchable
    (refreshed) when this is called."""
    now = now or datetime.now(UTC)
    w = Window(*window)
    sink = OutboxSink(es, config)
    result = OneShotResult()
    for rule in rules:
        outcome, alerts = evaluate_ingest_window(es, rule, w, now, MemoryState(), index=index)
        result.outcomes[rule.rule_id] = outcome
        if alerts:
            result.new += sink(alerts, destinations_of(rule, default_destinations), rule)
            result.alerts.extend(alerts)
    if deliver and result.alerts:
        result.delivery = sink.deliver()
    return result
