from __future__ import annotations

import pytest

from iiswatch.ingest.ecs_access import AccessFieldError, build_access_event
from iiswatch.ingest.model import Source

SOURCE = Source(path="C:/inetpub/logs/u_ex240501.log", host_name="collector-1", file_id="f1")


def build(**values: str) -> dict:
    base = {"date": "2024-05-01", "time": "10:11:12"}
    base.update({k.replace("_", "-"): v for k, v in values.items()})
    return build_access_event(base, raw=b"the raw line\r", offset=42, source=SOURCE)


def test_the_smallest_event_has_timestamp_identity_and_provenance() -> None:
    event = build()
    assert event["@timestamp"] == "2024-05-01T10:11:12.000Z"
    assert event["event"] == {
        "kind": "event",
        "category": ["web"],
        "module": "iis",
        "dataset": "iis.access",
        "original": "the raw line",
    }
    assert event["log"] == {"file": {"path": SOURCE.path}, "offset": 42}
    assert event["iiswatch"] == {"file_id": "f1", "format": "w3c"}
    assert event["host"] == {"name": "collector-1"}
    assert "ingested" not in event["event"]


def test_dashes_are_left_out_not_stored() -> None:
    event = build(c_ip="-", cs_username="-", sc_status="-")
    assert "source" not in event and "user" not in event and "http" not in event
    assert "-" not in list(leaves(event))


def leaves(doc: object) -> list[object]:
    if isinstance(doc, dict):
        return [x for v in doc.values() for x in leaves(v)]
    if isinstance(doc, list):
        return [x for v in doc for x in leaves(v)]
    return [doc]


def test_addresses_ports_and_ipv6_zone_ids_follow_elastic() -> None:
    values = {"s-ip": "fe80::1%4", "c-ip": "10.0.0.9", "s-port": "443", "c-port": "50000"}
    event = build(**{k.replace("-", "_"): v for k, v in values.items()})
    assert event["destination"] == {"address": "fe80::1%4", "ip": "fe80::1", "port": 443}
    assert event["source"] == {"address": "10.0.0.9", "ip": "10.0.0.9", "port": 50000}
    assert event["related"]["ip"] == ["10.0.0.9", "fe80::1"]
    assert event["event"]["category"] == ["web", "network"]
    assert event["event"]["type"] == ["connection"]


def test_a_host_name_in_an_address_is_kept_without_an_ip() -> None:
    event = build(c_ip="client.example")
    assert event["source"] == {"address": "client.example"}


def test_http_fields_and_outcome() -> None:
    event = build(
        cs_method="POST", sc_status="404", cs_version="HTTP/2", sc_bytes="10", cs_bytes="20"
    )
    assert event["http"] == {
        "request": {"method": "POST", "body": {"bytes": 20}},
        "response": {"status_code": 404, "body": {"bytes": 10}},
        "version": "2",
    }
    assert event["event"]["outcome"] == "failure"
    assert build(sc_status="399")["event"]["outcome"] == "success"


def test_plus_means_space_in_user_agent_referrer_and_cookie() -> None:
    event = build(
        **{
            "cs(User-Agent)": "Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64;+rv:81.0)+Gecko/20100101"
            "+Firefox/81.0",
            "cs(Referer)": "https://a.example/x+y",
            "cs(Cookie)": "a=1;+b=2",
        }
    )
    assert event["user_agent"]["original"].startswith("Mozilla/5.0 (Windows NT 10.0;")
    assert event["user_agent"]["name"] == "Firefox"
    assert event["user_agent"]["os"] == {"name": "Windows", "version": "10", "full": "Windows 10"}
    assert event["http"]["request"]["referrer"] == "https://a.example/x y"
    assert event["iis"]["access"]["cookie"] == "a=1; b=2"


def test_url_stays_raw_and_detection_fields_are_decoded() -> None:
    event = build(cs_uri_stem="/scripts/..%255c../Cmd.ExE", cs_uri_query="a=%27+or+1")
    assert event["url"] == {
        "original": "/scripts/..%255c../Cmd.ExE",
        "path": "/scripts/..%255c../Cmd.ExE",
        "extension": "exe",
        "query": "a=%27+or+1",
    }
    assert event["iiswatch"]["url"] == {
        "path": "/scripts/..%5c../Cmd.ExE",
        "path_twice": "/scripts/..\\../Cmd.ExE",
        "query": "a=' or 1",
        "query_twice": "a=' or 1",
        "uri": "/scripts/..%5c../Cmd.ExE?a=' or 1",
    }


def test_cs_host_becomes_destination_and_url_domain_without_its_port() -> None:
    event = build(cs_host="www.example.com:8443")
    assert event["destination"]["domain"] == "www.example.com"
    assert event["url"]["domain"] == "www.example.com"
    assert event["url"]["port"] == 8443


@pytest.mark.parametrize(
    ("logged", "name", "domain"),
    [
        ("CORP\\alice", "alice", "CORP"),
        ("alice@corp.example", "alice", "corp.example"),
        ("CORP\\alice@corp.example", "alice", "corp.example"),
        ("alice", "alice", None),
    ],
)
def test_user_names_split_into_name_and_domain(logged: str, name: str, domain: str | None) -> None:
    event = build(cs_username=logged)
    assert event["user"].get("name") == name
    assert event["user"].get("domain") == domain
    assert event["related"]["user"] == [name]


def test_server_name_is_the_host_lower_cased() -> None:
    event = build(s_computername="WEB-01", s_sitename="W3SVC1")
    assert event["host"] == {"name": "web-01"}
    assert event["related"]["hosts"] == ["web-01"]
    assert event["iis"]["access"] == {"server_name": "WEB-01", "site_name": "W3SVC1"}


def test_forwarded_for_keeps_every_address_and_the_first_as_forwarded_ip() -> None:
    event = build(**{"X-Forwarded-For": "203.0.113.7,+10.0.0.1,unknown"})
    assert event["network"] == {"forwarded_ip": "203.0.113.7"}
    assert event["iis"]["access"]["forwarded_for"] == ["203.0.113.7", "10.0.0.1", "unknown"]
    ported = build(**{"cs(X-Forwarded-For)": "[2001:db8::1]:443"})
    assert ported["network"] == {"forwarded_ip": "2001:db8::1"}


def test_duration_sub_status_and_win32_status() -> None:
    event = build(time_taken="15", sc_substatus="4", sc_win32_status="64")
    assert event["event"]["duration"] == 15_000_000
    assert event["iis"]["access"] == {"sub_status": 4, "win32_status": 64}


def test_custom_fields_land_under_iis_access_custom() -> None:
    event = build(**{"x-correlation.id": "abc", "OriginalIP": "-"})
    assert event["iis"]["access"]["custom"] == {"x-correlation_id": "abc"}


def test_a_given_timestamp_replaces_date_and_time() -> None:
    event = build_access_event(
        {"@timestamp": "2024-05-01T08:11:12.000Z", "c-ip": "10.0.0.1"},
        raw=b"x",
        offset=0,
        source=SOURCE,
        fmt="ncsa",
    )
    assert event["@timestamp"] == "2024-05-01T08:11:12.000Z"
    assert event["iiswatch"]["format"] == "ncsa"


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({}, "no date and time"),
        ({"date": "2024-13-01", "time": "10:11:12"}, "date: not a calendar date"),
        ({"date": "2024-05-01", "time": "25:00:00"}, "time: not HH:MM:SS"),
        ({"date": "2024-05-01", "time": "10:11:12", "sc-status": "OK"}, "sc-status: expected"),
        ({"date": "2024-05-01", "time": "10:11:12", "time-taken": "1.5"}, "time-taken: expected"),
    ],
)
def test_values_that_cannot_stand_in_an_event_raise_a_field_error(
    values: dict[str, str], reason: str
) -> None:
    with pytest.raises(AccessFieldError, match=reason):
        build_access_event(values, raw=b"x", offset=0, source=SOURCE)
