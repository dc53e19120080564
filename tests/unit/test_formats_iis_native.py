"""IIS native (comma-separated, local time) parsing: columns, time zones, dead letters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import orjson
import pytest
import tzlocal
from hypothesis import given
from hypothesis import strategies as st

from iiswatch.errors import ConfigError
from iiswatch.ingest.formats.iis_native import FIELDS, IisNativeParser, local_to_utc, split_columns
from iiswatch.ingest.model import DeadLetter, Source

SOURCE = Source(
    path="C:/inetpub/logs/LogFiles/W3SVC1/in240714.log", host_name="web01", file_id="f2"
)
SAMPLE = (
    "192.168.114.201, -, 03/20/01, 7:55:20, W3SVC2, SALES1, 172.21.13.45, 4502, 163, 3223, "
    "200, 0, GET, /DeptLogo.gif, -,"
)


@pytest.fixture(autouse=True)
def paris_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The machine zone is the default for a local-time format: make it non-UTC so a missed
    # conversion shows.
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    tzlocal.reload_localzone()
    yield
    monkeypatch.undo()
    time.tzset()
    tzlocal.reload_localzone()


def test_microsoft_sample_line_maps_each_column_to_its_ecs_field() -> None:
    event = IisNativeParser(SOURCE, tz="America/Los_Angeles").feed(SAMPLE.encode(), 42)
    assert isinstance(event, dict)
    assert event["@timestamp"] == "2001-03-20T15:55:20.000Z"  # PST is UTC-8
    assert event["event"]["timezone"] == "America/Los_Angeles"
    assert event["source"] == {"address": "192.168.114.201", "ip": "192.168.114.201"}
    assert event["destination"] == {"address": "172.21.13.45", "ip": "172.21.13.45"}
    assert event["event"]["duration"] == 4502 * 1_000_000
    assert event["http"]["request"] == {"method": "GET", "body": {"bytes": 163}}
    assert event["http"]["response"] == {"status_code": 200, "body": {"bytes": 3223}}
    assert event["url"]["path"] == "/DeptLogo.gif"
    assert "query" not in event["url"]
    assert event["iis"]["access"]["site_name"] == "W3SVC2"
    assert event["iis"]["access"]["win32_status"] == 0
    assert event["iiswatch"]["format"] == "iis"
    assert event["event"]["original"] == SAMPLE
    assert event["log"] == {"file": {"path": SOURCE.path}, "offset": 42}
    assert "user" not in event


def test_the_machine_zone_is_used_when_none_is_given() -> None:
    event = IisNativeParser(SOURCE).feed(SAMPLE.encode(), 0)
    assert isinstance(event, dict)
    assert event["@timestamp"] == "2001-03-20T06:55:20.000Z"  # Paris, winter: UTC+1
    assert event["event"]["timezone"] == "Europe/Paris"


def test_summer_time_is_applied_for_the_date_of_the_line() -> None:
    assert local_to_utc("7/14/2024", "14:03:09", ZoneInfo("Europe/Paris")) == (
        "2024-07-14T12:03:09.000Z"
    )
    assert local_to_utc("1/14/2024", "14:03:09", ZoneInfo("Europe/Paris")) == (
        "2024-01-14T13:03:09.000Z"
    )


def test_repeated_autumn_hour_reads_as_the_first_and_spring_gap_does_not_fail() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert local_to_utc("10/27/2024", "2:30:00", paris) == "2024-10-27T00:30:00.000Z"
    # 2:30 never happens on that night; it is read with the offset in force before the jump.
    assert local_to_utc("3/31/2024", "2:30:00", paris) == "2024-03-31T01:30:00.000Z"


def test_two_digit_years_before_2000_and_after() -> None:
    utc = ZoneInfo("UTC")
    assert local_to_utc("03/20/98", "0:00:00", utc).startswith("1998-03-20")
    assert local_to_utc("8/18/06", "13:17:37", utc).startswith("2006-08-18")


def test_commas_in_target_and_parameters_stay_in_those_fields() -> None:
    columns = split_columns(
        "10.0.0.1, -, 1/2/2024, 10:00:00, W3SVC1, WEB01, 10.0.0.2, 1, 2, 3, 200, 0, GET, "
        "/a,b/x.aspx, id=1,2,"
    )
    assert columns is not None
    values = dict(zip(FIELDS, columns, strict=True))
    assert values["cs-uri-stem"] == "/a,b/x.aspx"
    assert values["cs-uri-query"] == "id=1,2"


def test_a_domain_user_becomes_user_name_and_domain() -> None:
    line = SAMPLE.replace(", -, 03/20/01", ", CONTOSO\\alice, 03/20/01")
    event = IisNativeParser(SOURCE, tz="UTC").feed(line.encode(), 0)
    assert isinstance(event, dict)
    assert event["user"] == {"name": "alice", "domain": "CONTOSO"}


def test_an_unknown_zone_name_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(ConfigError) as caught:
        IisNativeParser(SOURCE, tz="Mars/Olympus_Mons")
    assert caught.value.hint


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (SAMPLE.replace("03/20/01", "13/20/01"), "month must be in 1..12"),
        (SAMPLE.replace("7:55:20", "7h55"), "is not M/D/YY H:MM:SS"),
        (SAMPLE.replace(" 4502,", " fast,"), "time-taken: expected a whole number"),
        (SAMPLE.removesuffix(","), "expected 15 comma-separated fields"),
        ("a, b, c,", "expected 15 comma-separated fields"),
    ],
)
def test_bad_lines_become_dead_letters_that_say_why(line: str, reason: str) -> None:
    result = IisNativeParser(SOURCE, tz="UTC").feed(line.encode(), 7)
    assert isinstance(result, DeadLetter)
    assert reason in result.reason
    assert result.format == "iis"
    assert result.offset == 7
    assert result.raw == line.encode()


def test_blank_lines_yield_nothing_and_state_is_empty_json() -> None:
    parser = IisNativeParser(SOURCE, tz="UTC")
    assert parser.feed(b"", 0) is None
    assert parser.feed(b"  \r", 0) is None
    assert orjson.loads(orjson.dumps(parser.state())) == {}
    parser.restore({})


@given(st.binary(max_size=300))
def test_any_bytes_give_an_event_a_dead_letter_or_nothing(data: bytes) -> None:
    result = IisNativeParser(SOURCE, tz="Europe/Paris").feed(data, 0)
    assert result is None or isinstance(result, dict | DeadLetter)


@given(
    st.lists(
        st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=10),
        min_size=15,
        max_size=15,
    )
)
def test_any_fifteen_values_never_raise(values: list[str]) -> None:
    line = ", ".join(values) + ","
    result = IisNativeParser(SOURCE, tz="Europe/Paris").feed(line.encode(), 0)
    assert result is None or isinstance(result, dict | DeadLetter)
