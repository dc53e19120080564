"""Alerts into the real Request Tracker (scripts/rt/start-rt.sh): the ticket says what
on-call needs, a retried delivery never opens a second ticket, the same group firing
again while the ticket is open is a comment, and an RT outage ends in exactly one ticket.
Tickets are read back through REST: RT drops unknown custom fields without an error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from iiswatch.alerting.config import AlertingConfig, parse_config
from iiswatch.alerting.delivery import Deliverer, resolve
from iiswatch.alerting.destinations import build
from iiswatch.alerting.destinations.request_tracker import RequestTracker
from iiswatch.alerting.outbox import Outbox
from iiswatch.alerting.templates import group_ref
from iiswatch.errors import DeliveryError
from tests.integration.alerting_support import (
    Rt,
    alerting_client,
    outbox_index,
    rt_from_env,
    unique_alert,
)

pytestmark = pytest.mark.integration

HOSTILE = "cmd={{7*7}}&x={% raw %}{% if 1 %}{% endraw %}&y={{ ''.__class__ }}"


@pytest.fixture(scope="module")
def rt() -> Rt:
    return rt_from_env()


@pytest.fixture
def made(rt: Rt) -> Iterator[set[str]]:
    """Ticket ids a test created; deleted afterwards."""
    ids: set[str] = set()
    yield ids
    if rt.up():
        for t in ids:
            rt.delete(t)


@pytest.fixture(scope="module")
def es() -> Elasticsearch:
    return alerting_client()


@pytest.fixture
def index(es: Elasticsearch) -> Iterator[str]:
    name = outbox_index()
    yield name
    es.indices.delete(index=name, ignore_unavailable=True)


def config(rt: Rt, **extra: Any) -> AlertingConfig:
    cf = extra.pop("custom_fields", None)
    text = f"""
kibana_url = "https://kibana.example.org:5601"
[delivery]
backoff_base = "10ms"
backoff_max = "50ms"
quick_attempts = 1
[destinations.servicedesk]
type = "request_tracker"
url = "{rt.url}"
queue = "General"
token = "{rt.token}"
requestor = "soc@example.test"
timeout = "5s"
"""
    if cf is not None:
        text += "custom_fields = {" + ", ".join(f'{k} = "{v}"' for k, v in cf.items()) + "}\n"
    return parse_config(text)


def test_an_alert_becomes_a_ticket_with_queue_subject_priority_fields_and_evidence(
    rt: Rt, made: set[str]
) -> None:
    alert = unique_alert()
    alert["samples"][0]["event"]["original"] += " " + HOSTILE
    result = build("servicedesk", config(rt)).deliver(alert)
    made.add(str(result.ticket_id))

    assert result.action == "created"
    assert result.url == f"{rt.url}/Ticket/Display.html?id={result.ticket_id}"
    t = rt.ticket(str(result.ticket_id))
    assert t["Queue"]["id"] == "1"  # General
    assert t["Subject"].startswith(
        "[iiswatch] CRITICAL: Web shell command execution parameters — source.ip=203.0.113.9"
    )
    assert t["Priority"] == "100"  # critical
    assert t["Status"] == "new"
    assert [r["id"] for r in t["Requestor"]] == ["soc@example.test"]
    cfs = rt.custom_fields(str(result.ticket_id))
    assert cfs["Severity"] == ["critical"]
    assert cfs["IiswatchAlertId"] == [alert["alert_id"]]
    assert cfs["IiswatchGroup"] == [group_ref(alert)]
    body = rt.contents(str(result.ticket_id))[0]
    assert body["ContentType"] == "text/plain"
    text = body["Content"]
    assert "cmd=Cmd.ExE+/c+whoami" in text  # evidence: the raw log line
    assert HOSTILE in text  # log content is shown, never evaluated
    assert "TA0003 / T1505.003" in text
    assert "https://kibana.example.org:5601/app/discover#/?_g=(time:(from:" in text


def test_the_same_alert_delivered_twice_is_one_ticket(
    rt: Rt, made: set[str], es: Elasticsearch, index: str
) -> None:
    cfg = config(rt)
    alert = unique_alert()
    outbox = Outbox(es, index)
    assert outbox.put_new(alert, destinations=["servicedesk"]) is True
    assert outbox.put_new(alert, destinations=["servicedesk"]) is False

    first = Deliverer(es, cfg, index=index).deliver_pending(ids=[alert["alert_id"]])
    assert [r.status for r in first] == ["delivered"]
    made.add(str(first[0].results[0].ticket_id))
    # a second deliverer (another process, or a retry after a crash before the outbox
    # heard back) hands the same alert to RT again
    again = build("servicedesk", cfg).deliver(alert)
    assert again.action == "reused" and again.ticket_id == first[0].results[0].ticket_id
    assert rt.tickets_for_alert(alert["alert_id"]) == [first[0].results[0].ticket_id]
    # and the outbox does not deliver a delivered alert again
    assert Deliverer(es, cfg, index=index).deliver_pending(ids=[alert["alert_id"]]) == []


def test_the_group_firing_again_while_its_ticket_is_open_adds_a_comment(
    rt: Rt, made: set[str]
) -> None:
    dest = build("servicedesk", config(rt))
    first = unique_alert()
    created = dest.deliver(first)
    made.add(str(created.ticket_id))
    later = unique_alert(group=first["group"])  # same rule and group, a later window
    later["samples"][0]["event"]["original"] = "2026-11-25 12:30:00 later line " + HOSTILE

    commented = dest.deliver(later)
    assert commented.action == "commented" and commented.ticket_id == created.ticket_id
    again = dest.deliver(later)  # a retry of the comment: not a second comment
    assert again.action == "reused" and again.ticket_id == created.ticket_id

    tid = str(created.ticket_id)
    assert sorted(rt.custom_fields(tid)["IiswatchAlertId"]) == sorted(
        [first["alert_id"], later["alert_id"]]
    )
    messages = rt.contents(tid)
    assert len(messages) == 2
    assert messages[1]["Subject"].startswith("Fired again: [iiswatch] CRITICAL")
    assert "later line " + HOSTILE in messages[1]["Content"]


def test_a_resolved_ticket_is_not_commented_on_the_next_alert_opens_a_new_one(
    rt: Rt, made: set[str], es: Elasticsearch, index: str
) -> None:
    cfg = config(rt)
    first = unique_alert()
    outbox = Outbox(es, index)
    outbox.put_new(first, destinations=["servicedesk"])
    report = Deliverer(es, cfg, index=index).deliver_pending(ids=[first["alert_id"]])[0]
    tid = str(report.results[0].ticket_id)
    made.add(tid)

    assert resolve(es, cfg, first["alert_id"], index=index) == [tid]
    assert rt.ticket(tid)["Status"] == "resolved"
    rec = outbox.get(first["alert_id"])
    assert rec is not None and rec.status == "resolved"

    again = build("servicedesk", cfg).deliver(unique_alert(group=first["group"]))
    made.add(str(again.ticket_id))
    assert again.action == "created" and again.ticket_id != tid


@pytest.mark.restarts_shared
def test_rt_down_for_a_while_ends_in_exactly_one_ticket(
    rt: Rt, made: set[str], es: Elasticsearch, index: str
) -> None:
    cfg = config(rt)
    alert = unique_alert()
    outbox = Outbox(es, index)
    outbox.put_new(alert, destinations=["servicedesk"])
    now = datetime.now(UTC)
    t0 = time.monotonic()
    rt.stop()
    stopped = time.monotonic() - t0
    try:
        down = Deliverer(es, cfg, index=index).deliver_pending(now, ids=[alert["alert_id"]])
        assert down[0].status == "new" and down[0].next_attempt_at is not None
        assert "cannot reach Request Tracker servicedesk" in down[0].errors["servicedesk"]
        # a second pass before the next attempt time leaves it alone
        assert Deliverer(es, cfg, index=index).deliver_pending(now, ids=[alert["alert_id"]]) == []
    finally:
        t1 = time.monotonic()
        rt.start()
        started = time.monotonic() - t1
    print(f"RT stop {stopped:.2f}s, start {started:.2f}s")

    later = now + timedelta(seconds=5)
    up = Deliverer(es, cfg, index=index).deliver_pending(later, ids=[alert["alert_id"]])
    assert up[0].status == "delivered"
    made.add(str(up[0].results[0].ticket_id))
    assert rt.tickets_for_alert(alert["alert_id"]) == [up[0].results[0].ticket_id]
    rec = outbox.get(alert["alert_id"])
    assert rec is not None
    outcomes = [(a["outcome"], a.get("action")) for a in rec.delivery["attempts"]]
    assert outcomes == [("retryable", None), ("delivered", "created")]
    assert rec.delivery["tickets"][0]["id"] == up[0].results[0].ticket_id


def test_a_custom_field_missing_from_the_queue_is_refused_before_any_ticket(rt: Rt) -> None:
    cfg = config(rt, custom_fields={"Severity": "{{ alert.severity }}", "NoSuchField": "x"})
    alert = unique_alert()
    with pytest.raises(DeliveryError, match="no custom field NoSuchField") as e:
        build("servicedesk", cfg).deliver(alert)
    assert e.value.retryable is False
    assert rt.tickets_for_alert(alert["alert_id"]) == []


def test_a_wrong_token_is_a_permanent_failure(rt: Rt) -> None:
    cfg = config(Rt(rt.url, "1-14-00000000000000000000000000000000"))
    dest = build("servicedesk", cfg)
    assert isinstance(dest, RequestTracker)
    with pytest.raises(DeliveryError, match="answered 401") as e:
        dest.deliver(unique_alert())
    assert e.value.retryable is False


def test_a_group_quiet_for_the_configured_time_has_its_ticket_resolved(
    rt: Rt, made: set[str], es: Elasticsearch, index: str
) -> None:
    from iiswatch.alerting.autoresolve import auto_resolve

    cfg = config(rt)
    outbox = Outbox(es, index)
    outbox.ensure_index()
    t0 = datetime.now(UTC)
    quiet, busy = unique_alert(), unique_alert()
    outbox.put_new(quiet, destinations=["servicedesk"], now=t0)
    outbox.put_new(busy, destinations=["servicedesk"], now=t0 + timedelta(hours=2))
    deliverer = Deliverer(es, cfg, index=index)
    for a in (quiet, busy):
        deliverer.deliver_pending(t0 + timedelta(hours=3), ids=[a["alert_id"]])
        made.update(rt.tickets_for_alert(a["alert_id"]))
    es.indices.refresh(index=index)

    # an hour after the busy group's last alert: only the quiet group has been clear for 2h
    done = auto_resolve(es, cfg, timedelta(hours=2), t0 + timedelta(hours=3), index=index)

    assert done == [quiet["alert_id"]]
    [quiet_ticket] = rt.tickets_for_alert(quiet["alert_id"])
    [busy_ticket] = rt.tickets_for_alert(busy["alert_id"])
    assert rt.ticket(quiet_ticket)["Status"] == "resolved"
    assert rt.ticket(busy_ticket)["Status"] != "resolved"
    assert outbox.get(quiet["alert_id"]).status == "resolved"  # type: ignore[union-attr]
    es.indices.refresh(index=index)
    assert auto_resolve(es, cfg, timedelta(hours=2), t0 + timedelta(hours=3), index=index) == []
