"""Replay a rule over history exactly as the scheduler would run it: every
`schedule.interval` a window reaching `interval + lookback` back, exceptions and
suppression applied, state carried from one window to the next. The result predicts the
tickets a rule would have opened, before anyone enables it.

Two ways to get there, with the same alerts (tests/integration/test_backtest_paths.py):
- the replay (iiswatch/rules/replay.py): a few requests over the whole range, the windows
  computed from them; every rule type, when its schedule fits whole milliseconds;
- window by window (`exact=True`, or a schedule the replay cannot bin): one `evaluate` per
  window, as the scheduler calls it. Windows without a single event of the rule cannot
  raise anything and leave the state as it was, so they are skipped: a date histogram
  (composite, paged) says which ones have events.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.rules.alert import Alert, group_key
from iiswatch.rules.evaluate import evaluate
from iiswatch.rules.model import Rule
from iiswatch.rules.query import Query, hits_query
from iiswatch.rules.replay import Replay, path_for, replay
from iiswatch.rules.suppression import MemoryState


@dataclass
class BacktestResult:
    rule: Rule
    start: datetime
    end: datetime
    windows: int  # windows the scheduler would have run
    evaluated: int  # of those, windows with events of the rule (the others cannot alert)
    hits_per_day: dict[str, int]  # events the rule's query matched, exceptions applied
    alerts: list[Alert] = field(default_factory=list)
    suppressed: int = 0  # alerts suppression kept from becoming tickets
    path: str = "windows"  # how it was replayed: windows, binned or joined (replay.py)

    @property
    def hits(self) -> int:
        return sum(self.hits_per_day.values())

    def alerts_per_day(self) -> dict[str, int]:
        days = Counter(a.window_end.astimezone(UTC).date().isoformat() for a in self.alerts)
        return {d: days.get(d, 0) for d in self.hits_per_day}

    def top_groups(self, n: int = 10) -> list[tuple[dict[str, Any], int, int]]:
        """(group, alerts, events) for the groups behind the most alerts."""
        alerts: Counter[str] = Counter()
        events: Counter[str] = Counter()
        groups: dict[str, dict[str, Any]] = {}
        for a in self.alerts:
            k = group_key(a.group)
            groups[k] = a.group
            alerts[k] += 1
            events[k] += a.event_count
        return [(groups[k], c, events[k]) for k, c in alerts.most_common(n)]

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": {"id": self.rule.rule_id, "name": self.rule.name},
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "path": self.path,
            "windows": self.windows,
            "evaluated": self.evaluated,
            "hits": self.hits,
            "alerts": len(self.alerts),
            "suppressed": self.suppressed,
            "per_day": [
                {"day": d, "hits": h, "alerts": self.alerts_per_day()[d]}
                for d, h in self.hits_per_day.items()
            ],
            "top_groups": [{"group": g, "alerts": a, "events": e} for g, a, e in self.top_groups()],
        }


def windows(rule: Rule, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The scheduler's windows over [start, end): one run every `interval`, each looking
    `interval + lookback` back, none reaching before `start`."""
    step = rule.schedule.interval
    reach = step + rule.schedule.lookback
    out = []
    tick = start + step
    while True:
        t = min(tick, end)
        out.append((max(start, t - reach), t))
        if t >= end:
            return out
        tick += step


def _search(es: Elasticsearch, index: str, **body: Any) -> dict[str, Any]:
    with backend_errors(es):
        resp = es.search(index=index, ignore_unavailable=True, allow_no_indices=True, **body)
    return dict(resp.body)


def _busy_buckets(
    es: Elasticsearch, index: str, query: Query, time_field: str, width: timedelta
) -> list[int]:
    """Start (epoch ms) of each `width` bucket holding at least one event, ascending."""
    seconds = max(1, int(width.total_seconds()))
    out: list[int] = []
    after: dict[str, Any] | None = None
    while True:
        comp: dict[str, Any] = {
            "size": 1000,
            "sources": [
                {"t": {"date_histogram": {"field": time_field, "fixed_interval": f"{seconds}s"}}}
            ],
        }
        if after is not None:
            comp["after"] = after
        resp = _search(es, index, size=0, query=query, aggs={"b": {"composite": comp}})
        agg = resp.get("aggregations", {}).get("b", {})
        buckets = agg.get("buckets", [])
        out.extend(int(b["key"]["t"]) for b in buckets)
        after = agg.get("after_key")
        if not buckets or after is None:
            return out


def _hits_per_day(
    es: Elasticsearch, index: str, query: Query, time_field: str, start: datetime, end: datetime
) -> dict[str, int]:
    resp = _search(
        es,
        index,
        size=0,
        query=query,
        aggs={
            "d": {
                "date_histogram": {
                    "field": time_field,
                    "calendar_interval": "1d",
                    "time_zone": "UTC",
                    "min_doc_count": 0,
                    "extended_bounds": {
                        "min": int(start.timestamp() * 1000),
                        "max": int((end - timedelta(milliseconds=1)).timestamp() * 1000),
                    },
                }
            }
        },
    )
    out = {}
    for b in resp.get("aggregations", {}).get("d", {}).get("buckets", []):
        day = datetime.fromtimestamp(b["key"] / 1000, UTC).date().isoformat()
        out[day] = int(b["doc_count"])
    return out


def backtest(
    es: Elasticsearch,
    rule: Rule,
    start: datetime,
    end: datetime,
    *,
    time_field: str = "@timestamp",
    index: str | None = None,
    now: datetime | None = None,
    on_window: Callable[[int, int], None] | None = None,
    exact: bool = False,
) -> BacktestResult:
    """Replay `rule` over [start, end). `on_window(done, total)` reports progress. With
    `exact`, every rule is evaluated window by window (the reference the replay is tested
    against); otherwise the rules replay.py knows are replayed from a few requests."""
    idx = index or rule.index
    today: date = (now or datetime.now(UTC)).date()
    all_windows = windows(rule, start, end)
    hits = hits_query(rule, start, end, time_field=time_field, today=today)
    per_day = _hits_per_day(es, idx, hits, time_field, start, end)
    path = "windows" if exact else path_for(rule)
    if path != "windows":
        state = MemoryState()
        result = BacktestResult(rule, start, end, len(all_windows), 0, per_day, path=path)
        if sum(per_day.values()):
            run = Replay(
                es, rule, start, end, all_windows, time_field, idx, now, today, state, on_window
            )
            result.alerts, result.evaluated = replay(run)
        result.suppressed = state.suppressed(rule.rule_id)
        return result
    width = rule.schedule.interval
    busy = _busy_buckets(es, idx, hits, time_field, width) if sum(per_day.values()) else []
    width_ms = int(width.total_seconds() * 1000)

    def active(a: datetime, b: datetime) -> bool:
        lo, hi = int(a.timestamp() * 1000), int(b.timestamp() * 1000)
        i = bisect.bisect_right(busy, lo - width_ms)  # first bucket that may end after lo
        return i < len(busy) and busy[i] < hi

    state = MemoryState()
    result = BacktestResult(rule, start, end, len(all_windows), 0, per_day)
    for n, (a, b) in enumerate(all_windows, start=1):
        if active(a, b):
            result.evaluated += 1
            result.alerts.extend(
                evaluate(es, rule, a, b, time_field=time_field, now=now, index=idx, state=state)
            )
        if on_window is not None:
            on_window(n, len(all_windows))
    result.suppressed = state.suppressed(rule.rule_id)
    return result
