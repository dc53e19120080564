"""The service watching itself and its sources: a built-in deadman rule (a host that sent
events recently has gone silent) and alerts for the service's own trouble — a rule that
fails to run, ingest time given up as a gap after downtime.

They are ordinary alerts (the engine's `Alert`, deterministic ids, the same outbox and
destinations), sent to `[service] error_destinations`. Their ids are built so one episode
makes one alert, whatever restarts and retries happen:
- deadman: host + the time of its last event (silent again later: a new alert);
- rule error: rule + the time the current run of failures began;
- gap: rule + the gap's start.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.alerting.service_config import ServiceSettings
from iiswatch.alerting.status import RuleStatus
from iiswatch.alerting.windows import Window
from iiswatch.elastic.client import backend_errors
from iiswatch.rules.alert import Alert, alert_id
from iiswatch.rules.model import Rule
from iiswatch.times import format_duration, iso, parse_time

log = logging.getLogger(__name__)

# fixed ids of the built-in rules (they have no rule file)
DEADMAN_RULE_ID = "7d1b2c3e-0d5a-4c41-9a6e-1f0de4d5a001"
GAP_RULE_ID = "7d1b2c3e-0d5a-4c41-9a6e-1f0de4d5a002"
ERROR_RULE_ID = "7d1b2c3e-0d5a-4c41-9a6e-1f0de4d5a003"
INGESTED = "event.ingested"


def _self_alert(
    rule_id: str,
    name: str,
    rtype: str,
    severity: str,
    group: dict[str, Any],
    start: datetime,
    end: datetime,
    details: dict[str, Any],
) -> Alert:
    return Alert(
        alert_id=alert_id(rule_id, group, start),
        rule_id=rule_id,
        rule_name=name,
        rule_type=rtype,
        severity=severity,
        risk_score={"low": 21, "medium": 47, "high": 73, "critical": 99}[severity],
        mitre=[],
        tags=["iiswatch.self_monitoring"],
        group=group,
        source_ips=[],
        first_event=start,
        last_event=end,
        event_count=0,
        samples=[],
        window_start=start,
        window_end=end,
        time_field=INGESTED,
        details=details,
    )


def _span(d: timedelta) -> str:
    s = d.total_seconds()
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def gap_alert(rule: Rule, gap: Window) -> Alert:
    return _self_alert(
        GAP_RULE_ID,
        f"Rule not evaluated for {_span(gap.end - gap.start)} of ingested events: {rule.name}",
        "gap",
        "high",
        {"rule.id": rule.rule_id, "rule.name": rule.name},
        gap.start,
        gap.end,
        {
            "reason": "the alerting service was behind by more than its catch-up limit",
            "hint": (
                f"iiswatch alerting replay --rule {rule.rule_id} "
                f"--from {iso(gap.start)} --to {iso(gap.end)}"
            ),
        },
    )


def error_alert(status: RuleStatus, now: datetime) -> Alert:
    since = parse_time(status.error_since) if status.error_since else now
    return _self_alert(
        ERROR_RULE_ID,
        f"Rule failing in the alerting service: {status.rule_name}",
        "rule_error",
        "high",
        {"rule.id": status.rule_id, "rule.name": status.rule_name},
        since,
        now,
        {
            "error": status.error,
            "failed_runs": status.errors,
            "hint": "iiswatch alerting status; the windows are retried on every run",
        },
    )


def deadman_alert(host: str, last_seen: datetime, now: datetime, silent_for: Any) -> Alert:
    return _self_alert(
        DEADMAN_RULE_ID,
        f"No events from {host} for {format_duration(silent_for)}",
        "deadman",
        "high",
        {"host.name": host},
        last_seen,
        now,
        {
            "last_event_ingested": iso(last_seen),
            "hint": "is the agent running and can it reach the collector? iiswatch agent status",
        },
    )


def silent_hosts(
    es: Elasticsearch, settings: ServiceSettings, now: datetime
) -> list[tuple[str, datetime]]:
    """(host, last event ingested) of every host that sent events within `known_for` but
    none within `silent_for`."""
    dm = settings.deadman
    out: list[tuple[str, datetime]] = []
    after: dict[str, Any] | None = None
    while True:
        comp: dict[str, Any] = {"size": 500, "sources": [{"h": {"terms": {"field": "host.name"}}}]}
        if after:
            comp["after"] = after
        with backend_errors(es):
            resp = es.search(
                index=dm.index,
                size=0,
                query={"range": {INGESTED: {"gte": iso(now - dm.known_for), "lt": iso(now)}}},
                aggs={"hosts": {"composite": comp, "aggs": {"last": {"max": {"field": INGESTED}}}}},
                ignore_unavailable=True,
                allow_no_indices=True,
            )
        agg = resp.get("aggregations", {}).get("hosts", {})
        for b in agg.get("buckets", []):
            last = b["last"].get("value_as_string") or None
            if last is None:
                continue
            seen = parse_time(last)
            if now - seen >= dm.silent_for:
                out.append((str(b["key"]["h"]), seen))
        after = agg.get("after_key")
        if not agg.get("buckets") or after is None:
            return out


class SelfMonitor:
    """Turns the service's own trouble into alerts to `error_destinations`."""

    def __init__(self, es: Elasticsearch, settings: ServiceSettings, sink: Any) -> None:
        self.es = es
        self.settings = settings
        self.sink = sink  # the runner's AlertSink

    @property
    def destinations(self) -> list[str]:
        return list(self.settings.error_destinations)

    def gap(self, rule: Rule, gap: Window, now: datetime) -> None:
        self.sink([gap_alert(rule, gap)], self.destinations, None)

    def rule_error(self, status: RuleStatus) -> None:
        self.sink([error_alert(status, datetime.now(UTC))], self.destinations, None)

    def deadman(self, now: datetime) -> list[Alert]:
        dm = self.settings.deadman
        alerts = [
            deadman_alert(h, t, now, dm.silent_for)
            for h, t in silent_hosts(self.es, self.settings, now)
        ]
        if alerts:
            dests = dm.destinations if dm.destinations is not None else self.destinations
            self.sink(alerts, list(dests), None)
        return alerts
