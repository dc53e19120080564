"""Any bytes in, an event, a dead letter or nothing out; never an exception."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iiswatch.ingest.ecs_access import KNOWN_FIELDS
from iiswatch.ingest.formats.w3c import W3CParser
from iiswatch.ingest.model import DeadLetter, Source
from iiswatch.ingest.normalize import detection_url
from iiswatch.ingest.parse import LogParser

SOURCE = Source(path="fuzz.log", host_name="fuzz", file_id="fuzz")
NAMES = [*sorted(KNOWN_FIELDS - {"@timestamp"}), "X-Custom", "a.b", "#", ""]

field_lists = st.lists(st.sampled_from(NAMES), min_size=1, max_size=25)
token = st.one_of(
    st.sampled_from(["-", "2024-05-01", "10:11:12", "200", "10.0.0.1", "fe80::1%3", "GET", "+"]),
    st.text(max_size=12).map(lambda s: s.replace(" ", "")),
)


def check(result: object) -> None:
    assert result is None or isinstance(result, (dict, DeadLetter))
    if isinstance(result, DeadLetter):  # a reason for a person, not a caught bug
        assert not result.reason.startswith("internal parser error"), result.reason
    if isinstance(result, dict):
        assert result["@timestamp"]
        assert isinstance(result["event"]["original"], str)
        orjson.dumps(result)  # every event must serialise for the sink


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.binary(max_size=300), max_size=8))
def test_any_bytes_give_an_event_a_dead_letter_or_nothing(lines: list[bytes]) -> None:
    parser = W3CParser(SOURCE)
    for offset, line in enumerate(lines):
        check(parser.feed(line, offset))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.binary(max_size=200), lines=st.lists(st.binary(max_size=200), max_size=4))
def test_any_fields_header_bytes_never_raise(header: bytes, lines: list[bytes]) -> None:
    parser = LogParser(SOURCE, "w3c")
    check(parser.feed(b"#Fields: " + header, 0))
    for offset, line in enumerate(lines, 1):
        check(parser.feed(line, offset))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(fields=field_lists, data=st.data())
def test_lines_shaped_like_their_fields_never_raise(fields: list[str], data: st.DataObject) -> None:
    parser = W3CParser(SOURCE)
    parser.feed(("#Fields: " + " ".join(fields)).encode("utf-8", "replace"), 0)
    tokens = data.draw(st.lists(token, min_size=len(fields), max_size=len(fields)))
    check(parser.feed(" ".join(tokens).encode("utf-8", "surrogatepass"), 1))


@given(path=st.text(), query=st.text())
def test_detection_url_never_raises(path: str, query: str) -> None:
    out = detection_url(path, query)
    assert set(out) <= {"path", "path_twice", "query", "query_twice", "uri"}
