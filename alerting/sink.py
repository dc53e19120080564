"""Where the scheduler hands its alerts: the outbox (`iiswatch.alerting.outbox`), and the
delivery pass that empties it (`iiswatch.alerting.delivery`). The ids just stored are
delivered first, read in real time, so a fresh alert does not wait for an index refresh."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.alerting.config import AlertingConfig
from iiswatch.alerting.delivery import Deliverer
from iiswatch.alerting.outbox import Outbox
from iiswatch.rules.alert import Alert
from iiswatch.rules.model import Rule

log = logging.getLogger(__name__)

# (alerts, destinations, rule or None for the service's own alerts) -> how many were new
AlertSink = Callable[[Sequence[Alert], Sequence[str], Rule | None], int]


class OutboxSink:
    """Stores alerts in the outbox and remembers their ids for the next delivery pass."""

    def __init__(self, es: Elasticsearch, config: AlertingConfig, *, owner: str | None = None):
        self.outbox = Outbox(es)
        self.outbox.ensure_index()
        self.deliverer = Deliverer(es, config, owner=owner)
        self._fresh: list[str] = []
        self._lock = threading.Lock()

    def __call__(
        self, alerts: Sequence[Alert], destinations: Sequence[str], rule: Rule | None
    ) -> int:
        new = self.outbox.put(list(alerts), list(destinations), rule)
        with self._lock:
            self._fresh.extend(a.alert_id for a in alerts)
        if alerts:
            log.info(
                "%d alert(s), %d new, from %s -> %s",
                len(alerts),
                new,
                rule.name if rule else alerts[0].rule_name,
                ", ".join(destinations) or "no destination",
            )
        return new

    def has_fresh(self) -> bool:
        """Alerts stored since the last pass took its list (a pass may be running)."""
        with self._lock:
            return bool(self._fresh)

    def deliver(self) -> list[Any]:
        """One pass: the alerts stored since the last pass, then whatever else is due
        (retries whose time has come, claims a dead process left behind)."""
        with self._lock:
            fresh, self._fresh = list(dict.fromkeys(self._fresh)), []
        reports = self.deliverer.deliver_pending(ids=fresh) if fresh else []
        reports += self.deliverer.deliver_pending()
        for r in reports:
            log.info("alert %s: %s", r.alert_id, r.status)
        return reports
