"""Risk-based alerting, the pure part: how findings add up to incidents, and silences."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from iiswatch.alerting.risk import (
    IncidentPolicy,
    entity_values,
    incident_id,
    offline_incidents,
    opens,
    risk,
    search_command,
    severity,
)
from iiswatch.alerting.silences import Silence, parse_matches
from iiswatch.errors import UsageError
from iiswatch.rules.model import Rule

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = IncidentPolicy(threshold=100)


def alert(
    rule: str,
    risk_score: int,
    minutes: float,
    ip: str = "203.0.113.9",
    *,
    severity: str = "medium",
    n: int = 0,
) -> dict[str, Any]:
    t = T0 + timedelta(minutes=minutes)
    return {
        "alert_id": f"{rule}-{ip}-{minutes}-{n}",
        "rule": {"id": rule, "name": rule.replace("-", " ")},
        "severity": severity,
        "risk_score": risk_score,
        "group": {"source.ip": ip},
        "source": {"ip": [ip]},
        "first_event": t.isoformat(),
        "last_event": (t + timedelta(seconds=30)).isoformat(),
        "event_count": 3,
        "samples": [{"host.name": "web01", "url": {"domain": "shop.example.org"}}],
    }


def finding(a: dict[str, Any], at_once: bool = False) -> dict[str, Any]:
    return {**a, "opens_at_once": at_once}


def test_one_noisy_rule_firing_again_and_again_never_opens_an_incident() -> None:
    noise = [finding(alert("scanner-volume", 25, m, n=m)) for m in range(0, 600, 5)]
    assert risk(noise, POLICY.window) == 25
    assert opens(noise, POLICY) is None


def test_different_rules_from_one_address_add_up_to_an_incident() -> None:
    found = [finding(alert("sqli", 73, 0)), finding(alert("scanner-ua", 50, 3))]
    assert risk(found, POLICY.window) == 123
    assert "threshold" in str(opens(found, POLICY))


def test_a_rule_marked_always_opens_an_incident_at_once() -> None:
    found = [finding(alert("webshell", 90, 0, severity="critical"), at_once=True)]
    assert opens(found, IncidentPolicy(threshold=1000)) is not None


def test_findings_older_than_the_window_no_longer_count() -> None:
    old = finding(alert("sqli", 73, 0))
    new = finding(alert("scanner-ua", 50, 60 * 25))  # 25 h later
    assert risk([old, new], timedelta(hours=24)) == 50
    assert opens([old, new], POLICY) is None


def test_severity_rises_with_the_risk_of_later_findings() -> None:
    found = [finding(alert("a", 60, 0)), finding(alert("b", 60, 1))]
    assert severity(found, POLICY) == "medium"
    found.append(finding(alert("c", 90, 2)))  # 210: twice the threshold
    assert severity(found, POLICY) == "high"
    found.append(finding(alert("d", 99, 3)))  # 309: three times
    assert severity(found, POLICY) == "critical"


def test_the_entity_comes_from_the_group_else_the_alerts_own_list() -> None:
    a = alert("x", 10, 0)
    assert entity_values(a, "source.ip") == ["203.0.113.9"]
    a["group"] = {"url.path": "/login.aspx"}
    a["source"] = {"ip": ["198.51.100.1", "198.51.100.2", "198.51.100.1"]}
    assert entity_values(a, "source.ip") == ["198.51.100.1", "198.51.100.2"]


def test_incident_ids_are_the_same_in_every_process_and_differ_per_generation() -> None:
    assert incident_id("source.ip", "203.0.113.9", 1) == incident_id("source.ip", "203.0.113.9", 1)
    assert incident_id("source.ip", "203.0.113.9", 1) != incident_id("source.ip", "203.0.113.9", 2)


def test_offline_incidents_tell_one_story_per_attacker_and_leave_noise_out() -> None:
    pairs = [
        (alert("scanner-ua", 50, 0), None),
        (alert("sqli", 73, 10), None),
        (alert("sqli", 73, 20, n=1), None),
        (alert("scanner-volume", 25, 0, ip="192.0.2.50"), None),  # noise
        (alert("404-burst", 47, 5, ip="192.0.2.60"), None),  # noise
    ]
    found = offline_incidents(pairs, POLICY)
    assert len(found) == 1
    inc = found[0]
    assert inc["source"]["ip"] == ["203.0.113.9"]
    assert inc["rule_names"] == ["scanner ua", "sqli"]
    assert inc["risk_score"] == 123
    assert inc["first_event"].startswith("2026-11-25T12:00:00")
    assert inc["last_event"].startswith("2026-11-25T12:20:30")
    assert len(inc["findings"]) == 3
    assert inc["hosts"] == ["web01"] and inc["sites"] == ["shop.example.org"]


def test_the_search_command_is_shell_safe_and_covers_the_event_times() -> None:
    hostile = "$(echo expanded)"
    cmd = search_command(
        "user_agent.original", hostile, "2026-11-25T12:00:00Z", "2026-11-25T12:05:00Z"
    )
    argv = shlex.split(cmd)
    assert argv[:2] == ["iiswatch", "search"]
    assert argv[2] == 'user_agent.original:"$(echo expanded)"'
    assert argv[argv.index("--from") + 1] == "2026-11-25T12:00:00.000Z"
    assert argv[argv.index("--to") + 1] == "2026-11-25T12:05:01.000Z"


RULE = {
    "id": "b48343f6-dc99-427c-842d-de56f95dc38a",
    "name": "x",
    "description": "x",
    "author": "x",
    "status": "test",
    "severity": "critical",
    "risk_score": 90,
    "type": "match",
    "lucene": "a:b",
}


def test_a_rule_that_opens_incidents_at_once_runs_every_5_seconds_unless_it_says() -> None:
    assert Rule.model_validate(RULE | {"opens_incident": "always"}).schedule.interval == timedelta(
        seconds=5
    )
    r = Rule.model_validate(
        RULE | {"opens_incident": "always", "schedule": {"interval": "1m", "lookback": "5m"}}
    )
    assert r.schedule.interval == timedelta(minutes=1)
    assert Rule.model_validate(RULE).schedule.interval == timedelta(minutes=5)
    with pytest.raises(ValueError):
        Rule.model_validate(RULE | {"opens_incident": "sometimes"})


def _silence(**match: str) -> Silence:
    return Silence("s1", match, T0 + timedelta(hours=1), "pentest", "alice", T0)


def test_a_silence_matches_an_address_a_network_and_every_field_it_names() -> None:
    a = alert("sqli", 73, 0)
    assert _silence(**{"source.ip": "203.0.113.9"}).matches(a)
    assert _silence(**{"source.ip": "203.0.113.0/24"}).matches(a)
    assert not _silence(**{"source.ip": "203.0.114.0/24"}).matches(a)
    assert _silence(**{"source.ip": "203.0.113.9", "rule.name": "sqli"}).matches(a)
    assert not _silence(**{"source.ip": "203.0.113.9", "rule.name": "other"}).matches(a)
    assert _silence().active(T0) and not _silence().active(T0 + timedelta(hours=2))


def test_silence_matches_from_the_command_line_are_checked() -> None:
    assert parse_matches(["source.ip=203.0.113.9"]) == {"source.ip": "203.0.113.9"}
    for bad in (["source.ip"], ["=x"], ["source.ip=not-an-ip"]):
        with pytest.raises(UsageError):
            parse_matches(bad)
    with pytest.raises(UsageError):
        parse_matches([])


# The pack's rules whose one finding is a ticket under the default threshold: an attack
# being tried (injection, traversal, inclusion, guessing passwords), its success (a file
# served, a sign-in after the guessing), a technique only a scanner aimed at this site uses
# (IIS short names, a wordlist paced under the burst rules), and the web shell. The rest
# are suspicious only in bulk or in company and need another rule's finding.
ALONE = {
    "SQL injection in the query string",
    "Time-based blind SQL injection",
    "Path traversal in the URL",
    "Local or remote file inclusion",
    "Password guessing on a login page",
    "Sign-in succeeded after many failures",
    "Sensitive file served",
    "IIS short-name (tilde) enumeration",
    "Slow walk of missing paths from one client",
    "Web shell command execution parameters",
    "Web shell upload then command execution",
    "First request to a script in an upload folder",
}


def test_which_rules_of_the_pack_open_a_ticket_on_their_own() -> None:
    from iiswatch.alerting.risk import finding_from_alert
    from iiswatch.alerting.service_config import IncidentSettings
    from iiswatch.rules.loader import default_rules_dir, load_rules

    policy = IncidentSettings().policy()
    alone = set()
    for lr in load_rules(default_rules_dir()):
        r = lr.rule
        a = alert(r.rule_id, r.risk_score, 0) | {"rule": {"id": r.rule_id, "name": r.name}}
        if opens([finding_from_alert(a, r)], policy) is not None:
            alone.add(r.name)
    assert alone == ALONE
