"""Delivering what the outbox holds: claim a due alert, hand it to each destination it
names that has not taken it yet, record every attempt, and decide what comes next.

Backoff is exponential (tenacity): `quick_attempts` tries inside one pass for a blip, then
the alert goes back to `new` with a `next_attempt_at`, so an outage of minutes or hours
does not hold a worker and survives restarts. A destination's Retry-After is honoured.
When the round's `deadline` has passed, or a destination refused for good (4xx, a broken
template), the alert is `failed`; `retry` starts a new round for it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from iiswatch.alerting.config import AlertingConfig, DeliverySettings
from iiswatch.alerting.destinations import build
from iiswatch.alerting.destinations.base import DeliveryResult, Destination
from iiswatch.alerting.outbox import ALERTS_INDEX, LostClaim, Outbox, Record
from iiswatch.alerting.templates import Templates
from iiswatch.errors import ConfigError, DeliveryError, UsageError
from iiswatch.times import time_or_none


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DeliveryReport:
    """What one pass did with one alert."""

    alert_id: str
    status: str  # the alert's status afterwards
    results: list[DeliveryResult] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # destination -> last error
    next_attempt_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "status": self.status,
            "results": [r.as_dict() for r in self.results],
            "errors": self.errors,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
        }


def backoff(settings: DeliverySettings, attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempt + 1`: base * 2^(attempt-1), at most backoff_max, and
    no less than what the destination asked for."""
    wait = wait_exponential(
        multiplier=settings.backoff_base.total_seconds(),
        max=settings.backoff_max.total_seconds(),
    )
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = max(1, attempt)
    return max(float(wait(state)), retry_after or 0.0)


def _retryable(e: BaseException) -> bool:
    return isinstance(e, DeliveryError) and e.retryable


class Deliverer:
    """Delivers outbox alerts with one config; destinations are built once and reused."""

    def __init__(
        self,
        es: Elasticsearch,
        config: AlertingConfig,
        *,
        owner: str | None = None,
        templates: Templates | None = None,
        sleep: Callable[[float], None] = time.sleep,
        index: str = ALERTS_INDEX,
    ) -> None:
        self.outbox = Outbox(es, index)
        self.config = config
        self.settings = config.delivery
        self.owner = owner or default_owner()
        self.templates = templates or Templates.from_config(config)
        self.sleep = sleep
        self._destinations: dict[str, Destination] = {}
        self._building = threading.Lock()  # incidents are delivered from several threads

    def destination(self, name: str) -> Destination:
        with self._building:
            if name not in self._destinations:
                self._destinations[name] = build(name, self.config, self.templates)
            return self._destinations[name]

    # -- one pass -------------------------------------------------------------------------

    def deliver_pending(
        self, now: datetime | None = None, *, ids: Sequence[str] | None = None, limit: int = 50
    ) -> list[DeliveryReport]:
        """Claim and deliver due alerts (or just `ids`, read in real time: the scheduler
        passes the alerts it has just stored, which a search might not see yet)."""
        now = now or datetime.now(UTC)
        candidates = (
            list(ids)
            if ids is not None
            else [r.alert_id for r in self.outbox.due(now, limit=limit)]
        )
        reports = []
        for alert_id in candidates:
            rec = self.outbox.claim(
                alert_id, owner=self.owner, now=now, ttl=self.settings.claim_timeout
            )
            if rec is None:
                continue
            try:
                reports.append(self.deliver_claimed(rec, now))
            except LostClaim:
                continue
        return reports

    def deliver_claimed(self, rec: Record, now: datetime) -> DeliveryReport:
        """Deliver a claimed alert to each of its destinations still waiting, then settle
        its status: delivered, back to new (with the next attempt time) or failed."""
        report = DeliveryReport(rec.alert_id, rec.status)
        retry_after: float | None = None
        clock0 = time.monotonic()

        def clock() -> datetime:
            return now + timedelta(seconds=time.monotonic() - clock0)

        for name in rec.delivery.get("destinations") or []:
            state = (rec.delivery.get("states") or {}).get(name) or {}
            if state.get("status") in ("delivered", "failed"):
                continue
            rec, result, error = self._deliver_to(rec, name, clock)
            if result is not None:
                report.results.append(result)
            if error is not None:
                report.errors[name] = error.message
                if error.retryable and error.retry_after:
                    retry_after = max(retry_after or 0.0, error.retry_after)
        report.status, report.next_attempt_at, rec = self._settle(rec, clock(), retry_after)
        return report

    def _deliver_to(
        self, rec: Record, name: str, clock: Callable[[], datetime]
    ) -> tuple[Record, DeliveryResult | None, DeliveryError | None]:
        try:
            dest = self.destination(name)
        except ConfigError as e:  # the config lost this destination: nothing to retry
            err = DeliveryError(e.message, e.hint, retryable=False)
            rec = self.outbox.record_attempt(
                rec, destination=name, outcome="permanent", now=clock(), error=err.message
            )
            return rec, None, err
        alert = rec.alert
        holder: dict[str, Record] = {"rec": rec}
        deadline = self._deadline(rec)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.settings.quick_attempts:
                return True
            upcoming = state.upcoming_sleep or 0.0
            return clock() + timedelta(seconds=upcoming) >= deadline

        def wait(state: RetryCallState) -> float:
            e = state.outcome.exception() if state.outcome else None
            hint = e.retry_after if isinstance(e, DeliveryError) else None
            return backoff(self.settings, state.attempt_number, hint)

        try:
            for attempt in Retrying(
                stop=stop,
                wait=wait,
                retry=retry_if_exception(_retryable),
                sleep=self.sleep,
                reraise=True,
            ):
                with attempt:
                    result = self._attempt(holder, name, dest, alert, clock)
            return holder["rec"], result, None
        except DeliveryError as e:
            return holder["rec"], None, e

    def _attempt(
        self,
        holder: dict[str, Record],
        name: str,
        dest: Destination,
        alert: Mapping[str, Any],
        clock: Callable[[], datetime],
    ) -> DeliveryResult:
        try:
            result = dest.deliver(alert)
        except ConfigError as e:  # a missing secret, a broken template: fix, then retry
            err = DeliveryError(e.message, e.hint, retryable=False)
            holder["rec"] = self.outbox.record_attempt(
                holder["rec"], destination=name, outcome="permanent", now=clock(), error=e.message
            )
            raise err from e
        except DeliveryError as e:
            holder["rec"] = self.outbox.record_attempt(
                holder["rec"],
                destination=name,
                outcome="retryable" if e.retryable else "permanent",
                now=clock(),
                error=e.message,
                detail=e.detail,
            )
            raise
        holder["rec"] = self.outbox.record_attempt(
            holder["rec"],
            destination=name,
            outcome="delivered",
            now=clock(),
            action=result.action,
            ticket_id=result.ticket_id,
            url=result.url,
            detail=result.detail,
        )
        return result

    def _deadline(self, rec: Record) -> datetime:
        since = time_or_none(rec.delivery.get("since")) or datetime.now(UTC)
        return since + self.settings.deadline

    def _settle(
        self, rec: Record, now: datetime, retry_after: float | None
    ) -> tuple[str, datetime | None, Record]:
        states = rec.delivery.get("states") or {}
        names = rec.delivery.get("destinations") or []
        status = {n: (states.get(n) or {}).get("status") for n in names}
        if all(s == "delivered" for s in status.values()):
            return "delivered", None, self.outbox.mark_delivered(rec, now)
        pending = [n for n, s in status.items() if s not in ("delivered", "failed")]
        attempts = max((int((states.get(n) or {}).get("attempts", 0)) for n in pending), default=0)
        if pending and attempts < self.settings.max_attempts:
            nxt = now + timedelta(seconds=backoff(self.settings, attempts, retry_after))
            if nxt < self._deadline(rec):
                return "new", nxt, self.outbox.mark_pending(rec, now, nxt)
        why = "; ".join(
            f"{n}: {(states.get(n) or {}).get('error') or 'not delivered'}"
            for n, s in status.items()
            if s != "delivered"
        )
        if pending:
            why = f"gave up after {attempts} attempt(s) (deadline or max_attempts): {why}"
        return "failed", None, self.outbox.mark_failed(rec, now, why)


def deliver_pending(
    es: Elasticsearch,
    config: AlertingConfig,
    now: datetime | None = None,
    **kwargs: Any,
) -> list[DeliveryReport]:
    """One delivery pass over the outbox with a fresh Deliverer (see Deliverer)."""
    ids = kwargs.pop("ids", None)
    limit = kwargs.pop("limit", 50)
    return Deliverer(es, config, **kwargs).deliver_pending(now, ids=ids, limit=limit)


def retry(
    es: Elasticsearch,
    config: AlertingConfig,
    alert_id: str,
    now: datetime | None = None,
    *,
    index: str = ALERTS_INDEX,
) -> DeliveryReport | None:
    """Replay a failed alert now (a new round, a new deadline); None if another process
    claimed it first."""
    now = now or datetime.now(UTC)
    deliverer = Deliverer(es, config, index=index)
    deliverer.outbox.requeue(alert_id, now)
    reports = deliverer.deliver_pending(now, ids=[alert_id])
    return reports[0] if reports else None


def resolve(
    es: Elasticsearch,
    config: AlertingConfig,
    alert_id: str,
    now: datetime | None = None,
    *,
    index: str = ALERTS_INDEX,
) -> list[str]:
    """Resolve the tickets an alert opened (destinations that can) and mark it resolved;
    the ticket ids resolved."""
    now = now or datetime.now(UTC)
    deliverer = Deliverer(es, config, index=index)
    rec = deliverer.outbox.get(alert_id)
    if rec is None:
        raise UsageError(f"no alert {alert_id}", "`iiswatch alerts list` shows the ids")
    done = []
    for t in rec.delivery.get("tickets") or []:
        dest = deliverer.destination(t["destination"])
        resolver = getattr(dest, "resolve", None)
        if resolver is not None and t.get("id"):
            resolver(t["id"])
            done.append(str(t["id"]))
    deliverer.outbox.mark_resolved(rec, now)
    return done
