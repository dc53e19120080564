"""The access-log mappings as rules see them: the field names and types a rule may use, and
throwaway indices with exactly those mappings (`iiswatch-ruletest-<random>`) where
`rules validate` checks queries and `rules test` indexes its test lines."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from elasticsearch import Elasticsearch

from iiswatch.elastic.client import backend_errors
from iiswatch.elastic.setup import load_mapping

RULETEST_PREFIX = "iiswatch-ruletest-"
COMPONENT_FILE = "component-ecs-common.json"
ACCESS_FILE = "template-iis-access.json"
# field types Elasticsearch can group and count on (text cannot, `doc_values: false` neither)
AGGREGATABLE = {
    "keyword",
    "ip",
    "long",
    "integer",
    "short",
    "byte",
    "double",
    "float",
    "date",
    "boolean",
}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@cache
def _access_body() -> tuple[dict[str, Any], dict[str, Any]]:
    component = load_mapping(COMPONENT_FILE)["template"]
    access = load_mapping(ACCESS_FILE)["template"]
    settings = _merge(component.get("settings", {}), access.get("settings", {}))
    mappings = _merge(component.get("mappings", {}), access.get("mappings", {}))
    return settings, mappings


def access_index_body() -> dict[str, Any]:
    """Settings and mappings of an `iis-access-*` index, as the templates compose them."""
    settings, mappings = _access_body()
    return {"settings": settings, "mappings": mappings}


@cache
def mapped_fields() -> dict[str, dict[str, Any]]:
    """Every searchable field of the access index, dotted (`url.path`, multi-fields such as
    `iiswatch.url.path.text` too) → its mapping."""
    out: dict[str, dict[str, Any]] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], f"{path}.")
                continue
            out[path] = spec
            for sub, subspec in spec.get("fields", {}).items():
                out[f"{path}.{sub}"] = subspec

    walk(_access_body()[1].get("properties", {}), "")
    return out


def is_aggregatable(spec: dict[str, Any]) -> bool:
    return spec.get("type") in AGGREGATABLE and spec.get("doc_values", True) is not False


@contextmanager
def throwaway_index(es: Elasticsearch) -> Iterator[str]:
    """A fresh index with the access mappings, deleted on the way out whatever happens."""
    name = f"{RULETEST_PREFIX}{secrets.token_hex(6)}"
    with backend_errors(es):
        es.indices.create(index=name, **access_index_body())
    try:
        yield name
    finally:
        with backend_errors(es):
            es.indices.delete(index=name, ignore_unavailable=True)
