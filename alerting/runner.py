"""One run of one rule: plan its ingest-time windows from the ledger, evaluate each with the
shared engine (`iiswatch.rules.evaluate`), put the alerts in the outbox, then commit state
and ledger — in that order, so a crash at any point re-evaluates the window and the
deterministic alert ids keep the outbox from getting a second copy.

What a window `[s, e)` evaluates (L = the rule's `schedule.lookback`):

    event.ingested in [s - L, e)   and   (event.ingested >= s  or  @timestamp >= s - L)

- the *new* events: ingested in `[s, e)`, whatever their `@timestamp` — each event is new in
  exactly one window, so a late line (IIS buffering, an agent's backlog of hours) is
  evaluated once;
- the *context*: events ingested in the previous L that also happened within L of `s`, so a
  burst split over two windows still reaches a threshold or completes a sequence; a backlog
  of old events is not context again. Alerts the context alone would repeat are dropped by
  the engine's state (their newest `event.ingested` is not newer than what was alerted).

`new_terms` rules take no `@timestamp` condition (their history query must stay whole).
The engine runs with `time_field="event.ingested"`; an alert's window is `[s - L, e)` on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.alerting.ledger import Ledger
from iiswatch.alerting.service_config import ServiceSettings
from iiswatch.alerting.sink import AlertSink
from iiswatch.alerting.state import EsState
from iiswatch.alerting.status import RuleStatus, StatusStore, WindowOutcome, count_hits
from iiswatch.alerting.windows import Plan, Window, plan
from iiswatch.rules.alert import Alert
from iiswatch.rules.evaluate import evaluate
from iiswatch.rules.model import Rule
from iiswatch.rules.query import Query, own_query
from iiswatch.rules.suppression import MemoryState
from iiswatch.times import iso

log = logging.getLogger(__name__)

INGESTED = "event.ingested"
EVENT_TIME = "@timestamp"


def context_clause(w: Window, rule: Rule) -> Query:
    """New events of the window, or events that happened within the look-back of it."""
    since = w.start - rule.schedule.lookback
    return {
        "bool": {
            "should": [
                {"range": {INGESTED: {"gte": iso(w.start)}}},
                {"range": {EVENT_TIME: {"gte": iso(since)}}},
            ],
            "minimum_should_match": 1,
        }
    }


def window_rule(rule: Rule, w: Window) -> Rule:
    """The rule as evaluated for `w`: its query narrowed by the context clause."""
    if rule.type == "new_terms":
        return rule
    clause = context_clause(w, rule)
    own = own_query(rule)
    query = clause if own is None else {"bool": {"filter": [own, clause]}}
    return rule.model_copy(update={"query": query, "lucene": None})


def destinations_of(rule: Rule, default: Sequence[str] = ()) -> list[str]:
    """The rule's own `alert.destinations`, else the service's default ones."""
    return list(rule.alert.destinations or default)


def evaluate_ingest_window(
    es: Elasticsearch,
    rule: Rule,
    w: Window,
    now: datetime,
    state: EsState | MemoryState,
    *,
    index: str | None = None,
    on_alerts: Callable[[list[Alert]], None] | None = None,
) -> tuple[WindowOutcome, list[Alert]]:
    """The alerts of `rule` for the ingest-time window `w` (module docstring), with the
    counts that say why nothing fired. Writes nothing but through `state`, and `on_alerts`
    (given the alerts before the counting, which only explains the outcome, so that
    storing them does not wait for it)."""
    t0 = time.monotonic()
    evaluated = window_rule(rule, w)
    start = w.start - rule.schedule.lookback
    alerts = evaluate(
        es, evaluated, start, w.end, time_field=INGESTED, now=now, index=index, state=state
    )
    if alerts and on_alerts is not None:
        on_alerts(alerts)
    # hits: the window's new events only (context events were counted in their own window)
    hits, excepted = count_hits(
        es, rule, w.start, w.end, time_field=INGESTED, today=now.date(), index=index
    )
    outcome = WindowOutcome(hits=hits, excepted=excepted, alerts=len(alerts))
    if isinstance(state, EsState):
        outcome.found = state.found(rule.rule_id)
        outcome.suppressed = state.newly_suppressed(rule.rule_id)
    else:
        outcome.found = len(alerts)
    outcome.duration_ms = int((time.monotonic() - t0) * 1000)
    return outcome.decide(), alerts


@dataclass
class RunResult:
    rule_id: str
    windows: list[tuple[Window, WindowOutcome]] = field(default_factory=list)
    gap: Window | None = None
    alerts: list[Alert] = field(default_factory=list)
    error: str | None = None
    left: int = 0  # the gap and windows left undone because `keep_going` said stop


class RuleRunner:
    """Evaluates rules window by window; shared by the service and `oneshot`."""

    def __init__(
        self,
        es: Elasticsearch,
        settings: ServiceSettings,
        sink: AlertSink,
        *,
        self_alerts: Any = None,  # deadman.SelfMonitor: gap and error alerts
        index: str | None = None,
        on_stored: Callable[[], None] | None = None,  # a window's alerts are in the sink
    ) -> None:
        self.es = es
        self.settings = settings
        self.sink = sink
        self.on_stored = on_stored
        self.ledger = Ledger(es)
        self.status = StatusStore(es)
        self.self_alerts = self_alerts
        self.index = index

    def plan(self, rule: Rule, now: datetime, first: datetime | None = None) -> Plan:
        """The rule's next windows; a rule never run gets its cursor now, so anything
        after this point is a window (or a gap) and nothing goes unaccounted."""
        cursor = self.ledger.cursor(rule.rule_id)
        p = plan(
            cursor,
            now,
            interval=rule.schedule.interval,
            settle=self.settings.settle,
            catch_up=self.settings.catch_up,
            first=first,
        )
        if cursor is None and p.start is not None:
            self.ledger.advance(rule.rule_id, p.start)
        return p

    def run(
        self,
        rule: Rule,
        *,
        now: datetime | None = None,
        keep_going: Callable[[], bool] = lambda: True,
        first: datetime | None = None,
    ) -> RunResult:
        """Evaluate every settled window the rule has not done yet (gap reported first).
        `keep_going` is asked before each window: shutdown or a lost lease stops between
        windows, never inside one. `first`: when the rule appeared (its file's mtime), where
        a rule never run before starts. Errors are recorded (status, an error alert) and leave
        the cursor where it was, so the window is tried again on the next run."""
        now = now or datetime.now(UTC)
        started = time.monotonic()
        result = RunResult(rule.rule_id)
        status = self.status.get(rule.rule_id) or RuleStatus(rule.rule_id, rule.name)
        status.rule_name = rule.name
        try:
            p = self.plan(rule, now, first)
            # the gap first: a window recorded after an unreported gap would hide it
            steps = ([(p.gap, True)] if p.gap is not None else []) + [(w, False) for w in p.windows]
            for done, (w, gap) in enumerate(steps):
                if not keep_going():
                    result.left = len(steps) - done
                    break
                if gap:
                    self._report_gap(rule, w, now)
                    result.gap = w
                    continue
                if self.ledger.recorded(rule.rule_id, w):  # recorded, cursor not moved: a crash
                    self.ledger.advance(rule.rule_id, w.end)
                    continue
                outcome, alerts = self.evaluate_window(rule, w, now)
                result.windows.append((w, outcome))
                result.alerts.extend(alerts)
        except Exception as e:  # any failure of a run becomes status and an alert
            log.exception("rule %s (%s) failed", rule.name, rule.rule_id)
            result.error = f"{type(e).__name__}: {getattr(e, 'message', None) or e}"
        self._update_status(status, result, now, started)
        return result

    def evaluate_window(
        self, rule: Rule, w: Window, now: datetime
    ) -> tuple[WindowOutcome, list[Alert]]:
        """Evaluate, store the alerts, then commit state and the ledger record."""
        t0 = time.monotonic()
        started = iso(datetime.now(UTC))
        state = EsState(self.es)

        def store(alerts: list[Alert]) -> None:
            self.sink(alerts, destinations_of(rule, self.settings.default_destinations), rule)
            if self.on_stored is not None:
                self.on_stored()

        outcome, alerts = evaluate_ingest_window(
            self.es, rule, w, now, state, index=self.index, on_alerts=store
        )
        state.flush()  # only now: the alerts are safe in the outbox
        outcome.duration_ms = int((time.monotonic() - t0) * 1000)
        record = {"rule": {"id": rule.rule_id, "name": rule.name}, "started": started}
        self.ledger.record(rule.rule_id, w, record | outcome.as_doc())
        return outcome, alerts

    def _report_gap(self, rule: Rule, gap: Window, now: datetime) -> None:
        if not self.ledger.recorded(rule.rule_id, gap, gap=True):
            log.warning(
                "rule %s: ingest time %s .. %s is beyond the catch-up limit: reporting a gap",
                rule.name,
                iso(gap.start),
                iso(gap.end),
            )
            if self.self_alerts is not None:
                self.self_alerts.gap(rule, gap, now)
        self.ledger.record(
            rule.rule_id, gap, {"rule": {"id": rule.rule_id, "name": rule.name}}, gap=True
        )

    def _update_status(
        self, status: RuleStatus, result: RunResult, now: datetime, started: float
    ) -> None:
        status.last_run = iso(now)
        status.duration_ms = int((time.monotonic() - started) * 1000)
        status.windows = len(result.windows)
        totals = dict(status.totals)
        if result.windows:
            last_w = result.windows[-1][0]
            outcomes = [o for _, o in result.windows]
            status.window_end = iso(last_w.end)
            status.lag_seconds = round((now - last_w.end).total_seconds(), 3)
            status.hits = sum(o.hits for o in outcomes)
            status.excepted = sum(o.excepted for o in outcomes)
            status.alerts = sum(o.alerts for o in outcomes)
            status.suppressed = sum(o.suppressed for o in outcomes)
            status.reason = _summary_reason(outcomes)
            for k in ("hits", "alerts", "suppressed", "excepted"):
                totals[k] = totals.get(k, 0) + getattr(status, k)
            totals["windows"] = totals.get("windows", 0) + len(outcomes)
        elif result.error is None:
            status.reason = "idle"
        if result.gap is not None:
            totals["gaps"] = totals.get("gaps", 0) + 1
        if result.error is not None:
            status.errors += 1
            status.error = result.error
            status.error_since = status.error_since or iso(now)
            status.reason = "error"
            totals["errors"] = totals.get("errors", 0) + 1
            if self.self_alerts is not None:
                try:
                    self.self_alerts.rule_error(status)
                except Exception:
                    log.exception("could not raise the error alert for %s", status.rule_id)
        else:
            status.errors = 0
            status.error_since = None
        status.totals = totals
        try:
            self.status.put(status)
        except Exception:
            log.exception("could not record the status of rule %s", status.rule_id)


def _summary_reason(outcomes: list[WindowOutcome]) -> Any:
    order = ["alerted", "suppressed", "already alerted", "below condition", "excepted"]
    reasons = {o.reason for o in outcomes}
    for r in order:
        if r in reasons:
            return r
    return "no hits"
