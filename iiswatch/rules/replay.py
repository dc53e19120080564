"""The backtest's fast path: the scheduler's windows replayed from a few requests over the
whole range instead of one evaluation per window, with the same alerts as `evaluate`.

- match, threshold, cardinality, new_terms ("binned"): what a window raises depends only on
  per-group counts (for cardinality, the set of distinct values; for new_terms, whether the
  term was seen in the history before the window). One paged composite aggregation over the
  range (for new_terms, from the first window's history on) returns, per group and per time
  bin, the count and the first and last event time. Bins are gcd(interval, lookback) wide
  and start at the range's start, so every window is a whole number of bins and its counts
  are sums. The candidates go through the same suppression state machine as the
  scheduler's (`apply_suppression`); only the alerts it lets through are then described by
  Elasticsearch (client IPs, samples), one request per window that alerts.
- sequence ("joined"): each step's events are fetched once for the whole range (a point in
  time and `search_after`); every window is joined in memory from its slice of them, as
  `evaluate` joins the events it fetches for that window.
- anything else (a schedule or history that is not a whole number of bins): window by
  window.

A window this cannot compute exactly (the last one when the range is not a whole number of
bins; a cardinality group past the precision threshold, where Elasticsearch's count is an
estimate; a sequence window with more events than `evaluate` fetches) is evaluated by
`evaluate` itself, on the same suppression state.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.rules.alert import Alert, alert_id, group_key
from iiswatch.rules.evaluate import (
    MAX_STEP_EVENTS,
    StepEvent,
    chosen_alerts,
    composite_buckets,
    evaluate,
    sequence_alerts,
    step_event,
    step_sort,
)
from iiswatch.rules.model import Rule
from iiswatch.rules.query import window_query
from iiswatch.rules.suppression import MemoryState, apply_suppression
from iiswatch.times import format_duration, iso

PAGE = 10000  # composite buckets / hits per request
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)

Window = tuple[datetime, datetime]


def path_for(rule: Rule) -> str:
    """How `backtest` replays `rule`: "binned", "joined", or "windows" (one evaluation per
    window, the scheduler's own way)."""
    width = bin_ms(rule)
    if rule.type in ("match", "threshold", "cardinality") and width is not None:
        return "binned"
    if (
        rule.new_terms is not None
        and width is not None
        and not rule.new_terms.history % (width * MS)
    ):
        return "binned"
    if rule.type == "sequence":
        return "joined"
    return "windows"


def bin_ms(rule: Rule) -> int | None:
    """Bin width in ms: every window edge is a multiple of it from the range's start (None
    when interval or lookback is not a whole number of milliseconds)."""
    step, back = rule.schedule.interval, rule.schedule.lookback
    if step % MS or back % MS:
        return None
    return math.gcd(step // MS, back // MS)


def to_ms(t: datetime) -> int:
    """Epoch milliseconds, truncated as `iso` truncates (queries and alert ids use `iso`)."""
    return (t - EPOCH) // MS


def _ms_time(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value) / 1000, UTC)  # as evaluate reads min/max


@dataclass
class Replay:
    """Inputs shared by both replays."""

    es: Elasticsearch
    rule: Rule
    start: datetime
    end: datetime
    windows: list[Window]
    time_field: str
    index: str
    now: datetime | None
    today: date
    state: MemoryState = field(default_factory=MemoryState)
    on_window: Callable[[int, int], None] | None = None

    def search(self, **body: Any) -> dict[str, Any]:
        with backend_errors(self.es):
            resp = self.es.search(
                index=self.index, ignore_unavailable=True, allow_no_indices=True, **body
            )
        return dict(resp.body)

    def exact(self, a: datetime, b: datetime) -> list[Alert]:
        """One window evaluated the scheduler's way, on the shared state."""
        return evaluate(
            self.es,
            self.rule,
            a,
            b,
            time_field=self.time_field,
            now=self.now,
            index=self.index,
            state=self.state,
        )

    def progress(self, n: int) -> None:
        if self.on_window is not None:
            self.on_window(n, len(self.windows))


def replay(r: Replay) -> tuple[list[Alert], int]:
    """(alerts, windows with events) for a rule whose `path_for` is binned or joined."""
    if path_for(r.rule) == "binned":
        return _replay_binned(r)
    if path_for(r.rule) == "joined":
        return _replay_joined(r)
    raise ValueError(f"rule type {r.rule.type} is replayed window by window")


# -- binned: match, threshold, cardinality --------------------------------------------------


@dataclass
class _Tally:
    """One group in one window: events, first and last event time (epoch ms, as floats
    from Elasticsearch), and for cardinality the distinct values seen."""

    group: dict[str, Any]
    count: int = 0
    first: float = math.inf
    last: float = -math.inf
    values: set[Any] = field(default_factory=set)


def _binned_buckets(
    r: Replay, width: int, value_field: str | None = None
) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(bin index, group, bucket) for every non-empty bin of every group over the range;
    with `value_field`, one bucket per value of it too (no times then)."""
    fields = r.rule.group_fields
    start_ms = to_ms(r.start)
    nt = r.rule.new_terms
    # new_terms: the history before the first window too; terms need every field
    since = r.start - nt.history if nt is not None else r.start
    sources: list[dict[str, Any]] = [
        {
            "t": {
                "date_histogram": {
                    "field": r.time_field,
                    "fixed_interval": f"{width}ms",
                    "offset": f"{start_ms % width}ms",
                }
            }
        }
    ]
    sources += [
        {f"g{i}": {"terms": {"field": f, "missing_bucket": nt is None}}}
        for i, f in enumerate(fields)
    ]
    aggs: dict[str, Any] = {}
    if value_field is None:
        aggs = {"first": {"min": {"field": r.time_field}}, "last": {"max": {"field": r.time_field}}}
    else:
        sources.append({"v": {"terms": {"field": value_field, "missing_bucket": True}}})
    query = window_query(r.rule, since, r.end, time_field=r.time_field, today=r.today)
    for b in composite_buckets(r.search, query, sources, aggs):
        offset = int(b["key"]["t"]) - start_ms
        group = {f: b["key"][f"g{i}"] for i, f in enumerate(fields)}
        yield offset // width, group, b


def _window_bins(r: Replay, width: int) -> tuple[list[int], list[int], list[bool]]:
    """Each window as bins [lo, hi), and whether its edges fall on bins."""
    start_ms, end_ms = to_ms(r.start), to_ms(r.end)
    los, his, exact = [], [], []
    for a, b in r.windows:
        lo, hi = to_ms(a) - start_ms, to_ms(b) - start_ms
        # the range's end needs no edge: the query stops there, the last bin is partial
        exact.append(lo % width == 0 and (hi % width == 0 or to_ms(b) == end_ms))
        los.append(lo // width)
        his.append(-(-hi // width))
    return los, his, exact


def _tallies(r: Replay, width: int) -> tuple[list[dict[str, _Tally]], list[bool]]:
    """Per window, the tally of each group with events in it (for new_terms, of each term
    not seen in the history before the window)."""
    los, his, aligned = _window_bins(r, width)
    per_window: list[dict[str, _Tally]] = [{} for _ in r.windows]
    seen_bins: dict[str, list[int]] = {}  # new_terms: the bins each term appears in

    def containing(b: int) -> range:
        # windows are ordered by both edges: those holding bin b are consecutive
        return range(bisect.bisect_right(his, b), bisect.bisect_right(los, b))

    for b, group, bucket in _binned_buckets(r, width):
        key = group_key(group)
        seen_bins.setdefault(key, []).append(b)
        n = int(bucket["doc_count"])
        first, last = float(bucket["first"]["value"]), float(bucket["last"]["value"])
        for k in containing(b):
            t = per_window[k].get(key)
            if t is None:
                t = per_window[k][key] = _Tally(group)
            t.count += n
            t.first = min(t.first, first)
            t.last = max(t.last, last)
    card = r.rule.cardinality
    if card is not None:
        for b, group, bucket in _binned_buckets(r, width, card.field):
            value = bucket["key"]["v"]
            if value is None:  # events without the field count, their value does not
                continue
            key = group_key(group)
            for k in containing(b):
                per_window[k][key].values.add(value)
    nt = r.rule.new_terms
    if nt is not None:
        history = nt.history // (width * MS)
        for k, tallies in enumerate(per_window):
            for key in list(tallies):
                bins = sorted(seen_bins[key])
                j = bisect.bisect_left(bins, los[k])
                if j and bins[j - 1] >= los[k] - history:  # seen in the history: not new
                    del tallies[key]
    return per_window, aligned


def _candidate(r: Replay, a: datetime, b: datetime, t: _Tally) -> Alert:
    """What suppression needs of an alert (group, id, first and last event)."""
    rule = r.rule
    return Alert(
        alert_id=alert_id(rule.rule_id, t.group, a),
        rule_id=rule.rule_id,
        rule_name=rule.name,
        rule_type=rule.type,
        severity=rule.severity,
        risk_score=rule.risk_score,
        mitre=[],
        tags=[],
        group=t.group,
        source_ips=[],
        first_event=_ms_time(t.first),
        last_event=_ms_time(t.last),
        event_count=t.count,
        samples=[],
        window_start=a,
        window_end=b,
        time_field=r.time_field,
    )


def _chosen(r: Replay, a: datetime, tallies: dict[str, _Tally]) -> dict[str, dict[str, Any]] | None:
    """The groups the window alerts on, with the details `evaluate` gives them; None when
    only `evaluate` can say (a distinct count past the precision threshold)."""
    rule = r.rule
    if rule.threshold is not None:
        need = rule.threshold.value
        # evaluate gives the threshold only to grouped alerts
        above: dict[str, Any] = {"threshold": need} if rule.group_fields else {}
        return {k: dict(above) for k, t in tallies.items() if t.count >= need}
    card = rule.cardinality
    if card is not None:
        # evaluate's precision threshold: below it Elasticsearch counts exactly
        precision = min(40000, max(1000, card.value * 4))
        if any(len(t.values) > precision for t in tallies.values()):
            return None
        return {
            k: {"field": card.field, "distinct": len(t.values), "value": card.value}
            for k, t in tallies.items()
            if len(t.values) >= card.value
        }
    nt = rule.new_terms
    if nt is not None:
        history = {"history_start": iso(a - nt.history), "history": format_duration(nt.history)}
        return {k: dict(history) for k in tallies}
    return {k: {} for k in tallies}


def _replay_binned(r: Replay) -> tuple[list[Alert], int]:
    width = bin_ms(r.rule)
    assert width is not None
    per_window, aligned = _tallies(r, width)
    alerts: list[Alert] = []
    busy = 0
    for n, ((a, b), tallies, ok) in enumerate(zip(r.windows, per_window, aligned, strict=True), 1):
        chosen = _chosen(r, a, tallies) if ok else None
        if tallies or not ok:
            busy += 1
        if chosen is None:
            alerts.extend(r.exact(a, b))
        elif chosen:
            cands = [_candidate(r, a, b, tallies[k]) for k in chosen]
            raised = apply_suppression(r.rule, cands, r.state, b)
            if raised:
                alerts.extend(
                    chosen_alerts(
                        r.es,
                        r.rule,
                        a,
                        b,
                        [x.group for x in raised],
                        chosen,
                        time_field=r.time_field,
                        now=r.now,
                        index=r.index,
                    )
                )
        r.progress(n)
    return alerts, busy


# -- joined: sequences ----------------------------------------------------------------------


@dataclass
class _Step:
    """One step's events over the range, in the order `evaluate` fetches them: `ms` of every
    hit (to count what a window would fetch), the usable events and their `ms`."""

    ms: list[int] = field(default_factory=list)
    events: list[StepEvent] = field(default_factory=list)
    event_ms: list[int] = field(default_factory=list)


def _fetch_steps(r: Replay) -> list[_Step]:
    seq = r.rule.sequence
    assert seq is not None
    start = r.start - seq.max_span  # the first window reaches back that far
    docs: dict[str, dict[str, Any]] = {}  # one object per document across steps
    steps: list[_Step] = []
    with backend_errors(r.es):
        pit = r.es.open_point_in_time(index=r.index, keep_alive="2m", ignore_unavailable=True)
    pit_id = pit["id"]
    try:
        for i, step in enumerate(seq.steps):
            out = _Step()
            query = window_query(
                r.rule, start, r.end, time_field=r.time_field, today=r.today, step=step
            )
            after: list[Any] | None = None
            while True:
                body: dict[str, Any] = {
                    "query": query,
                    "size": PAGE,
                    # _shard_doc: the tie-break a plain sorted search uses too
                    "sort": [*step_sort(r.time_field), {"_shard_doc": "asc"}],
                    "pit": {"id": pit_id, "keep_alive": "2m"},
                    "track_total_hits": False,
                }
                if after is not None:
                    body["search_after"] = after
                with backend_errors(r.es):
                    resp = r.es.search(**body)
                pit_id = resp.get("pit_id", pit_id)
                hits = resp["hits"]["hits"]
                for h in hits:
                    ms = int(h["sort"][0])
                    out.ms.append(ms)
                    doc = dict(h.get("_source") or {}) | {"_index": h["_index"], "_id": h["_id"]}
                    doc = docs.setdefault(doc["_index"] + "/" + doc["_id"], doc)
                    e = step_event(doc, i, seq.by, r.time_field)
                    if e is not None:
                        out.events.append(e)
                        out.event_ms.append(ms)
                if len(hits) < PAGE:
                    break
                after = hits[-1]["sort"]
            steps.append(out)
    finally:
        with backend_errors(r.es):
            r.es.close_point_in_time(id=pit_id)
    return steps


def _replay_joined(r: Replay) -> tuple[list[Alert], int]:
    seq = r.rule.sequence
    assert seq is not None
    steps = _fetch_steps(r)
    last = steps[-1]
    span = seq.max_span
    alerts: list[Alert] = []
    busy = 0
    for n, (a, b) in enumerate(r.windows, 1):
        lo, hi = to_ms(a), to_ms(b)
        if any(bisect.bisect_left(s.ms, lo) < bisect.bisect_left(s.ms, hi) for s in steps):
            busy += 1
        # only a window holding a last step can complete a sequence in it
        i = bisect.bisect_left(last.event_ms, lo)
        if i == len(last.event_ms) or last.event_ms[i] >= hi:
            r.progress(n)
            continue
        reach = to_ms(a - span)
        if any(
            bisect.bisect_left(s.ms, hi) - bisect.bisect_left(s.ms, reach) > MAX_STEP_EVENTS
            for s in steps
        ):
            alerts.extend(r.exact(a, b))  # evaluate would cut the window's events short
            r.progress(n)
            continue
        events: list[StepEvent] = []
        for s in steps:
            events += s.events[
                bisect.bisect_left(s.event_ms, reach) : bisect.bisect_left(s.event_ms, hi)
            ]
        found = sequence_alerts(r.rule, a, b, events, r.time_field)
        raised = apply_suppression(r.rule, found, r.state, b)
        alerts.extend(sorted(raised, key=lambda x: (x.first_event, x.alert_id)))
        r.progress(n)
    return alerts, busy
