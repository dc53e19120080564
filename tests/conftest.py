"""Shared test settings: a pinned non-UTC time zone, so time-zone bugs show; tests that
restart shared services last."""

import os
import time

import pytest

os.environ.setdefault("TZ", "Europe/Paris")
time.tzset()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop and restart the shared Elasticsearch or Request Tracker run last: if a
    restart fails, only they fail, not every test after them."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_shared") is not None)
