"""The attacks of issue 10, each a test that failed before the fix. They run against the real
collector process and the real test Elasticsearch, like the integration tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date

import pytest
from elasticsearch import Elasticsearch

from tests.integration import conftest as integration

# the integration tests' fixtures: the real Elasticsearch, unique host names
admin_es = integration.admin_es
writer_es = integration.writer_es
reader_es = integration.reader_es
host_name = integration.host_name

_months = itertools.count(1)


@pytest.fixture
def month_1988(admin_es: Elasticsearch) -> Iterator[date]:
    """A month of 1988 for this test's log events (their monthly indices are removed after)."""
    month = date(1988, (next(_months) - 1) % 12 + 1, 1)
    yield month
    suffix = f"{month.year}.{month.month:02d}"
    admin_es.indices.delete(
        index=f"iis-access-{suffix},iis-error-{suffix}", ignore_unavailable=True
    )


@pytest.fixture
def witness_cleanup(admin_es: Elasticsearch, host_name: str) -> Iterator[None]:
    """Remove this test's witness and alert documents (keyed by its unique host name)."""
    yield
    for host in (host_name, f"{host_name}-b"):
        integration.delete_matching(admin_es, "iiswatch-integrity*", {"term": {"host": host}})
