"""Integration tests run against the real local Elasticsearch that `scripts/test` starts
(and `.ci/run` in CI). Without it they fail, loudly: they never skip."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from datetime import date

import pytest
from elasticsearch import Elasticsearch

from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.elastic.indices import DEADLETTER_INDEX

pytestmark = pytest.mark.integration

_months = itertools.count(os.getpid() % 97)


def _client(purpose: Purpose) -> Elasticsearch:
    try:
        es = client_for(purpose)
        es.security.authenticate()  # any user may; `GET /` is absent from this build
    except Exception as e:  # any reason: say it and what to run
        pytest.fail(
            f"integration tests need the local test Elasticsearch ({e}); "
            "run `bash scripts/test`, or `pytest tests/unit` for unit tests only",
            pytrace=False,
        )
    return es


@pytest.fixture(scope="session")
def admin_es() -> Elasticsearch:
    return _client(Purpose.ADMIN)


@pytest.fixture(scope="session")
def writer_es(admin_es: Elasticsearch) -> Elasticsearch:
    return _client(Purpose.WRITER)


@pytest.fixture(scope="session")
def reader_es(admin_es: Elasticsearch) -> Elasticsearch:
    return _client(Purpose.READER)


@pytest.fixture
def test_month(admin_es: Elasticsearch) -> Iterator[date]:
    """A calendar month (in the 1990s-2010s) no other test uses: log indices are monthly by
    event time, so each test's events land in indices of their own, deleted afterwards."""
    n = next(_months) % 300
    month = date(1990 + n // 12, n % 12 + 1, 1)
    suffix = f"{month.year}.{month.month:02d}"
    yield month
    admin_es.indices.delete(
        index=f"iis-access-{suffix},iis-error-{suffix}", ignore_unavailable=True
    )


@pytest.fixture
def host_name(request: pytest.FixtureRequest, admin_es: Elasticsearch) -> Iterator[str]:
    """A host name unique to the test; its dead letters are removed afterwards."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:40]
    name = f"test-{safe}-{os.getpid()}"
    yield name
    delete_matching(admin_es, DEADLETTER_INDEX, {"term": {"host.name": name}})


def delete_matching(es: Elasticsearch, index: str, query: dict[str, object]) -> int:
    """Delete the documents a query matches. The minimal distribution has no
    _delete_by_query (it lives in the reindex module), so: search ids, bulk-delete them."""
    es.indices.refresh(index=index, ignore_unavailable=True)
    deleted = 0
    while True:
        hits = es.search(
            index=index, query=query, size=1000, source=False, ignore_unavailable=True
        )["hits"]["hits"]
        if not hits:
            return deleted
        ops = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
        es.bulk(operations=ops, refresh=True)
        deleted += len(hits)
