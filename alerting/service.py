"""`iiswatch alerting run`: the scheduler. APScheduler 3 runs one job per enabled rule at its
interval (jitter, `max_instances=1`, coalescing), plus the lease, the rule-file watcher,
delivery and the deadman check. The jobs hold no state of their own: windows, suppression,
alerts and the lease live in Elasticsearch, so a restart (or the standby) continues where
the last run stopped.

Rule jobs fire `settle` after each window boundary (windows are aligned to the interval),
so a window is evaluated as soon as it can be. Only the lease holder evaluates and
delivers; a standby's jobs return at once. SIGTERM/SIGINT: no new window is started, the
window being evaluated is finished (or, if the process is killed, evaluated again by the
next leader: alert ids are deterministic), the lease is released. SIGHUP: reload rules now.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from elasticsearch import Elasticsearch

from iiswatch.alerting.autoresolve import auto_resolve
from iiswatch.alerting.config import AlertingConfig
from iiswatch.alerting.deadman import SelfMonitor
from iiswatch.alerting.incident_sink import make_sink
from iiswatch.alerting.lease import Lease
from iiswatch.alerting.runner import RuleRunner, RunResult
from iiswatch.alerting.service_config import ServiceSettings
from iiswatch.alerting.windows import next_run
from iiswatch.rules.loader import Problem, rule_files, scan_rules
from iiswatch.rules.model import Rule

log = logging.getLogger(__name__)


def enabled(rules: list[Rule], settings: ServiceSettings) -> list[Rule]:
    off = {d.lower() for d in settings.disabled}
    return [r for r in rules if r.enabled and r.rule_id not in off and r.name.lower() not in off]


def rule_jitter(rule: Rule, jitter: timedelta) -> timedelta:
    """The random delay of a rule's runs. Jitter spreads the load of many rules due at the
    same boundary; a rule that opens an incident at once is one small query whose whole
    point is a ticket within seconds, so it runs on the boundary (+ settle) exactly. Other
    rules: the service's jitter, at most a quarter of the interval."""
    if rule.opens_incident == "always":
        return timedelta(0)
    return min(jitter, rule.schedule.interval / 4)


@dataclass
class RuleSet:
    """The rules in force and the file state they were loaded from."""

    rules: dict[str, Rule]
    mtimes: dict[Path, float]
    since: dict[str, datetime] = field(default_factory=dict)  # rule id -> its file's mtime


def snapshot(root: Path) -> dict[Path, float]:
    out = {}
    for p in rule_files(root):
        try:
            out[p] = p.stat().st_mtime
        except OSError:
            continue
    return out


def load_ruleset(root: Path, settings: ServiceSettings) -> tuple[RuleSet, list[Problem]]:
    mtimes = snapshot(root)
    loaded, problems = scan_rules(root)
    rules = {r.rule_id: r for r in enabled([lr.rule for lr in loaded], settings)}
    since = {
        lr.rule.rule_id: datetime.fromtimestamp(mtimes[lr.path], UTC)
        for lr in loaded
        if lr.path in mtimes
    }
    return RuleSet(rules, mtimes, since), [p for p in problems if p.severity == "error"]


class AlertingService:
    def __init__(
        self,
        es: Elasticsearch,
        config: AlertingConfig,
        settings: ServiceSettings,
        rules_dir: Path,
        *,
        holder: str | None = None,
    ) -> None:
        self.es = es
        self.config = config
        self.settings = settings
        self.rules_dir = rules_dir
        self.lease = Lease(es, settings.lease_name, ttl=settings.lease_ttl, holder=holder)
        self.sink = make_sink(es, config, settings, owner=self.lease.holder)
        self.monitor = SelfMonitor(es, settings, self.sink)
        # delivery starts as soon as a window's alerts are stored, not after the run's
        # bookkeeping (state, ledger, status), which would add their round trips to a ticket
        self.runner = RuleRunner(
            es, settings, self.sink, self_alerts=self.monitor, on_stored=self._alerts_stored
        )
        self.ruleset = RuleSet({}, {})
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._leading = False
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=8)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        ruleset, problems = load_ruleset(self.rules_dir, self.settings)
        for p in problems:
            log.error("%s", p)
        if problems:
            from iiswatch.errors import RuleError

            raise RuleError(
                f"{len(problems)} problem(s) in the rule files",
                [str(p) for p in problems],
                hint="fix them, then `iiswatch rules validate`",
            )
        self._lease_job()
        s = self.settings
        self.scheduler.add_job(
            self._lease_job, IntervalTrigger(seconds=self.lease.renew_every), id="lease"
        )
        self.scheduler.add_job(
            self._reload_job,
            IntervalTrigger(seconds=s.reload_poll.total_seconds()),
            id="reload",
        )
        self.scheduler.add_job(
            self._deliver_job,
            IntervalTrigger(seconds=s.deliver_every.total_seconds()),
            id="deliver",
        )
        if s.auto_resolve_after is not None:
            self.scheduler.add_job(
                self._auto_resolve_job,
                IntervalTrigger(seconds=max(1.0, s.deliver_every.total_seconds() * 10)),
                id="auto-resolve",
            )
        if s.deadman.enabled:
            self.scheduler.add_job(
                self._deadman_job,
                IntervalTrigger(seconds=s.deadman.every.total_seconds()),
                id="deadman",
                next_run_time=datetime.now(UTC) + timedelta(seconds=5),
            )
        self._apply(ruleset)
        self.scheduler.start()
        log.info(
            "alerting service started: %d rule(s) from %s, lease %r as %s",
            len(ruleset.rules),
            self.rules_dir,
            s.lease_name,
            self.lease.holder,
        )

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT; SIGHUP reloads the rules."""
        self._install_signals()
        self.start()
        try:
            while not self._stop.wait(0.5):
                if self._reload.is_set():
                    self._reload.clear()
                    self._reload_job(force=True)
        finally:
            self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        """Finish the windows being evaluated (no new ones start), then release the lease."""
        self._stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        try:
            self.lease.release()
        except Exception:
            log.exception("could not release the lease")
        log.info("alerting service stopped")

    def run_once(self) -> dict[str, RunResult]:
        """One pass (`alerting run --once`): take the lease if it is free, evaluate every
        rule's settled windows, deliver, release. No lease job runs beside the pass, so it
        renews the lease between windows (`Lease.hold`): a pass longer than `lease_ttl` (a
        catch-up, a loaded machine) would otherwise stop when the TTL ran out. A rule whose
        result has `left` > 0 was stopped because the lease was lost."""
        ruleset, problems = load_ruleset(self.rules_dir, self.settings)
        if problems:
            from iiswatch.errors import RuleError

            raise RuleError(
                f"{len(problems)} problem(s) in the rule files", [str(p) for p in problems]
            )
        if not self.lease.tick():
            from iiswatch.errors import UsageError

            info = self.lease.info()
            raise UsageError(
                f"another alerting service holds the lease {self.settings.lease_name!r}"
                + (f" ({info.holder})" if info else ""),
                "it does this work already; stop it first, or use another lease_name",
            )
        try:
            results = {
                rid: self.runner.run(rule, keep_going=self.lease.hold, first=ruleset.since.get(rid))
                for rid, rule in ruleset.rules.items()
            }
            if self.settings.deadman.enabled:
                self.monitor.deadman(datetime.now(UTC))
            self.sink.deliver()
            return results
        finally:
            self.lease.release()

    # -- jobs -----------------------------------------------------------------------------

    def _lease_job(self) -> None:
        try:
            leading = self.lease.tick()
        except Exception as e:
            leading = False
            log.warning("lease: %s", getattr(e, "message", e))
        if leading != self._leading:
            log.info("%s the lease %r", "holding" if leading else "lost", self.settings.lease_name)
            self._leading = leading

    def _keep_going(self) -> bool:
        return not self._stop.is_set() and self.lease.is_leader()

    def _rule_job(self, rule_id: str) -> None:
        rule = self.ruleset.rules.get(rule_id)
        if rule is None or not self._keep_going():
            return
        result = self.runner.run(
            rule, keep_going=self._keep_going, first=self.ruleset.since.get(rule_id)
        )
        if result.gap is not None or result.error is not None:
            self._wake("deliver")

    def _alerts_stored(self) -> None:
        if self.scheduler.running:
            self._wake("deliver")

    def _deliver_job(self) -> None:
        # a wake-up while a pass runs is skipped by the scheduler (one instance at a time),
        # so the pass goes again at once for what was stored meanwhile
        while self._keep_going():
            try:
                self.sink.deliver()
            except Exception:
                log.exception("delivery pass failed")
                return
            if not self.sink.has_fresh():
                return

    def _auto_resolve_job(self) -> None:
        after = self.settings.auto_resolve_after
        if after is None or not self._keep_going():
            return
        try:
            done = auto_resolve(self.es, self.config, after, datetime.now(UTC))
            if done:
                log.info("auto-resolved %d alert(s) quiet for %s", len(done), after)
        except Exception:
            log.exception("auto-resolve pass failed")

    def _deadman_job(self) -> None:
        if not self._keep_going():
            return
        try:
            if self.monitor.deadman(datetime.now(UTC)):
                self._wake("deliver")
        except Exception:
            log.exception("deadman check failed")

    def _reload_job(self, force: bool = False) -> None:
        try:
            current = snapshot(self.rules_dir)
        except Exception:
            log.exception("cannot list the rule files in %s", self.rules_dir)
            return
        if not force and current == self.ruleset.mtimes:
            return
        ruleset, problems = load_ruleset(self.rules_dir, self.settings)
        if problems:
            for p in problems:
                log.error("%s", p)
            log.error(
                "rule files have problems: keeping the %d rule(s) in force", len(self.ruleset.rules)
            )
            self.ruleset.mtimes = current  # report once per change, not every poll
            return
        self._apply(ruleset)

    def _apply(self, new: RuleSet) -> None:
        """Add, replace and remove rule jobs so they match `new`."""
        old = self.ruleset.rules
        for rid in old.keys() - new.rules.keys():
            self.scheduler.remove_job(f"rule:{rid}")
            log.info("rule removed: %s", old[rid].name)
        for rid, rule in new.rules.items():
            if rid in old and old[rid] == rule:
                continue
            interval = rule.schedule.interval
            jitter = rule_jitter(rule, self.settings.jitter).total_seconds()
            self.scheduler.add_job(
                self._rule_job,
                IntervalTrigger(
                    seconds=interval.total_seconds(),
                    start_date=next_run(datetime.now(UTC), interval, self.settings.settle),
                    jitter=jitter or None,
                    timezone=UTC,
                ),
                args=[rid],
                id=f"rule:{rid}",
                name=rule.name,
                replace_existing=True,
            )
            if old:
                log.info("rule %s: %s", "changed" if rid in old else "added", rule.name)
        self.ruleset = new

    def _wake(self, job_id: str) -> None:
        job = self.scheduler.get_job(job_id)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping after the current window", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if hasattr(signal, "SIGHUP"):  # not on Windows
            signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
