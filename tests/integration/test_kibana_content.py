"""The exported Kibana content against the real Elasticsearch: the fields each data view's
objects name exist in `_field_caps` of indices made from our templates (aggregatable where
a visualization aggregates them), and every query validates with `_validate/query`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from iiswatch.elastic.indices import DEADLETTER_INDEX
from iiswatch.kibana.export import export_text
from iiswatch.kibana.objects import DATA_VIEWS

TITLES = {view_id: title for view_id, title, _, _, _ in DATA_VIEWS}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in export_text().splitlines()]


@pytest.fixture
def indices_for_views(admin_es: Elasticsearch, test_month: date) -> Iterator[None]:
    """An index behind every data view, made from our templates (empty: mappings suffice)."""
    suffix = f"{test_month.year}.{test_month.month:02d}"
    alerts = f"iiswatch-alerts-kibanatest-{os.getpid()}"
    for name in (f"iis-access-{suffix}", f"iis-error-{suffix}", alerts, DEADLETTER_INDEX):
        if not admin_es.indices.exists(index=name):
            admin_es.indices.create(index=name)
    yield
    admin_es.indices.delete(index=alerts, ignore_unavailable=True)


def _view(o: dict[str, Any]) -> str:
    (ref,) = [r for r in o["references"] if r["type"] == "index-pattern"]
    return TITLES[ref["id"]]


def _source(o: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]))


def _es_query(source: dict[str, Any]) -> dict[str, Any]:
    """What Kibana sends for a search source: the Lucene bar and the filters, ANDed."""
    clauses: list[dict[str, Any]] = []
    if text := source["query"]["query"]:
        assert source["query"]["language"] == "lucene"
        clauses.append({"query_string": {"query": text, "analyze_wildcard": True}})
    clauses += [f["query"] for f in source.get("filter", [])]
    return {"bool": {"filter": clauses}}


def test_fields_exist_and_aggregate_in_field_caps(
    admin_es: Elasticsearch, indices_for_views: None, objects: list[dict[str, Any]]
) -> None:
    caps: dict[str, dict[str, Any]] = {}
    for title in TITLES.values():
        caps[title] = admin_es.field_caps(index=title, fields="*")["fields"]
    checked = 0
    for o in objects:
        if o["type"] == "visualization":
            view = caps[_view(o)]
            for agg in json.loads(o["attributes"]["visState"])["aggs"]:
                if name := agg["params"].get("field"):
                    assert name in view, f"{o['id']}: {name} not in {_view(o)}"
                    assert all(c["aggregatable"] for c in view[name].values()), (
                        f"{o['id']}: {name} not aggregatable"
                    )
                    checked += 1
        elif o["type"] == "search":
            view = caps[_view(o)]
            for col in o["attributes"]["columns"]:
                assert col in view, f"{o['attributes']['title']}: no field {col}"
                checked += 1
    assert checked > 30


def test_every_query_validates(
    admin_es: Elasticsearch, indices_for_views: None, objects: list[dict[str, Any]]
) -> None:
    validated = 0
    for o in objects:
        if o["type"] not in ("search", "visualization"):
            continue
        resp = admin_es.indices.validate_query(
            index=_view(o), query=_es_query(_source(o)), explain=True
        )
        assert resp["valid"], f"{o['id']}: {resp.get('explanations')}"
        validated += 1
    assert validated == sum(o["type"] in ("search", "visualization") for o in objects)


def test_a_broken_query_is_reported(admin_es: Elasticsearch, indices_for_views: None) -> None:
    """The validation itself rejects what Kibana would fail on."""
    resp = admin_es.indices.validate_query(
        index="iis-*", query=_es_query({"query": {"query": "url.path:(", "language": "lucene"}})
    )
    assert not resp["valid"]
