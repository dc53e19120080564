"""Why a rule test that should have matched did not: which clause of the rule's query
matched none of the test's events, and the values those events had for its fields; or,
when the query did match, which condition (threshold, cardinality, exceptions) held the
alert back. Run on the test's own index before its events are deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.fields import get_field
from iiswatch.rules.model import Rule
from iiswatch.rules.query import exception_clauses, lucene, own_query, time_range

MAX_VALUES = 5


def _count(es: Elasticsearch, index: str, clauses: list[dict[str, Any]]) -> int:
    resp = es.count(index=index, query={"bool": {"filter": clauses}})
    return int(resp["count"])


def lucene_and_clauses(text: str) -> list[tuple[str, list[str]]]:
    """The operands of a Lucene query's top-level AND (or the whole query), each as its
    text and the fields it names."""
    from luqum.exceptions import ParseError
    from luqum.parser import parser
    from luqum.tree import AndOperation, Group, SearchField

    try:
        tree = parser.parse(text)
    except (ParseError, ValueError, TypeError):
        return [(text, [])]
    while isinstance(tree, Group) and len(tree.children) == 1:
        tree = tree.children[0]
    operands = list(tree.children) if isinstance(tree, AndOperation) else [tree]

    def fields(node: Any) -> list[str]:
        found = [node.name] if isinstance(node, SearchField) else []
        for child in getattr(node, "children", ()):
            found += [f for f in fields(child) if f not in found]
        return found

    return [(str(op).strip(), fields(op)) for op in operands]


def _values(events: list[dict[str, Any]], field: str) -> str:
    seen: list[str] = []
    for e in events:
        v = get_field(e, field)
        text = "(absent)" if v is None else str(v)
        if text not in seen:
            seen.append(text)
    more = f" and {len(seen) - MAX_VALUES} more" if len(seen) > MAX_VALUES else ""
    return ", ".join(seen[:MAX_VALUES]) + more


def explain_miss(
    es: Elasticsearch,
    rule: Rule,
    index: str,
    start: datetime,
    end: datetime,
    events: list[dict[str, Any]],
) -> str | None:
    """One sentence on what did not match, or None when no single cause is found."""
    window = time_range("@timestamp", start, end)
    query = own_query(rule)
    if query is None:
        return None
    n = _count(es, index, [window, query])
    if n == 0:
        if rule.lucene is None:
            return f"the rule's query matched none of the {len(events)} event(s)"
        for text, names in lucene_and_clauses(rule.lucene):
            if _count(es, index, [window, lucene(text)]) == 0:
                seen = "; ".join(f"{f} was: {_values(events, f)}" for f in names)
                return f"clause `{text}` matched none of the {len(events)} event(s)" + (
                    f" ({seen})" if seen else ""
                )
        return f"the query matched none of the {len(events)} event(s)"
    kept = _count(es, index, [window, query, *_not(exception_clauses(rule.exceptions))])
    if kept == 0:
        return f"the query matched {n} event(s), but the rule's exceptions removed all of them"
    if rule.threshold is not None and kept < rule.threshold.value:
        return f"the query matched {kept} event(s); threshold.value is {rule.threshold.value}"
    if rule.cardinality is not None:
        f = rule.cardinality.field
        distinct = {str(get_field(e, f)) for e in events if get_field(e, f) is not None}
        if len(distinct) < rule.cardinality.value:
            return (
                f"the query matched {kept} event(s) with {len(distinct)} distinct {f}; "
                f"cardinality.value is {rule.cardinality.value}"
            )
    return None


def _not(clauses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"bool": {"must_not": clauses}}] if clauses else []
