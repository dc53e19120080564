"""The outbox in the real Elasticsearch: one document per alert id, one claimant at a
time (optimistic concurrency), abandoned claims taken over, statuses listed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch

from iiswatch.alerting.outbox import LostClaim, Outbox, Record
from tests.integration.alerting_support import alerting_client, outbox_index, unique_alert

pytestmark = pytest.mark.integration
TTL = timedelta(minutes=5)


@pytest.fixture(scope="module")
def es() -> Elasticsearch:
    return alerting_client()


@pytest.fixture
def outbox(es: Elasticsearch) -> Iterator[Outbox]:
    name = outbox_index()
    ob = Outbox(es, name)
    ob.ensure_index()
    yield ob
    es.indices.delete(index=name, ignore_unavailable=True)


def test_the_index_gets_the_outbox_mapping_from_its_template(
    es: Elasticsearch, outbox: Outbox
) -> None:
    props = es.indices.get_mapping(index=outbox.index)[outbox.index]["mappings"]["properties"]
    assert props["delivery"]["properties"]["status"]["type"] == "keyword"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["samples"] == {"type": "object", "enabled": False}


def test_an_alert_is_stored_once_whatever_the_retries(outbox: Outbox) -> None:
    alert = unique_alert()
    assert outbox.put_new(alert, destinations=["a", "b", "a"]) is True
    assert outbox.put_new(alert, destinations=["other"]) is False
    rec = outbox.get(alert["alert_id"])
    assert rec is not None
    assert rec.status == "new"
    assert rec.delivery["destinations"] == ["a", "b"]
    assert rec.alert["samples"] == alert["samples"]
    assert "delivery" not in rec.alert


def test_two_processes_claiming_at_once_get_it_once(outbox: Outbox) -> None:
    alert = unique_alert()
    outbox.put_new(alert, destinations=["a"])
    now = datetime.now(UTC)
    got: list[Record | None] = []
    barrier = threading.Barrier(6)

    def claim(owner: str) -> None:
        barrier.wait()
        got.append(outbox.claim(alert["alert_id"], owner=owner, now=now, ttl=TTL))

    threads = [threading.Thread(target=claim, args=(f"worker-{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in got if r is not None]
    assert len(winners) == 1
    rec = outbox.get(alert["alert_id"])
    assert rec is not None and rec.status == "delivering"
    assert rec.delivery["claim"]["owner"] == winners[0].delivery["claim"]["owner"]


def test_an_abandoned_claim_is_taken_over_and_the_old_owner_cannot_write(outbox: Outbox) -> None:
    alert = unique_alert()
    outbox.put_new(alert, destinations=["a"])
    now = datetime.now(UTC)
    old = outbox.claim(alert["alert_id"], owner="died", now=now, ttl=TTL)
    assert old is not None
    assert outbox.claim(alert["alert_id"], owner="other", now=now + TTL / 2, ttl=TTL) is None
    new = outbox.claim(alert["alert_id"], owner="other", now=now + TTL * 2, ttl=TTL)
    assert new is not None and new.delivery["claim"]["owner"] == "other"
    with pytest.raises(LostClaim):
        outbox.mark_delivered(old, now)
    assert outbox.mark_delivered(new, now).status == "delivered"


def test_an_alert_waits_for_its_next_attempt_time(outbox: Outbox) -> None:
    alert = unique_alert()
    now = datetime.now(UTC)
    outbox.put_new(alert, destinations=["a"], now=now)
    rec = outbox.claim(alert["alert_id"], owner="w", now=now, ttl=TTL)
    assert rec is not None
    rec = outbox.record_attempt(
        rec, destination="a", outcome="retryable", now=now, error="answered 503"
    )
    outbox.mark_pending(rec, now, now + timedelta(minutes=1))
    outbox.es.indices.refresh(index=outbox.index)

    assert outbox.claim(alert["alert_id"], owner="w", now=now, ttl=TTL) is None
    assert [r.alert_id for r in outbox.due(now)] == []
    later = now + timedelta(minutes=2)
    assert [r.alert_id for r in outbox.due(later)] == [alert["alert_id"]]
    assert outbox.claim(alert["alert_id"], owner="w", now=later, ttl=TTL) is not None


def test_alerts_are_listed_by_status_newest_first(outbox: Outbox) -> None:
    now = datetime.now(UTC)
    ids = []
    for i in range(3):
        a = unique_alert()
        outbox.put_new(a, destinations=["a"], now=now + timedelta(seconds=i))
        ids.append(a["alert_id"])
    rec = outbox.claim(ids[0], owner="w", now=now + timedelta(seconds=5), ttl=TTL)
    assert rec is not None
    outbox.mark_failed(rec, now, "a: answered 400")
    outbox.es.indices.refresh(index=outbox.index)

    assert [r.alert_id for r in outbox.list()] == ids[::-1]
    assert [r.alert_id for r in outbox.list("failed")] == [ids[0]]
    assert [r.alert_id for r in outbox.list("new")] == ids[:0:-1]


def test_only_failed_alerts_are_requeued(outbox: Outbox) -> None:
    alert = unique_alert()
    now = datetime.now(UTC)
    outbox.put_new(alert, destinations=["a"], now=now)
    rec = outbox.claim(alert["alert_id"], owner="w", now=now, ttl=TTL)
    assert rec is not None
    outbox.mark_delivered(rec, now)
    with pytest.raises(Exception, match="is delivered, not failed"):
        outbox.requeue(alert["alert_id"], now)
