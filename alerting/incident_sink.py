"""Where the scheduler hands its alerts when incidents are on: every rule alert is kept in
the outbox (for `alerts list/show`) but not delivered on its own; unless a silence holds
it, it becomes a finding of its entity's incident (`iiswatch.alerting.incidents`), and the
incident is what reaches a ticket. The service's own alerts (gaps, rule errors, deadman)
go through the plain outbox as before.

Order, for a crash at any point: the alert is stored first, then credited to its incident;
both are idempotent by alert id, and the window's state is committed only after this
returns, so an evaluation repeated after a crash completes what the first one began.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.alerting.config import AlertingConfig
from iiswatch.alerting.incident_delivery import PARALLEL, IncidentDeliverer
from iiswatch.alerting.incidents import IncidentStore
from iiswatch.alerting.outbox import alert_document
from iiswatch.alerting.risk import finding_from_alert
from iiswatch.alerting.service_config import ServiceSettings
from iiswatch.alerting.silences import Silence, SilenceStore, silenced_by
from iiswatch.alerting.sink import OutboxSink
from iiswatch.rules.alert import Alert
from iiswatch.rules.model import Rule

log = logging.getLogger(__name__)


class IncidentSink:
    def __init__(
        self,
        es: Elasticsearch,
        config: AlertingConfig,
        settings: ServiceSettings,
        *,
        owner: str | None = None,
        incidents_index: str | None = None,
    ) -> None:
        self.plain = OutboxSink(es, config, owner=owner)
        self.outbox = self.plain.outbox
        inc = settings.incidents
        self.store = IncidentStore(
            es, inc.policy(), **({"index": incidents_index} if incidents_index else {})
        )
        self.store.ensure_index()
        self.silences = SilenceStore(es)
        self.destinations = list(
            inc.destinations if inc.destinations is not None else settings.default_destinations
        )
        self.incident_deliverer = IncidentDeliverer(
            es, config, self.store, deliverer=self.plain.deliverer
        )
        self._fresh: list[str] = []
        self._lock = threading.Lock()

    def __call__(
        self, alerts: Sequence[Alert], destinations: Sequence[str], rule: Rule | None
    ) -> int:
        if rule is None:  # the service's own alerts
            return self.plain(alerts, destinations, rule)
        active = self.silences.active() if alerts else []
        if len(alerts) <= 1:
            return sum(self._one(a, destinations, rule, active) for a in alerts)
        # a burst of attackers in one window: their incidents are written side by side
        # (the same entity twice is safe too: its writes are conditional and retried)
        with ThreadPoolExecutor(min(PARALLEL, len(alerts))) as pool:
            return sum(pool.map(lambda a: self._one(a, destinations, rule, active), alerts))

    def _one(self, a: Alert, destinations: Sequence[str], rule: Rule, active: list[Silence]) -> int:
        """Keep one rule alert in the outbox, then credit it to its incident; 1 if new."""
        doc = alert_document(a, rule)
        silence = silenced_by(doc, active)
        routed: dict[str, Any] = (
            {"to": "silence", "silence_id": silence.silence_id, "reason": silence.reason}
            if silence
            else {"to": "incident"}
        )
        new = int(self.outbox.put_new(a, destinations=[], rule=rule, routed=routed))
        if silence is not None:
            log.info("alert %s (%s) silenced by %s", a.alert_id, a.rule_name, silence.silence_id)
            return new
        changed = self.store.add(
            doc,
            finding_from_alert(doc, rule),
            destinations=self.destinations or list(destinations),
        )
        with self._lock:
            self._fresh.extend(
                i.incident_id for i in changed if (i.doc.get("delivery") or {}).get("pending")
            )
        return new

    def has_fresh(self) -> bool:
        """Work stored since the last pass took its list (a pass may be running)."""
        with self._lock:
            return bool(self._fresh) or self.plain.has_fresh()

    def deliver(self) -> list[Any]:
        """The incidents just changed (read in real time) first: they are what an on-call
        person waits for; then the plain outbox's pass, then whatever else is due."""
        with self._lock:
            fresh, self._fresh = list(dict.fromkeys(self._fresh)), []
        reports: list[Any] = []
        try:
            if fresh:
                reports += self.incident_deliverer.deliver_pending(ids=fresh)
        except Exception:
            log.exception("incident delivery pass failed")
        reports += self.plain.deliver()
        try:
            reports += self.incident_deliverer.deliver_pending()
        except Exception:
            log.exception("incident delivery pass failed")
        for r in reports:
            if hasattr(r, "incident_id"):
                log.info("incident %s: %s", r.incident_id, "; ".join(r.actions) or "no change")
        return reports


def make_sink(
    es: Elasticsearch, config: AlertingConfig, settings: ServiceSettings, *, owner: str | None
) -> OutboxSink | IncidentSink:
    if settings.incidents.enabled:
        return IncidentSink(es, config, settings, owner=owner)
    return OutboxSink(es, config, owner=owner)
