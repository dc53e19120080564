"""NCSA Common (and Combined) parsing: request splitting, offsets to UTC, dead letters."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iiswatch.ingest.formats.ncsa import NcsaParser, ncsa_time_to_utc, split_request
from iiswatch.ingest.model import DeadLetter, Source

SOURCE = Source(
    path="C:/inetpub/logs/LogFiles/W3SVC1/nc240101.log", host_name="web01", file_id="f3"
)
SAMPLE = (
    "172.21.13.45 - Microsoft\\fred [08/Apr/2001:17:39:04 -0800] "
    '"GET /scripts/iisadmin/ism.dll?http/serv HTTP/1.0" 200 3401'
)


@pytest.fixture(autouse=True)
def paris_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The offset in the line decides; a non-UTC machine zone must change nothing.
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def feed(line: str, offset: int = 0) -> object:
    return NcsaParser(SOURCE).feed(line.encode(), offset)


def test_microsoft_sample_line_maps_each_part_to_its_ecs_field() -> None:
    event = feed(SAMPLE, 9)
    assert isinstance(event, dict)
    assert event["@timestamp"] == "2001-04-09T01:39:04.000Z"
    assert event["source"] == {"address": "172.21.13.45", "ip": "172.21.13.45"}
    assert event["user"] == {"name": "fred", "domain": "Microsoft"}
    assert event["http"] == {
        "request": {"method": "GET"},
        "response": {"status_code": 200, "body": {"bytes": 3401}},
        "version": "1.0",
    }
    assert event["url"]["path"] == "/scripts/iisadmin/ism.dll"
    assert event["url"]["query"] == "http/serv"
    assert event["iiswatch"]["format"] == "ncsa"
    assert event["event"]["original"] == SAMPLE
    assert event["log"] == {"file": {"path": SOURCE.path}, "offset": 9}


def test_the_offset_in_the_line_gives_utc() -> None:
    assert ncsa_time_to_utc("10/Oct/2000:13:55:36 -0700") == "2000-10-10T20:55:36.000Z"
    assert ncsa_time_to_utc("15/Jun/2024:12:00:00 +0530") == "2024-06-15T06:30:00.000Z"
    assert ncsa_time_to_utc("31/Dec/2024:23:30:00 -0100") == "2025-01-01T00:30:00.000Z"


def test_month_names_are_read_in_english_whatever_the_case() -> None:
    assert ncsa_time_to_utc("01/DEC/2024:00:00:00 +0000") == "2024-12-01T00:00:00.000Z"


def test_request_line_splits_into_method_stem_query_and_version() -> None:
    assert split_request("POST /api/login?next=%252Fadmin HTTP/1.1") == {
        "cs-method": "POST",
        "cs-uri-stem": "/api/login",
        "cs-uri-query": "next=%252Fadmin",
        "cs-version": "HTTP/1.1",
    }
    assert split_request("GET /") == {"cs-method": "GET", "cs-uri-stem": "/", "cs-uri-query": "-"}
    assert split_request("-") == {}
    assert split_request("GET  / HTTP/1.1") == {}


def test_detection_fields_decode_the_query_twice() -> None:
    event = feed(SAMPLE.replace("ism.dll?http/serv", "login?next=%252Fadmin"))
    assert isinstance(event, dict)
    assert event["iiswatch"]["url"]["query"] == "next=%2Fadmin"
    assert event["iiswatch"]["url"]["query_twice"] == "next=/admin"


def test_combined_format_adds_referrer_and_user_agent_with_escaped_quotes() -> None:
    event = feed(
        '203.0.113.61 - - [15/Jun/2024:12:00:00 +0530] "GET / HTTP/1.1" 200 512 '
        '"https://example.org/?ref=1" "Mozilla/5.0 (X11) \\"quoted\\""'
    )
    assert isinstance(event, dict)
    assert event["http"]["request"]["referrer"] == "https://example.org/?ref=1"
    assert event["user_agent"]["original"] == 'Mozilla/5.0 (X11) "quoted"'


def test_an_unparsable_request_still_gives_an_event_with_status_and_client() -> None:
    event = feed('203.0.113.62 - - [15/Jun/2024:12:00:01 +0000] "-" 400 0')
    assert isinstance(event, dict)
    assert "url" not in event
    assert event["http"]["response"]["status_code"] == 400


def test_bytes_dash_is_left_out() -> None:
    event = feed('203.0.113.60 - - [31/Mar/2024:01:59:59 +0100] "GET / HTTP/1.1" 200 -')
    assert isinstance(event, dict)
    assert "body" not in event["http"]["response"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('1.2.3.4 - - [32/Jun/2024:12:00:02 +0000] "GET / HTTP/1.1" 200 10', "day is out of range"),
        ('1.2.3.4 - - [15/Foo/2024:12:00:02 +0000] "GET / HTTP/1.1" 200 10', "dd/Mon/yyyy"),
        ('1.2.3.4 - - [15/Jun/2024:12:00:02] "GET / HTTP/1.1" 200 10', "dd/Mon/yyyy"),
        ('1.2.3.4 - - [15/Jun/2024:12:00:02 +0000] "GET / HTTP/1.1" OK 10', "sc-status"),
        ("garbage that is not a log line", "not an NCSA line"),
        ('1.2.3.4 - - [15/Jun/2024:12:00:02 +0000] "GET / HTTP/1.1 200 10', "not an NCSA line"),
    ],
)
def test_bad_lines_become_dead_letters_that_say_why(line: str, reason: str) -> None:
    result = feed(line, 3)
    assert isinstance(result, DeadLetter)
    assert reason in result.reason
    assert result.format == "ncsa"
    assert result.offset == 3
    assert result.raw == line.encode()


def test_blank_lines_yield_nothing_and_state_is_empty_json() -> None:
    parser = NcsaParser(SOURCE)
    assert parser.feed(b"", 0) is None
    assert parser.feed(b"\r", 0) is None
    assert orjson.loads(orjson.dumps(parser.state())) == {}
    parser.restore({})


@given(st.binary(max_size=300))
def test_any_bytes_give_an_event_a_dead_letter_or_nothing(data: bytes) -> None:
    result = NcsaParser(SOURCE).feed(data, 0)
    assert result is None or isinstance(result, dict | DeadLetter)


@given(
    host=st.text(max_size=20),
    user=st.text(max_size=20),
    stamp=st.text(max_size=30),
    request=st.text(max_size=40),
    status=st.text(max_size=5),
    size=st.text(max_size=8),
)
def test_any_values_in_the_ncsa_shape_never_raise(
    host: str, user: str, stamp: str, request: str, status: str, size: str
) -> None:
    line = f'{host} - {user} [{stamp}] "{request}" {status} {size}'
    result = NcsaParser(SOURCE).feed(line.encode("utf-8", "surrogatepass"), 0)
    assert result is None or isinstance(result, dict | DeadLetter)


def test_a_literal_plus_in_an_ncsa_user_agent_is_kept() -> None:
    line = (
        b'66.249.66.1 - - [15/Jun/2024:12:00:02 +0000] "GET / HTTP/1.1" 200 10 "-" '
        b'"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"'
    )
    event = NcsaParser(Source(path="a.log", host_name="h", file_id="f")).feed(line, 0)
    assert isinstance(event, dict)
    assert event["user_agent"]["original"].endswith("+http://www.google.com/bot.html)")
