"""Kibana's query language, translated to query DSL with Kibana's meaning."""

import pytest

from iiswatch.elastic.kql import KqlError, translate


def q(text: str) -> object:
    return translate(text).query


def test_field_value_is_a_match_and_a_quoted_value_a_phrase() -> None:
    assert q("http.response.status_code: 404") == {
        "match": {"http.response.status_code": {"query": "404", "lenient": True}}
    }
    assert q('user_agent.original: "curl 7"') == {"match_phrase": {"user_agent.original": "curl 7"}}


def test_and_or_not_work_in_any_case_with_not_over_and_over_or() -> None:
    a = {"match": {"a": {"query": "1", "lenient": True}}}
    b = {"match": {"b": {"query": "2", "lenient": True}}}
    c = {"match": {"c": {"query": "3", "lenient": True}}}
    assert q("a:1 or b:2 AND not c:3") == {
        "bool": {
            "should": [a, {"bool": {"filter": [b, {"bool": {"must_not": [c]}}]}}],
            "minimum_should_match": 1,
        }
    }
    assert q("(a:1 Or b:2) and c:3") == {
        "bool": {"filter": [{"bool": {"should": [a, b], "minimum_should_match": 1}}, c]}
    }


def test_slashes_are_literal_and_a_star_is_a_wildcard() -> None:
    assert q("url.path: /uploads/*") == {
        "query_string": {
            "query": "\\/uploads\\/*",
            "analyze_wildcard": True,
            "lenient": True,
            "fields": ["url.path"],
        }
    }
    # an escaped star is a literal star
    assert q("url.path: a\\*b") == {"match": {"url.path": {"query": "a*b", "lenient": True}}}


def test_kibana_paste_with_spaces_around_the_colon() -> None:
    t = translate("url.path : /uploads/* and source.ip : 1.2.3.4")
    assert t.fields == ["url.path", "source.ip"]
    assert t.query["bool"]["filter"][1] == {
        "match": {"source.ip": {"query": "1.2.3.4", "lenient": True}}
    }


def test_several_values_for_one_field_exists_and_ranges() -> None:
    assert q("status: (404 or 500)")["bool"]["should"][1] == {
        "match": {"status": {"query": "500", "lenient": True}}
    }
    assert q("user_agent.original: *") == {"exists": {"field": "user_agent.original"}}
    assert q("event.duration >= 1000") == {"range": {"event.duration": {"gte": "1000"}}}
    assert q("*") == {"match_all": {}}
    assert q("") == {"match_all": {}}


def test_a_bare_value_is_searched_in_every_field() -> None:
    assert q("cmd.exe") == {"multi_match": {"query": "cmd.exe", "fields": ["*"], "lenient": True}}
    assert q("whoami and not status: 404")["bool"]["filter"][0]["multi_match"]["query"] == (
        "whoami"
    )


def test_an_unquoted_value_runs_over_spaces_until_an_operator() -> None:
    assert q("message: access denied or x: 1")["bool"]["should"][0] == {
        "match": {"message": {"query": "access denied", "lenient": True}}
    }


@pytest.mark.parametrize(
    ("text", "column"),
    [("(a:1", 5), ('a: "open', 4), ("a:1 and", 8), ("a:{b:c}", 3), ("a:1 )", 5)],
)
def test_errors_name_the_column(text: str, column: int) -> None:
    with pytest.raises(KqlError) as e:
        translate(text)
    assert e.value.column == column
    assert f"column {column}" in e.value.message
    assert e.value.hint and e.value.hint.endswith("^")
