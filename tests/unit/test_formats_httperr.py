"""HTTP.sys HTTPERR parsing: layouts, ECS fields, dead letters, any bytes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iiswatch.ingest.ecs_error import url_parts
from iiswatch.ingest.formats.httperr import KNOWN_LAYOUTS, HttpErrParser
from iiswatch.ingest.model import DeadLetter, Source

SOURCE = Source(
    path="C:/Windows/System32/LogFiles/HTTPERR/httperr1.log", host_name="web01", file_id="f1"
)


@pytest.fixture(autouse=True)
def paris_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # HTTPERR times are UTC: a non-UTC local zone must not move them.
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def parse(*lines: str) -> list[object]:
    parser = HttpErrParser(SOURCE)
    return [parser.feed(line.encode(), i * 100) for i, line in enumerate(lines)]


CLASSIC = (
    "2018-01-01 08:09:10 172.31.77.6 2094 172.31.77.7 80 HTTP/1.1 GET /qos/1kbfile.txt "
    "503 - ConnLimit -"
)


def test_a_headerless_classic_line_becomes_an_ecs_error_event() -> None:
    [event] = parse(CLASSIC)
    assert isinstance(event, dict)
    assert event["@timestamp"] == "2018-01-01T08:09:10.000Z"
    assert event["source"] == {"ip": "172.31.77.6", "address": "172.31.77.6", "port": 2094}
    assert event["destination"] == {"ip": "172.31.77.7", "address": "172.31.77.7", "port": 80}
    assert event["http"] == {
        "version": "1.1",
        "request": {"method": "GET"},
        "response": {"status_code": 503},
    }
    assert event["url"] == {
        "original": "/qos/1kbfile.txt",
        "path": "/qos/1kbfile.txt",
        "extension": "txt",
    }
    assert event["iis"] == {"error": {"reason_phrase": "ConnLimit"}}
    assert event["event"] == {
        "kind": "event",
        "module": "iis",
        "dataset": "iis.error",
        "original": CLASSIC,
        "category": ["web", "network"],
        "type": ["connection"],
        "outcome": "failure",
    }
    assert event["related"] == {"ip": ["172.31.77.6", "172.31.77.7"]}
    assert event["log"] == {"file": {"path": SOURCE.path}, "offset": 0}
    assert event["host"] == {"name": "web01"}
    assert event["iiswatch"]["file_id"] == "f1"
    assert event["iiswatch"]["format"] == "httperr"
    assert "ingested" not in event["event"]


def test_empty_columns_are_omitted_not_indexed_as_dashes() -> None:
    [event] = parse(
        "2018-01-01 11:12:13 81.2.69.143 64388 127.0.0.1 80 - - - - - Timer_MinBytesPerSecond -"
    )
    assert isinstance(event, dict)
    assert "http" not in event and "url" not in event
    assert "outcome" not in event["event"]
    assert event["iis"] == {"error": {"reason_phrase": "Timer_MinBytesPerSecond"}}


def test_ipv6_zone_id_stays_in_address_and_leaves_the_ip() -> None:
    [event] = parse(
        "2018-12-30 14:22:07 ::1%0 49958 fe80::1%4 80 - - - - - - Timer_ConnectionIdle -"
    )
    assert isinstance(event, dict)
    assert event["source"]["address"] == "::1%0"
    assert event["source"]["ip"] == "::1"
    assert event["destination"] == {"address": "fe80::1%4", "ip": "fe80::1", "port": 80}
    assert event["related"]["ip"] == ["::1", "fe80::1"]


def test_each_fields_header_block_sets_the_columns_that_follow() -> None:
    results = parse(
        "#Software: Microsoft HTTP API 2.0",
        "#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri streamid "
        "sc-status s-siteid s-reason s-queuename",
        "2024-01-01 00:00:00 10.0.0.1 1 10.0.0.2 443 HTTP/2.0 GET /a 7 404 2 NotFound -",
        "#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri sc-status "
        "s-siteid s-reason s-queuename",
        "2024-01-01 00:00:01 10.0.0.1 1 10.0.0.2 443 HTTP/1.1 GET /b 404 2 NotFound -",
    )
    assert results[0] is None and results[1] is None and results[3] is None
    first, second = results[2], results[4]
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["iis"]["error"] == {"streamid": "7", "site_id": "2", "reason_phrase": "NotFound"}
    assert second["iis"]["error"] == {"site_id": "2", "reason_phrase": "NotFound"}


def test_headerless_server_2022_layout_carries_stream_ids_and_transport() -> None:
    [event] = parse(
        "2023-06-01 12:00:01 203.0.113.51 50001 192.0.2.20 443 HTTP/3.0 GET /b 9 0x1 503 1 "
        "QueueFull DefaultAppPool QUIC"
    )
    assert isinstance(event, dict)
    assert event["iis"]["error"] == {
        "streamid": "9",
        "streamid_ex": "0x1",
        "site_id": "1",
        "reason_phrase": "QueueFull",
        "queue_name": "DefaultAppPool",
        "transport": "QUIC",
    }
    assert event["http"]["version"] == "3.0"


def test_known_layouts_start_and_end_like_http_sys_writes_them() -> None:
    for width, fields in KNOWN_LAYOUTS.items():
        assert len(fields) == width
        assert fields[:2] == ("date", "time")
        assert "s-reason" in fields and "sc-status" in fields


def test_detection_fields_are_decoded_once_and_twice_with_case_kept() -> None:
    [event] = parse(
        "2024-03-31 00:59:58 203.0.113.7 50123 192.0.2.10 443 HTTP/1.1 GET "
        "/Scripts/..%255c..%255cWinnt/cmd.exe?/c+dir 400 - URL -"
    )
    assert isinstance(event, dict)
    assert event["url"]["path"] == "/Scripts/..%255c..%255cWinnt/cmd.exe"
    assert event["url"]["query"] == "/c+dir"
    assert event["iiswatch"]["url"] == {
        "path": "/Scripts/..%5c..%5cWinnt/cmd.exe",
        "path_twice": "/Scripts/..\\..\\Winnt/cmd.exe",
        "query": "/c dir",
        "query_twice": "/c dir",
        "uri": "/Scripts/..%5c..%5cWinnt/cmd.exe?/c dir",
    }


def test_absolute_form_uri_splits_scheme_host_and_port() -> None:
    assert url_parts("http://intranet.example:8080/Default.aspx?a=1") == {
        "original": "http://intranet.example:8080/Default.aspx?a=1",
        "scheme": "http",
        "domain": "intranet.example",
        "port": 8080,
        "path": "/Default.aspx",
        "query": "a=1",
        "extension": "aspx",
    }


def test_backslash_traversal_still_gets_a_url_path() -> None:
    # Elastic's uri_parts gives up on backslashes; detections need the path.
    assert (
        url_parts("/..\\pixfir~1\\how_to_login.html")["path"] == "/..\\pixfir~1\\how_to_login.html"
    )
    assert url_parts("*") == {"original": "*", "path": "*"}
    assert "extension" not in url_parts("./../")
    assert url_parts("12.2.1")["extension"] == "1"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "2024-03-31 01:00:08 192.0.2.1 70000 192.0.2.10 80 HTTP/1.1 GET / 400 - BadRequest -",
            "c-port '70000' is out of range",
        ),
        (
            "2024-02-30 01:00:08 192.0.2.1 7 192.0.2.10 80 HTTP/1.1 GET / 400 - BadRequest -",
            "is not YYYY-MM-DD HH:MM:SS",
        ),
        (
            "2024-03-31 01:00:08 192.0.2.1 7 192.0.2.10 80 HTTP/1.1 GET / 4x0 - BadRequest -",
            "sc-status '4x0' is not a non-negative integer",
        ),
        ("just some words", "match no known HTTPERR layout"),
    ],
)
def test_bad_lines_become_dead_letters_that_say_why(line: str, reason: str) -> None:
    [result] = parse(line)
    assert isinstance(result, DeadLetter)
    assert reason in result.reason
    assert result.raw == line.encode()
    assert result.format == "httperr"
    assert result.offset == 0


def test_a_client_column_that_is_no_ip_keeps_the_event_with_the_address_only() -> None:
    [event] = parse(
        "2024-03-31 01:00:08 not-an-ip 1 192.0.2.10 80 HTTP/1.1 GET / 400 - BadRequest -"
    )
    assert isinstance(event, dict)
    assert event["source"] == {"address": "not-an-ip", "port": 1}
    assert event["related"] == {"ip": ["192.0.2.10"]}
    assert event["event"]["category"] == ["web"]
    assert "type" not in event["event"]


def test_a_line_wider_than_its_fields_header_is_a_dead_letter() -> None:
    results = parse(
        "#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri sc-status "
        "s-siteid s-reason s-queuename",
        "2024-01-01 00:00:01 10.0.0.1 1 10.0.0.2 443 HTTP/1.1 GET /b 404 2 NotFound - extra",
    )
    assert isinstance(results[1], DeadLetter)
    assert "#Fields names 13 columns but the line has 14" in results[1].reason


def test_directives_and_blank_lines_yield_nothing() -> None:
    assert parse("", "   ", "#Version: 1.0", "#Date: 2024-01-01 00:00:00", "\r") == [None] * 5


def test_state_round_trips_through_json_and_restores_the_layout() -> None:
    parser = HttpErrParser(SOURCE)
    parser.feed(
        b"#Fields: date time c-ip c-port s-ip s-port cs-version cs-method cs-uri "
        b"sc-status s-siteid s-reason s-queuename",
        0,
    )
    state = orjson.loads(orjson.dumps(parser.state()))
    resumed = HttpErrParser(SOURCE)
    resumed.restore(state)
    # 14 columns would be the stream-id layout without a header; the restored header refuses it.
    line = b"2024-01-01 00:00:01 10.0.0.1 1 10.0.0.2 443 HTTP/1.1 GET /b 7 404 2 NotFound -"
    assert isinstance(resumed.feed(line, 10), DeadLetter)
    assert isinstance(HttpErrParser(SOURCE).feed(line, 10), dict)


@given(st.binary(max_size=300))
def test_any_bytes_give_an_event_a_dead_letter_or_nothing(data: bytes) -> None:
    result = HttpErrParser(SOURCE).feed(data, 0)
    assert result is None or isinstance(result, dict | DeadLetter)
    if isinstance(result, dict):
        orjson.dumps(result)


@given(
    st.lists(
        st.text(
            alphabet=st.characters(exclude_categories=["Zs", "Cc", "Cs"]), min_size=1, max_size=8
        ),
        min_size=13,
        max_size=16,
    )
)
def test_any_tokens_in_a_known_width_never_raise(tokens: list[str]) -> None:
    line = " ".join(["2024-01-01", "00:00:00", "10.0.0.1", "1", "10.0.0.2", "80", *tokens[6:]])
    result = HttpErrParser(SOURCE).feed(line.encode(), 0)
    assert result is None or isinstance(result, dict | DeadLetter)
