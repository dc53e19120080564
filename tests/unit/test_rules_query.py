"""Rule → Elasticsearch query, without Elasticsearch."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from iiswatch.rules.alert import alert_id
from iiswatch.rules.evaluate import StepEvent, join_sequences
from iiswatch.rules.model import Rule
from iiswatch.rules.query import exception_clause, group_filter, hits_query, window_query

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
END = START + timedelta(minutes=5)
TODAY = date(2026, 11, 25)


def make(**changes: Any) -> Rule:
    data: dict[str, Any] = {
        "id": "3f0c6a52-8d0e-4d8e-9a51-2f1c4b7e9d10",
        "name": "r",
        "description": "d",
        "author": "a",
        "status": "test",
        "severity": "low",
        "risk_score": 1,
        "type": "match",
        "lucene": "iiswatch.url.query:*whoami*",
    }
    data.update(changes)
    return Rule.model_validate({k: v for k, v in data.items() if v is not None})


def exc(**kw: Any) -> dict[str, Any]:
    return {"owner": "soc", "reason": "because", **kw}


def test_a_lucene_rule_filters_on_the_query_and_the_window() -> None:
    q = window_query(make(), START, END, today=TODAY)
    assert q == {
        "bool": {
            "filter": [
                {
                    "query_string": {
                        "query": "iiswatch.url.query:*whoami*",
                        "analyze_wildcard": True,
                    }
                },
                {
                    "range": {
                        "@timestamp": {
                            "gte": "2026-11-25T12:00:00.000Z",
                            "lt": "2026-11-25T12:05:00.000Z",
                            "format": "strict_date_optional_time",
                        }
                    }
                },
            ]
        }
    }


def test_a_dsl_rule_keeps_its_query_and_the_time_field_can_change() -> None:
    dsl = {"bool": {"filter": [{"term": {"http.request.method": "PUT"}}]}}
    q = window_query(
        make(lucene=None, query=dsl), START, END, time_field="event.ingested", today=TODAY
    )
    assert q["bool"]["filter"][0] == dsl
    assert "event.ingested" in q["bool"]["filter"][1]["range"]


def test_exceptions_become_must_not_clauses_of_the_right_kind() -> None:
    rule = make(
        exceptions=[
            exc(field="source.ip", cidrs=["10.20.0.0/16", "192.0.2.1"]),
            exc(field="user_agent.original", wildcards=["*HealthCheck*"]),
            exc(field="url.path", values=["/status"]),
        ]
    )
    q = window_query(rule, START, END, today=TODAY)
    assert q["bool"]["must_not"] == [
        {
            "bool": {
                "should": [
                    {"term": {"source.ip": "10.20.0.0/16"}},
                    {"term": {"source.ip": "192.0.2.1/32"}},
                ],
                "minimum_should_match": 1,
            }
        },
        {"wildcard": {"user_agent.original": {"value": "*HealthCheck*", "case_insensitive": True}}},
        {"terms": {"url.path": ["/status"]}},
    ]


def test_expired_exceptions_no_longer_apply() -> None:
    rule = make(exceptions=[exc(field="url.path", values=["/x"], expires="2026-11-24")])
    assert "must_not" not in window_query(rule, START, END, today=TODAY)["bool"]
    assert "must_not" in window_query(rule, START, END, today=date(2026, 11, 24))["bool"]


def test_one_exception_entry_may_combine_kinds() -> None:
    clause = exception_clause(
        make(exceptions=[exc(field="url.path", values=["/a"], wildcards=["/b*"])]).exceptions[0]
    )
    assert len(clause["bool"]["should"]) == 2


def test_a_sequence_step_adds_its_query_and_hits_cover_every_step() -> None:
    rule = make(
        type="sequence",
        lucene=None,
        sequence={
            "by": ["source.ip"],
            "max_span": "30m",
            "steps": [
                {"name": "up", "lucene": "http.request.method:POST"},
                {"name": "run", "query": {"term": {"url.extension": "aspx"}}},
            ],
        },
    )
    assert rule.sequence is not None
    q = window_query(rule, START, END, today=TODAY, step=rule.sequence.steps[1])
    assert q["bool"]["filter"][0] == {"term": {"url.extension": "aspx"}}
    hits = hits_query(rule, START, END, time_field="@timestamp", today=TODAY)
    assert len(hits["bool"]["filter"][1]["bool"]["should"]) == 2


def test_group_filters_match_missing_values_too() -> None:
    one = group_filter(["source.ip"], [{"source.ip": "1.2.3.4"}, {"source.ip": None}])
    assert one["bool"]["should"][0] == {"terms": {"source.ip": ["1.2.3.4"]}}
    assert one["bool"]["should"][1] == {"bool": {"must_not": [{"exists": {"field": "source.ip"}}]}}
    two = group_filter(["source.ip", "url.path"], [{"source.ip": "1.2.3.4", "url.path": "/a"}])
    assert two["bool"]["should"][0]["bool"]["filter"][1] == {"term": {"url.path": "/a"}}


def test_alert_ids_depend_on_rule_group_and_window_only() -> None:
    a = alert_id("r1", {"source.ip": "1.2.3.4", "url.path": "/x"}, START)
    assert a == alert_id("r1", {"url.path": "/x", "source.ip": "1.2.3.4"}, START)
    assert a != alert_id("r1", {"source.ip": "1.2.3.4", "url.path": "/x"}, END)
    assert a != alert_id("r2", {"source.ip": "1.2.3.4", "url.path": "/x"}, START)


def ev(step: int, minute: int, key: str = "ip", doc: dict[str, Any] | None = None) -> StepEvent:
    return StepEvent(step, START + timedelta(minutes=minute), minute, doc or {"m": minute}, (key,))


def test_sequences_join_in_order_within_the_span() -> None:
    done = join_sequences([ev(0, 0), ev(1, 1), ev(2, 2)], 3, timedelta(minutes=30))
    assert [[e.step for e in s] for s in done[("ip",)]] == [[0, 1, 2]]


def test_steps_out_of_order_or_too_far_apart_do_not_join() -> None:
    assert join_sequences([ev(1, 0), ev(0, 1), ev(2, 2)], 3, timedelta(minutes=30)) == {}
    assert join_sequences([ev(0, 0), ev(1, 1), ev(2, 40)], 3, timedelta(minutes=30)) == {}
    assert join_sequences([ev(0, 0, "a"), ev(1, 1, "b")], 2, timedelta(minutes=30)) == {}


def test_one_event_fills_one_step_only() -> None:
    doc = {"both": True}
    # one document matching steps 0 and 1 cannot be a sequence by itself
    assert join_sequences([ev(0, 0, doc=doc), ev(1, 0, doc=doc)], 2, timedelta(minutes=5)) == {}
