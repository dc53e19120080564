"""`rules validate` beyond the schema: fields checked against the access mappings, and every
query checked by the real Elasticsearch (`_validate/query` with `explain`) on a throwaway
index with those mappings — a query on a misspelt field is valid Lucene that matches nothing,
and only Elasticsearch's explanation shows it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.rules.loader import LoadedRule, Problem
from iiswatch.rules.mapping import is_aggregatable, mapped_fields, throwaway_index
from iiswatch.rules.query import Query, bool_filter, exception_clauses, own_query

MAPPING_HINT = "field names are those of mappings/template-iis-access.json"
_NO_DOCS = re.compile(r'MatchNoDocsQuery\("((?:[^"\\]|\\.|"(?!\)))*)"\)')


def field_problems(lr: LoadedRule) -> list[Problem]:
    """Fields the rule groups, counts or filters on that the access mapping lacks, or that
    cannot be aggregated (text fields)."""
    rule = lr.rule
    fields = mapped_fields()
    problems: list[Problem] = []

    def need(loc: tuple[str | int, ...], name: str, *, aggregatable: bool) -> None:
        spec = fields.get(name)
        if spec is None:
            problems.append(lr.problem(loc, f"{name} is not a mapped field", _close(name)))
        elif aggregatable and not is_aggregatable(spec):
            problems.append(
                lr.problem(
                    loc,
                    f"{name} is a {spec.get('type')} field and cannot be grouped or counted",
                    "use the keyword field (e.g. iiswatch.url.path, not iiswatch.url.path.text)",
                )
            )

    for i, f in enumerate(rule.group_by or []):
        need(("group_by", i), f, aggregatable=True)
    if rule.cardinality:
        need(("cardinality", "field"), rule.cardinality.field, aggregatable=True)
    if rule.new_terms:
        for i, f in enumerate(rule.new_terms.fields):
            need(("new_terms", "fields", i), f, aggregatable=True)
    if rule.sequence:
        for i, f in enumerate(rule.sequence.by):
            need(("sequence", "by", i), f, aggregatable=True)
    if rule.suppression and rule.suppression.group_by:
        for i, f in enumerate(rule.suppression.group_by):
            need(("suppression", "group_by", i), f, aggregatable=True)
    for i, exc in enumerate(rule.exceptions):
        need(("exceptions", i, "field"), exc.field, aggregatable=False)
        spec = fields.get(exc.field)
        if exc.cidrs and spec is not None and spec.get("type") != "ip":
            problems.append(
                lr.problem(
                    ("exceptions", i, "cidrs"),
                    f"cidrs need an ip field; {exc.field} is {spec.get('type')}",
                    "use source.ip",
                )
            )
    for i, f in enumerate(rule.alert.fields):
        if f not in fields and not any(k.startswith(f + ".") for k in fields):
            problems.append(
                lr.problem(
                    ("alert", "fields", i),
                    f"{f} is not a mapped field",
                    _close(f),
                    severity="warning",
                )
            )
    return problems


def _close(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(mapped_fields()), n=1, cutoff=0.75)
    return f"did you mean {close[0]}?" if close else MAPPING_HINT


def queries_of(lr: LoadedRule) -> list[tuple[tuple[str | int, ...], Query]]:
    """Each query written in the rule with where it is written."""
    rule = lr.rule
    out: list[tuple[tuple[str | int, ...], Query]] = []
    if (q := own_query(rule)) is not None:
        out.append((("query",) if rule.query is not None else ("lucene",), q))
    if rule.sequence:
        for i, step in enumerate(rule.sequence.steps):
            key = "query" if step.query is not None else "lucene"
            out.append((("sequence", "steps", i, key), own_query(step) or {}))
    return out


def es_problems(es: Elasticsearch, lr: LoadedRule, index: str, today: date) -> list[Problem]:
    """Each query of the rule, and the whole window query with its exceptions, as the real
    Elasticsearch parses them against the access mappings."""
    problems: list[Problem] = []
    checks = queries_of(lr)
    # the exceptions with the query, without the time range: on an empty index Elasticsearch
    # rewrites any range to match_none, which would hide what we look for
    exceptions = exception_clauses(lr.rule.active_exceptions(today))
    if exceptions:
        checks.append((("exceptions",), bool_filter([own_query(lr.rule)], exceptions)))
    for loc, query in checks:
        with backend_errors(es):
            resp = es.indices.validate_query(index=index, query=query, explain=True).body
        problem = _explain_problem(resp)
        if problem is not None:
            problems.append(lr.problem(loc, problem, MAPPING_HINT))
    return _unique(problems)


def _explain_problem(resp: dict[str, Any]) -> str | None:
    if not resp.get("valid"):
        expl = resp.get("explanations") or [{}]
        error = str(expl[0].get("error") or resp.get("error") or "invalid query")
        return "Elasticsearch rejects the query: " + _clean(error)
    for e in resp.get("explanations", []):
        m = _NO_DOCS.search(str(e.get("explanation", "")))
        if m:
            return f"matches no event: {m.group(1)}"
    return None


def _clean(error: str) -> str:
    # "[index/uuid] org.elasticsearch...QueryShardException: Failed to parse ...; ..." → the
    # reason a person can read, on one line
    text = re.sub(r"^\[[^\]]*\]\s*", "", error.strip())
    text = re.sub(r"\b(?:org\.elasticsearch|org\.apache)\.[\w.]+(?:Exception|Error): ", "", text)
    return " ".join(text.split())[:300]


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out


def validate_rules(
    es: Elasticsearch | None, loaded: Iterable[LoadedRule], today: date
) -> list[Problem]:
    """Mapping checks for every rule, and Elasticsearch's checks when `es` is given."""
    rules = list(loaded)
    problems = [p for lr in rules for p in field_problems(lr)]
    if es is not None and rules:
        with throwaway_index(es) as index:
            for lr in rules:
                problems.extend(es_problems(es, lr, index, today))
    return problems
