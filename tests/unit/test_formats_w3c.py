from __future__ import annotations

from iiswatch.ingest.formats.w3c import W3CParser, match_default_layout
from iiswatch.ingest.model import DeadLetter, Source
from iiswatch.ingest.parse import LogParser, parse_lines

SOURCE = Source(path="u_ex240501.log", host_name="collector-1", file_id="f1")
HEADER = [
    b"#Software: Microsoft Internet Information Services 10.0",
    b"#Version: 1.0",
    b"#Date: 2024-05-01 00:00:00",
]
SMALL = b"#Fields: date time c-ip cs-method cs-uri-stem sc-status"


def feed_all(parser: W3CParser | LogParser, lines: list[bytes]) -> list[object]:
    out: list[object] = []
    offset = 0
    for line in lines:
        out.append(parser.feed(line, offset))
        offset += len(line) + 2
    return out


def test_directives_and_blank_lines_give_nothing() -> None:
    parser = W3CParser(SOURCE)
    assert feed_all(parser, [*HEADER, SMALL, b"", b"   ", b"\x00\x00\x00"]) == [None] * 7
    assert parser.fields == ("date", "time", "c-ip", "cs-method", "cs-uri-stem", "sc-status")


def test_fields_are_read_again_at_every_header_block() -> None:
    parser = W3CParser(SOURCE)
    first, second = feed_all(
        parser,
        [
            SMALL,
            b"2024-05-01 10:00:00 10.0.0.1 GET /a 200",
            b"#Fields: time date sc-status cs-uri-stem s-computername",
            b"10:00:01 2024-05-01 500 /b WEB1",
        ],
    )[1::2]
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["source"]["ip"] == "10.0.0.1" and first["url"]["path"] == "/a"
    assert second["@timestamp"] == "2024-05-01T10:00:01.000Z"
    assert second["http"]["response"]["status_code"] == 500
    assert second["host"]["name"] == "web1"
    assert "source" not in second


def test_field_names_are_case_insensitive_and_custom_fields_are_kept() -> None:
    parser = W3CParser(SOURCE)
    _, event = feed_all(
        parser,
        [
            b"#Fields: DATE Time C-IP cs(user-agent) x-forwarded-for OriginalHost",
            b"2024-05-01 10:00:00 10.0.0.1 curl/8.0 198.51.100.4,+10.0.0.7 shop.example",
        ],
    )
    assert isinstance(event, dict)
    assert event["user_agent"]["original"] == "curl/8.0"
    assert event["network"]["forwarded_ip"] == "198.51.100.4"
    assert event["iis"]["access"]["forwarded_for"] == ["198.51.100.4", "10.0.0.7"]
    assert event["iis"]["access"]["custom"] == {"OriginalHost": "shop.example"}


def test_crlf_and_invalid_utf8_never_break_a_line() -> None:
    parser = W3CParser(SOURCE)
    _, event = feed_all(parser, [SMALL, b"2024-05-01 10:00:00 10.0.0.1 GET /caf\xe9\xff 200\r"])
    assert isinstance(event, dict)
    assert event["url"]["path"] == "/caf\ufffd\ufffd"
    assert event["event"]["original"].endswith(" 200")


def test_a_line_that_does_not_fit_the_fields_is_a_dead_letter_with_the_counts() -> None:
    parser = W3CParser(SOURCE)
    _, dead = feed_all(parser, [SMALL, b"2024-05-01 10:00:00 10.0.0.1 GET"])
    assert isinstance(dead, DeadLetter)
    assert dead.reason == "expected 6 fields per #Fields, got 4"
    assert dead.format == "w3c" and dead.offset == len(SMALL) + 2


def test_a_bad_value_is_a_dead_letter_naming_the_field() -> None:
    parser = W3CParser(SOURCE)
    _, dead = feed_all(parser, [SMALL, b"2024-05-01 10:00:00 10.0.0.1 GET / OK"])
    assert isinstance(dead, DeadLetter)
    assert dead.reason.startswith("sc-status: expected a whole number")


def test_headerless_lines_are_read_by_the_iis_default_layout() -> None:
    line = (
        b"2024-05-01 10:00:00 10.0.0.5 GET /index.aspx id=1 443 - 203.0.113.9 "
        b"Mozilla/5.0+(X11;+Linux+x86_64) https://ref.example/ 200 0 0 31"
    )
    (event,) = feed_all(W3CParser(SOURCE), [line])
    assert isinstance(event, dict)
    assert event["destination"]["ip"] == "10.0.0.5"
    assert event["source"]["ip"] == "203.0.113.9"
    assert event["http"]["request"]["referrer"] == "https://ref.example/"
    assert event["event"]["duration"] == 31_000_000


def test_headerless_lines_with_a_forwarded_for_and_extra_tokens() -> None:
    tokens = [
        "2023-08-28",
        "07:37:00",
        "exchange01",
        "10.44.0.131",
        "POST",
        "/EWS/Exchange.asmx",
        "-",
        "443",
        "EX\\u1",
        "10.119.1.75",
        "OC/16.0",
        "-",
        "200",
        "0",
        "0",
        "52",
        "10.10.10.7",
        "59050",
    ]
    values = match_default_layout(tokens)
    assert values is not None
    assert values["s-computername"] == "exchange01"
    assert values["X-Forwarded-For"] == "10.10.10.7"
    assert values["trailing"] == "59050"


def test_a_headerless_line_that_fits_no_layout_is_a_dead_letter() -> None:
    (dead,) = feed_all(W3CParser(SOURCE), [b"hello world"])
    assert isinstance(dead, DeadLetter)
    assert "no #Fields directive yet" in dead.reason


def test_state_restores_the_layout_in_force() -> None:
    parser = W3CParser(SOURCE)
    feed_all(parser, [SMALL])
    resumed = W3CParser(SOURCE)
    resumed.restore(parser.state())
    (event,) = feed_all(resumed, [b"2024-05-01 10:00:00 10.0.0.1 GET /a 200"])
    assert isinstance(event, dict) and event["url"]["path"] == "/a"
    resumed.restore({"fields": 12})  # garbage state: back to header-less reading
    assert resumed.fields is None


def test_logparser_switches_to_httperr_at_an_http_api_header() -> None:
    parser = LogParser(SOURCE, "w3c")
    parser.feed(b"#Software: Microsoft HTTP API 2.0", 0)
    assert parser.format_name == "httperr"
    parser.feed(b"#Software: Microsoft Internet Information Services 10.0", 40)
    assert parser.format_name == "w3c"


def test_logparser_state_round_trips() -> None:
    parser = LogParser(SOURCE)
    parser.feed(SMALL, 0)
    resumed = LogParser(SOURCE)
    resumed.restore(parser.state())
    assert resumed.format_name == "w3c"
    result = resumed.feed(b"2024-05-01 10:00:00 10.0.0.1 GET /a 200", 60)
    assert isinstance(result, dict) and result["log"]["offset"] == 60


def test_parse_lines_skips_directives() -> None:
    lines = [(SMALL, 0), (b"2024-05-01 10:00:00 10.0.0.1 GET /a 200", 60), (b"bad", 100)]
    results = list(parse_lines(lines, SOURCE, fmt="w3c"))
    assert [type(r).__name__ for r in results] == ["dict", "DeadLetter"]
