from __future__ import annotations

from iiswatch.ingest.normalize import (
    MAX_TERM,
    STEP,
    WINDOW,
    decode_once,
    decode_path,
    decode_query,
    detection_url,
)


def test_a_path_is_decoded_once_and_twice() -> None:
    assert decode_path("/a/%2e%2e%2fwinnt/Cmd.ExE") == ("/a/../winnt/Cmd.ExE",) * 2
    assert decode_path("/scripts/..%255c..%255c") == ("/scripts/..%5c..%5c", "/scripts/..\\..\\")


def test_plus_is_a_space_in_the_query_but_a_plus_in_the_path() -> None:
    assert decode_query("q=a+b%2bc") == ("q=a b+c", "q=a b c")
    assert decode_path("/c++/a+b") == ("/c++/a+b", "/c++/a+b")


def test_iis_percent_u_escapes_are_decoded() -> None:
    assert decode_once("%u002e%u002E/") == "../"
    assert decode_once("%uD800") == "%uD800"  # a lone surrogate stays as written


def test_invalid_escapes_and_bytes_never_raise() -> None:
    assert decode_once("%zz%4") == "%zz%4"
    assert decode_once("%c0%af") == "\ufffd\ufffd"
    assert decode_once("%ff%fe%") == "\ufffd\ufffd%"


def test_case_is_kept_for_the_index_normalizer() -> None:
    assert decode_path("/Scripts/CMD.exe")[0] == "/Scripts/CMD.exe"


def test_detection_url_joins_decoded_path_and_query() -> None:
    assert detection_url("/a%20b", "x=%2531+y") == {
        "path": "/a b",
        "path_twice": "/a b",
        "query": "x=%31 y",
        "query_twice": "x=1 y",
        "uri": "/a b?x=%31 y",
    }


def test_detection_url_without_a_query_has_no_question_mark() -> None:
    assert detection_url("/", None) == {"path": "/", "path_twice": "/", "uri": "/"}
    assert detection_url(None, None) == {}


def test_values_elasticsearch_indexes_whole_stay_one_string() -> None:
    url = detection_url("/a.aspx", "q=" + "x" * (MAX_TERM - 2))
    assert url["query"] == "q=" + "x" * (MAX_TERM - 2)


def test_a_longer_value_becomes_overlapping_windows_that_hide_nothing() -> None:
    query = "".join(f"{i:05d}&" for i in range(3000))  # 18,000 characters, every 6 unique
    windows = detection_url("/a.aspx", query)["query"]
    assert isinstance(windows, list)
    assert all(len(w) <= MAX_TERM for w in windows)
    assert windows[0] == query[:WINDOW] and windows[-1] == query[-WINDOW:]
    # any run up to WINDOW - STEP characters long lies whole inside one window
    run = WINDOW - STEP
    for start in range(0, len(query) - run + 1, 97):
        assert any(query[start : start + run] in w for w in windows), start
