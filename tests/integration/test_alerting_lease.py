"""`Lease.hold` against the real node: how a `--once` pass, which has no lease job beside it,
keeps the lease while it works and gives it up to a service that took it over. The clocks
are the leases' own (monotonic) clocks, moved by hand; the document and its conditional
writes are real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from elasticsearch import Elasticsearch

from iiswatch.alerting.lease import LEASE_INDEX, Lease

pytestmark = pytest.mark.integration

TTL = timedelta(seconds=9)  # renew_every: 3 s


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def name(admin_es: Elasticsearch) -> Iterator[str]:
    lease = f"test-{uuid.uuid4().hex[:10]}"
    yield lease
    admin_es.options(ignore_status=404).delete(index=LEASE_INDEX, id=lease)


def seq_no(es: Elasticsearch, name: str) -> int:
    return int(es.get(index=LEASE_INDEX, id=name, realtime=True)["_seq_no"])


def test_hold_renews_as_the_pass_goes_even_after_a_step_longer_than_the_ttl(
    admin_es: Elasticsearch, name: str
) -> None:
    clock = Clock()
    lease = Lease(admin_es, name, ttl=TTL, holder="once", clock=clock)
    assert lease.tick()
    taken = seq_no(admin_es, name)

    clock.t += 2  # within renew_every: no write
    assert lease.hold()
    assert seq_no(admin_es, name) == taken

    clock.t += 2  # past renew_every: renewed, as the service's lease job would
    assert lease.hold()
    renewed = seq_no(admin_es, name)
    assert renewed > taken
    assert lease.remaining() == TTL.total_seconds()

    clock.t += 60  # one step outlasted the whole TTL, and nobody took the lease meanwhile
    assert not lease.is_leader()
    assert lease.hold()
    assert seq_no(admin_es, name) > renewed
    info = lease.info()
    assert info is not None and info.holder == "once"


def test_hold_leaves_a_lease_another_service_took_over(admin_es: Elasticsearch, name: str) -> None:
    once_clock, service_clock = Clock(), Clock()
    once = Lease(admin_es, name, ttl=TTL, holder="once", clock=once_clock)
    service = Lease(admin_es, name, ttl=TTL, holder="service", clock=service_clock)
    assert once.tick()
    assert not service.tick()  # a standby: it watches the document
    # the pass is stuck in one long step; the standby waits out the TTL and takes over
    once_clock.t += 60
    service_clock.t += 10
    assert service.tick()

    assert not once.hold()
    service_clock.t += 4
    assert service.tick()  # the service renews; the pass stays stopped
    once_clock.t += 4
    assert not once.hold()
    info = once.info()
    assert info is not None and info.holder == "service"
