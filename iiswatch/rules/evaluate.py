"""The one evaluation of a rule over a time window, shared by `rules run`, `rules backtest`,
`rules test` and the alerting scheduler.

Elasticsearch does the counting: composite aggregations page through groups, `cardinality`
counts distinct values, the history of `new_terms` is an aggregation over the previous days
(so it survives restarts), and sequences are one bounded, time-ordered search per step joined
here. What was already alerted on, and what is suppressed, is kept in a `SuppressionState`
(in memory for backtests; in Elasticsearch for the alerting service).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.fields import get_field
from iiswatch.rules.alert import Alert, alert_id, group_key
from iiswatch.rules.model import Rule, Step
from iiswatch.rules.query import Query, group_filter, window_query
from iiswatch.rules.suppression import SuppressionState, apply_suppression
from iiswatch.times import format_duration, iso, time_or_none

log = logging.getLogger(__name__)

PAGE = 500  # composite buckets per request
GROUP_BATCH = 200  # groups per terms filter when fetching details of chosen groups
MAX_IPS = 20  # distinct client IPs listed in one alert
MAX_STEP_EVENTS = 5000  # events one sequence step may fetch in one window


# -- evaluation ---------------------------------------------------------------------------


@dataclass
class _Group:
    group: dict[str, Any]
    count: int
    first: datetime
    last: datetime
    ips: list[str]
    samples: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Ctx:
    es: Elasticsearch
    rule: Rule
    start: datetime
    end: datetime
    time_field: str
    today: date
    index: str

    def query(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        step: Step | None = None,
        extra: Sequence[Query] = (),
    ) -> Query:
        return window_query(
            self.rule,
            start or self.start,
            end or self.end,
            time_field=self.time_field,
            today=self.today,
            step=step,
            extra=extra,
        )

    def search(self, **body: Any) -> dict[str, Any]:
        with backend_errors(self.es):
            resp = self.es.search(
                index=self.index, ignore_unavailable=True, allow_no_indices=True, **body
            )
        return dict(resp.body)


def evaluate(
    es: Elasticsearch,
    rule: Rule,
    start: datetime,
    end: datetime,
    *,
    time_field: str = "@timestamp",
    now: datetime | None = None,
    index: str | None = None,
    state: SuppressionState | None = None,
) -> list[Alert]:
    """The alerts `rule` raises for events with `time_field` in [start, end).

    `now` decides which exceptions have expired (default: the current time). `index`
    overrides the rule's index pattern. With `state`, alerts already raised for the same
    events by an overlapping window are dropped, suppression applies (its clock is `end`,
    the time the scheduler runs the window), and the state is updated.
    """
    if end <= start:
        return []
    ctx = _Ctx(
        es,
        rule,
        start,
        end,
        time_field,
        (now or datetime.now(UTC)).date(),
        index or rule.index,
    )
    groups = _EVALUATORS[rule.type](ctx)
    alerts = [_alert(rule, start, end, time_field, g) for g in groups]
    if state is not None:
        alerts = apply_suppression(rule, alerts, state, end)
    return sorted(alerts, key=lambda a: (a.first_event, a.alert_id))


def chosen_alerts(
    es: Elasticsearch,
    rule: Rule,
    start: datetime,
    end: datetime,
    groups: Sequence[dict[str, Any]],
    details: Mapping[str, dict[str, Any]],
    *,
    time_field: str = "@timestamp",
    now: datetime | None = None,
    index: str | None = None,
) -> list[Alert]:
    """The alerts of a match, threshold or cardinality `rule` in [start, end) for groups
    already chosen elsewhere (the backtest's binned replay): counts, times, client IPs and
    samples read as `evaluate` reads them; `details` by group key. No suppression."""
    ctx = _Ctx(
        es, rule, start, end, time_field, (now or datetime.now(UTC)).date(), index or rule.index
    )
    found = _describe(ctx, ctx.query(), rule.group_fields, list(groups)) if groups else []
    alerts = [
        _alert(rule, start, end, time_field, g, details.get(group_key(g.group), {})) for g in found
    ]
    return sorted(alerts, key=lambda a: (a.first_event, a.alert_id))


def sequence_alerts(
    rule: Rule, start: datetime, end: datetime, events: list[StepEvent], time_field: str
) -> list[Alert]:
    """The alerts of a sequence `rule` in [start, end) joined from events fetched elsewhere
    (the backtest fetches each step once for the whole range): every step's events from
    `start - max_span` to `end`, step by step in fetch order, one object per document.
    No suppression."""
    groups = _sequence_groups(rule, start, events)
    return [_alert(rule, start, end, time_field, g) for g in groups]


def _alert(
    r: Rule,
    start: datetime,
    end: datetime,
    time_field: str,
    g: _Group,
    details: dict[str, Any] | None = None,
) -> Alert:
    return Alert(
        alert_id=alert_id(r.rule_id, g.group, start),
        rule_id=r.rule_id,
        rule_name=r.name,
        rule_type=r.type,
        severity=r.severity,
        risk_score=r.risk_score,
        mitre=[m.model_dump(exclude_none=True) for m in r.mitre],
        tags=list(r.tags),
        group=g.group,
        source_ips=g.ips,
        first_event=g.first,
        last_event=g.last,
        event_count=g.count,
        samples=g.samples,
        window_start=start,
        window_end=end,
        time_field=time_field,
        details=g.details if details is None else details,
    )


# -- aggregation helpers ------------------------------------------------------------------


def _detail_aggs(ctx: _Ctx) -> dict[str, Any]:
    aggs: dict[str, Any] = {
        "first": {"min": {"field": ctx.time_field}},
        "last": {"max": {"field": ctx.time_field}},
        "ips": {"terms": {"field": "source.ip", "size": MAX_IPS}},
    }
    if ctx.rule.alert.samples:
        aggs["samples"] = {
            "top_hits": {
                "size": ctx.rule.alert.samples,
                "sort": [
                    {ctx.time_field: {"order": "asc"}},
                    {"log.offset": {"order": "asc", "unmapped_type": "long"}},
                ],
            }
        }
    return aggs


def _ms(value: Any) -> datetime:
    return datetime.fromtimestamp(float(value) / 1000, UTC)


def _hit_doc(hit: dict[str, Any]) -> dict[str, Any]:
    return dict(hit.get("_source") or {}) | {"_index": hit["_index"], "_id": hit["_id"]}


def _group_from(aggs: dict[str, Any], group: dict[str, Any], count: int) -> _Group:
    samples = [_hit_doc(h) for h in aggs.get("samples", {}).get("hits", {}).get("hits", [])]
    return _Group(
        group=group,
        count=count,
        first=_ms(aggs["first"]["value"]),
        last=_ms(aggs["last"]["value"]),
        ips=[str(b["key"]) for b in aggs["ips"]["buckets"]],
        samples=samples,
    )


def _composite(
    ctx: _Ctx,
    query: Query,
    fields: Sequence[str],
    sub_aggs: dict[str, Any] | None = None,
    *,
    missing: bool = True,
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, bucket) for every combination of `fields` values, paged with `after`."""
    sources = [
        {f"g{i}": {"terms": {"field": f, "missing_bucket": missing}}} for i, f in enumerate(fields)
    ]
    for b in composite_buckets(ctx.search, query, sources, sub_aggs):
        yield {f: b["key"][f"g{i}"] for i, f in enumerate(fields)}, b


def composite_buckets(
    search: Callable[..., dict[str, Any]],
    query: Query,
    sources: list[dict[str, Any]],
    sub_aggs: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every bucket of a composite aggregation over `sources`, paged with `after`."""
    after: dict[str, Any] | None = None
    while True:
        comp: dict[str, Any] = {"size": PAGE, "sources": sources}
        if after is not None:
            comp["after"] = after
        agg: dict[str, Any] = {"composite": comp}
        if sub_aggs:
            agg["aggs"] = sub_aggs
        resp = search(size=0, query=query, aggs={"b": agg}, track_total_hits=False)
        got = resp.get("aggregations", {}).get("b", {})
        buckets = got.get("buckets", [])
        yield from buckets
        after = got.get("after_key")
        if not buckets or after is None:
            return


def _describe(
    ctx: _Ctx, query: Query, fields: Sequence[str], groups: list[dict[str, Any]] | None = None
) -> list[_Group]:
    """Count, time span, client IPs and samples of each group (all, or those given)."""
    aggs = _detail_aggs(ctx)
    if not fields:
        resp = ctx.search(size=0, query=query, aggs=aggs, track_total_hits=True)
        total = int(resp["hits"]["total"]["value"])
        return [_group_from(resp["aggregations"], {}, total)] if total else []
    if groups is None:
        return [
            _group_from(b, g, int(b["doc_count"])) for g, b in _composite(ctx, query, fields, aggs)
        ]
    out: list[_Group] = []
    for i in range(0, len(groups), GROUP_BATCH):
        batch = groups[i : i + GROUP_BATCH]
        narrowed = {"bool": {"filter": [query, group_filter(fields, batch)]}}
        wanted = {group_key(g) for g in batch}
        out.extend(
            _group_from(b, g, int(b["doc_count"]))
            for g, b in _composite(ctx, narrowed, fields, aggs)
            if group_key(g) in wanted
        )
    return out


# -- the five rule types ------------------------------------------------------------------


def _match(ctx: _Ctx) -> list[_Group]:
    return _describe(ctx, ctx.query(), ctx.rule.group_fields)


def _threshold(ctx: _Ctx) -> list[_Group]:
    assert ctx.rule.threshold is not None
    need = ctx.rule.threshold.value
    fields = ctx.rule.group_fields
    query = ctx.query()
    if not fields:
        groups = _describe(ctx, query, fields)
        return [g for g in groups if g.count >= need]
    chosen = [g for g, b in _composite(ctx, query, fields) if b["doc_count"] >= need]
    found = _describe(ctx, query, fields, chosen) if chosen else []
    for g in found:
        g.details = {"threshold": need}
    return found


def _cardinality(ctx: _Ctx) -> list[_Group]:
    card = ctx.rule.cardinality
    assert card is not None
    fields = ctx.rule.group_fields
    query = ctx.query()
    # counts are exact below precision_threshold; keep it well above the rule's value
    distinct = {
        "distinct": {
            "cardinality": {
                "field": card.field,
                "precision_threshold": min(40000, max(1000, card.value * 4)),
            }
        }
    }
    if not fields:
        resp = ctx.search(size=0, query=query, aggs=distinct, track_total_hits=False)
        n = int(resp.get("aggregations", {}).get("distinct", {}).get("value", 0))
        found = _describe(ctx, query, fields) if n >= card.value else []
        counts = {group_key({}): n}
    else:
        counts = {
            group_key(g): int(b["distinct"]["value"])
            for g, b in _composite(ctx, query, fields, distinct)
            if b["distinct"]["value"] >= card.value
        }
        chosen = [orjson.loads(k) for k in counts]
        found = _describe(ctx, query, fields, chosen) if chosen else []
    for g in found:
        g.details = {
            "field": card.field,
            "distinct": counts[group_key(g.group)],
            "value": card.value,
        }
    return found


def _new_terms(ctx: _Ctx) -> list[_Group]:
    nt = ctx.rule.new_terms
    assert nt is not None
    fields = nt.fields
    query = ctx.query()
    candidates = [g for g, _ in _composite(ctx, query, fields, missing=False)]
    if not candidates:
        return []
    # the history: the same query over the `history` before the window, asked only about
    # this window's values — Elasticsearch answers which of them it has seen
    h_start = ctx.start - nt.history
    seen: set[str] = set()
    for i in range(0, len(candidates), GROUP_BATCH):
        batch = candidates[i : i + GROUP_BATCH]
        history = ctx.query(h_start, ctx.start, extra=[group_filter(fields, batch)])
        seen.update(group_key(g) for g, _ in _composite(ctx, history, fields, missing=False))
    new = [g for g in candidates if group_key(g) not in seen]
    found = _describe(ctx, query, fields, new) if new else []
    for g in found:
        g.details = {"history_start": iso(h_start), "history": format_duration(nt.history)}
    return found


# -- sequences: one bounded search per step, joined on `by` ------------------------------


@dataclass
class StepEvent:
    step: int
    time: datetime
    offset: int
    doc: dict[str, Any]
    key: tuple[Any, ...]


def _event_time(doc: dict[str, Any], time_field: str) -> datetime | None:
    return time_or_none(get_field(doc, time_field))


def step_event(
    doc: dict[str, Any], step: int, by: Sequence[str], time_field: str
) -> StepEvent | None:
    """One fetched document as an event of sequence step `step`, or None when it has no
    time or no usable key (a missing, object or list value in a `by` field)."""
    key = tuple(get_field(doc, f) for f in by)
    t = _event_time(doc, time_field)
    if t is None or any(v is None or isinstance(v, dict | list) for v in key):
        return None
    offset = get_field(doc, "log.offset")
    return StepEvent(step, t, offset if isinstance(offset, int) else 0, doc, key)


def step_sort(time_field: str) -> list[dict[str, Any]]:
    """The order sequence steps are fetched in: time, then the line's place in its log."""
    return [
        {time_field: {"order": "asc"}},
        {"log.offset": {"order": "asc", "unmapped_type": "long"}},
    ]


def _step_events(
    ctx: _Ctx, index: int, step: Step, start: datetime, keys: set[tuple[Any, ...]] | None
) -> list[StepEvent]:
    seq = ctx.rule.sequence
    assert seq is not None
    extra: list[Query] = []
    if keys is not None:  # later steps: only the keys an earlier step has seen
        for i, f in enumerate(seq.by):
            extra.append({"terms": {f: sorted({k[i] for k in keys}, key=str)}})
    resp = ctx.search(
        query=ctx.query(start, ctx.end, step=step, extra=extra),
        size=MAX_STEP_EVENTS,
        sort=step_sort(ctx.time_field),
        track_total_hits=MAX_STEP_EVENTS + 1,
    )
    hits = resp["hits"]["hits"]
    if resp["hits"]["total"]["value"] > MAX_STEP_EVENTS:
        log.warning(
            "rule %s step %s: more than %d events in one window; the rest are not joined",
            ctx.rule.name,
            step.name,
            MAX_STEP_EVENTS,
        )
    found = (step_event(_hit_doc(h), index, seq.by, ctx.time_field) for h in hits)
    return [e for e in found if e is not None]


def join_sequences(
    events: list[StepEvent], n_steps: int, max_span: timedelta
) -> dict[tuple[Any, ...], list[list[StepEvent]]]:
    """Complete sequences per key: one event per step, in step order, not earlier than the
    previous step's, the last within `max_span` of the first. Like EQL, a newer event of a
    step replaces a pending one at the same stage, and an event fills at most one step of
    one sequence."""
    # same time: the log's order, and a document matching several steps advances a pending
    # sequence before it may start a new one
    ordered = sorted(events, key=lambda e: (e.time, e.offset, -e.step))
    pending: dict[tuple[Any, ...], dict[int, list[StepEvent]]] = {}
    done: dict[tuple[Any, ...], list[list[StepEvent]]] = {}
    for e in ordered:
        stages = pending.setdefault(e.key, {})
        for stage, seq in list(stages.items()):  # forget what can no longer complete
            if e.time - seq[0].time > max_span:
                del stages[stage]
        used = {id(x.doc) for seq in stages.values() for x in seq}
        if e.step == 0:
            stages[1] = [e]
            continue
        partial = stages.get(e.step)
        if partial is None or id(e.doc) in used:
            continue
        del stages[e.step]
        grown = [*partial, e]
        if len(grown) == n_steps:
            done.setdefault(e.key, []).append(grown)
        else:
            stages[len(grown)] = grown
    return done


def _sequence(ctx: _Ctx) -> list[_Group]:
    seq = ctx.rule.sequence
    assert seq is not None
    # a sequence that ends in this window may have started up to max_span before it
    start = ctx.start - seq.max_span
    events: list[StepEvent] = []
    keys: set[tuple[Any, ...]] | None = None
    for i, step in enumerate(seq.steps):
        found = _step_events(ctx, i, step, start, keys)
        if not found:
            return []
        events.extend(found)
        keys = {e.key for e in found} if keys is None else keys & {e.key for e in found}
    # the same document can match several steps: join on one object per document
    by_id: dict[str, dict[str, Any]] = {}
    for e in events:
        e.doc = by_id.setdefault(e.doc["_index"] + "/" + e.doc["_id"], e.doc)
    return _sequence_groups(ctx.rule, ctx.start, events)


def _sequence_groups(rule: Rule, start: datetime, events: list[StepEvent]) -> list[_Group]:
    """The groups of sequences joined from `events` (steps in fetch order, one object per
    document) that complete at or after `start`."""
    seq = rule.sequence
    assert seq is not None
    out = []
    for key, seqs in join_sequences(events, len(seq.steps), seq.max_span).items():
        seqs = [s for s in seqs if s[-1].time >= start]  # completed in this window
        if not seqs:
            continue
        docs: dict[int, StepEvent] = {}
        for s in seqs:
            for e in s:
                docs.setdefault(id(e.doc), e)
        evs = sorted(docs.values(), key=lambda e: (e.time, e.offset))
        ips = sorted({str(ip) for e in evs if (ip := get_field(e.doc, "source.ip")) is not None})
        out.append(
            _Group(
                group=dict(zip(seq.by, key, strict=True)),
                count=len(evs),
                first=evs[0].time,
                last=evs[-1].time,
                ips=ips[:MAX_IPS],
                samples=[e.doc for e in evs[: rule.alert.samples]],
                details={
                    "sequences": len(seqs),
                    "steps": [
                        {"name": seq.steps[e.step].name, "time": iso(e.time)} for e in seqs[-1]
                    ],
                },
            )
        )
    return out


_EVALUATORS = {
    "match": _match,
    "threshold": _threshold,
    "cardinality": _cardinality,
    "new_terms": _new_terms,
    "sequence": _sequence,
}
