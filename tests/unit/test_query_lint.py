"""Lucene traps are warned about before the query is sent (luqum reads it)."""

from iiswatch.elastic.query_lint import read_lucene


def test_a_slash_starts_a_regex_and_is_warned_with_the_escaped_form() -> None:
    reading = read_lucene("url.path:/uploads/*")
    assert len(reading.warnings) == 1
    w = reading.warnings[0]
    assert "regular expression" in w.message
    assert "url.path:\\/uploads\\/" in w.hint


def test_escaped_slashes_are_not_warned() -> None:
    assert read_lucene("url.path:\\/uploads\\/*").warnings == []


def test_lower_case_and_or_are_words_and_are_warned() -> None:
    reading = read_lucene("url.path:foo and source.ip:1.2.3.4 or x:y")
    words = sorted(w.message.split()[1] for w in reading.warnings)
    assert words == ["'and'", "'or'"]
    assert all("--kql" in w.hint for w in reading.warnings)


def test_upper_case_operators_and_quoted_words_are_fine() -> None:
    assert read_lucene('url.path:foo AND NOT user_agent.original:"and"').warnings == []


def test_the_fields_a_query_names_are_listed_once_in_order() -> None:
    reading = read_lucene("url.pth:foo AND (source.ip:1.2.3.4 OR url.pth:bar) AND _exists_:x")
    assert reading.fields == ["url.pth", "source.ip"]


def test_a_query_luqum_cannot_read_is_left_to_elasticsearch() -> None:
    reading = read_lucene("url.path:(foo AND")
    assert reading.warnings == [] and reading.fields == []
