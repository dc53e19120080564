"""Tests of the images in docker/ with the Docker SDK. Skipped unless IISWATCH_DOCKER_TESTS=1:
they build images (~10 min cold, ~30 s with the layer cache) and run the stack (several
minutes: Elasticsearch starting in a container, and the rule's one-minute windows)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("IISWATCH_DOCKER_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="set IISWATCH_DOCKER_TESTS=1 to build and run the images")
    for item in items:
        if "tests/docker/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
