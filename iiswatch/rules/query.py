"""A rule's query as Elasticsearch query DSL: the rule's own query (DSL or Lucene), the time
window on a chosen field, and the active exceptions as `must_not` clauses. Pure functions:
nothing here talks to Elasticsearch, so all of it is unit-tested."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from iiswatch.rules.model import Rule, RuleException, Step
from iiswatch.times import iso

Query = dict[str, Any]


def lucene(text: str) -> Query:
    return {"query_string": {"query": text, "analyze_wildcard": True}}


def own_query(source: Rule | Step) -> Query | None:
    """The DSL or Lucene query written in a rule or a sequence step (None when absent)."""
    if source.query is not None:
        return dict(source.query)
    if source.lucene is not None:
        return lucene(source.lucene)
    return None


def time_range(field: str, start: datetime, end: datetime) -> Query:
    """`start` inclusive, `end` exclusive: consecutive windows never count an event twice."""
    return {
        "range": {field: {"gte": iso(start), "lt": iso(end), "format": "strict_date_optional_time"}}
    }


def exception_clause(exc: RuleException) -> Query:
    """Matches the events an exception entry drops: any of its values, networks or
    wildcards on its field."""
    should: list[Query] = []
    if exc.values:
        should.append({"terms": {exc.field: list(exc.values)}})
    # `term` on an ip field takes CIDR notation and matches the whole network
    should.extend({"term": {exc.field: cidr}} for cidr in exc.cidrs or ())
    if exc.networks:
        from iiswatch.crawlers import network_list  # a data file, read once

        # `terms` on an ip field takes CIDR notation too: one clause for the whole list
        cidrs = sorted({c for name in exc.networks for c in network_list(name)})
        should.append({"terms": {exc.field: cidrs}})
    should.extend(
        {"wildcard": {exc.field: {"value": w, "case_insensitive": True}}}
        for w in exc.wildcards or ()
    )
    if len(should) == 1:
        return should[0]
    return {"bool": {"should": should, "minimum_should_match": 1}}


def exception_clauses(exceptions: Iterable[RuleException]) -> list[Query]:
    return [exception_clause(e) for e in exceptions]


def bool_filter(clauses: Sequence[Query | None], must_not: Sequence[Query] = ()) -> Query:
    body: dict[str, Any] = {"filter": [c for c in clauses if c is not None]}
    if must_not:
        body["must_not"] = list(must_not)
    return {"bool": body}


def window_query(
    rule: Rule,
    start: datetime,
    end: datetime,
    *,
    time_field: str = "@timestamp",
    today: date,
    step: Step | None = None,
    extra: Sequence[Query] = (),
) -> Query:
    """Events of `rule` (or of one of its sequence steps) in [start, end) that no active
    exception drops."""
    clauses: list[Query | None] = [own_query(rule)]
    if step is not None:
        clauses.append(own_query(step))
    clauses.append(time_range(time_field, start, end))
    clauses.extend(extra)
    return bool_filter(clauses, exception_clauses(rule.active_exceptions(today)))


def any_step(rule: Rule) -> Query | None:
    """For a sequence: events matching any step (what `backtest` counts as hits)."""
    if rule.sequence is None:
        return None
    return {
        "bool": {
            "should": [own_query(s) for s in rule.sequence.steps],
            "minimum_should_match": 1,
        }
    }


def hits_query(
    rule: Rule, start: datetime, end: datetime, *, time_field: str, today: date
) -> Query:
    """Every event the rule looks at in [start, end): its query, or any of its steps."""
    extra = [q] if (q := any_step(rule)) is not None else []
    return window_query(rule, start, end, time_field=time_field, today=today, extra=extra)


def group_filter(fields: Sequence[str], groups: Sequence[dict[str, Any]]) -> Query:
    """Events belonging to any of `groups` (values of `fields`; None = field missing)."""
    if len(fields) == 1:
        f = fields[0]
        values = [g[f] for g in groups if g.get(f) is not None]
        should: list[Query] = [{"terms": {f: values}}] if values else []
        if any(g.get(f) is None for g in groups):
            should.append({"bool": {"must_not": [{"exists": {"field": f}}]}})
    else:
        should = []
        for g in groups:
            parts: list[Query] = []
            for f in fields:
                if g.get(f) is None:
                    parts.append({"bool": {"must_not": [{"exists": {"field": f}}]}})
                else:
                    parts.append({"term": {f: g[f]}})
            should.append({"bool": {"filter": parts}})
    return {"bool": {"should": should, "minimum_should_match": 1}}
