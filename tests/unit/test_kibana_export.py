"""The Kibana saved objects: committed and current, every reference resolves, every field a
visualization or a saved search names exists in the data view, aggregatable where it is
aggregated. (tests/integration/test_kibana_content.py checks them against the real node.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iiswatch.kibana import fields
from iiswatch.kibana.export import DEFAULT_OUT, export_text
from iiswatch.kibana.objects import DATA_VIEWS
from iiswatch.rules.loader import load_rules

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in export_text().splitlines()]


def view_fields() -> dict[str, dict[str, fields.FieldInfo]]:
    return {
        view_id: fields.union(*(fields.template_fields(t) for t in templates))
        for view_id, _, _, _, templates in DATA_VIEWS
    }


def test_committed_export_is_current() -> None:
    committed = (REPO / DEFAULT_OUT).read_text(encoding="utf-8")
    assert committed == export_text(), "run `iiswatch kibana export` and commit the result"


def test_ids_are_unique_and_every_reference_resolves(objects: list[dict[str, Any]]) -> None:
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(ids) == len(set(ids))
    for o in objects:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, f"{o['id']}: dangling {ref}"
        # every reference name used inside the attributes is declared, and vice versa
        names = {r["name"] for r in o["references"]}
        attrs = json.dumps(o["attributes"])
        for name in names:
            assert name.split(":")[-1] in attrs, f"{o['id']}: reference {name} unused"
        if o["type"] == "dashboard":
            panels = json.loads(o["attributes"]["panelsJSON"])
            assert {f"{p['panelIndex']}:{p['panelRefName']}" for p in panels} == names


def test_one_saved_search_per_rule(objects: list[dict[str, Any]]) -> None:
    searches = {o["id"] for o in objects if o["type"] == "search"}
    assert searches == {f"iiswatch-rule-{lr.rule.id}" for lr in load_rules()}


def test_time_fields_are_dates() -> None:
    known = view_fields()
    for view_id, _, _, time_field, _ in DATA_VIEWS:
        assert known[view_id][time_field].type == "date"


def _view_of(o: dict[str, Any]) -> str:
    (ref,) = [r for r in o["references"] if r["type"] == "index-pattern"]
    return str(ref["id"])


def test_visualized_fields_exist_and_aggregate(objects: list[dict[str, Any]]) -> None:
    known = view_fields()
    checked = 0
    for o in objects:
        if o["type"] != "visualization":
            continue
        view = known[_view_of(o)]
        for agg in json.loads(o["attributes"]["visState"])["aggs"]:
            name = agg["params"].get("field")
            if name is None:
                continue
            assert name in view, f"{o['id']}: no field {name} in {_view_of(o)}"
            assert view[name].aggregatable, f"{o['id']}: {name} is not aggregatable"
            if agg["type"] in ("max", "avg", "sum"):
                assert view[name].numeric, f"{o['id']}: {agg['type']} of non-numeric {name}"
            checked += 1
    assert checked >= 15


def test_saved_search_columns_exist(objects: list[dict[str, Any]]) -> None:
    known = view_fields()
    for o in objects:
        if o["type"] == "search":
            view = known[_view_of(o)]
            missing = [c for c in o["attributes"]["columns"] if c not in view]
            assert not missing, f"{o['attributes']['title']}: unknown columns {missing}"


def test_an_unknown_field_is_caught() -> None:
    """The field check itself works: a mapping-less name is not in the logs view."""
    assert "url.no_such_field" not in view_fields()["iiswatch-logs"]
    assert not view_fields()["iiswatch-logs"]["url.original.text"].aggregatable


def test_ticket_links_open_the_exported_logs_view() -> None:
    from iiswatch.alerting.config import AlertingConfig
    from iiswatch.kibana.objects import LOGS_VIEW

    assert AlertingConfig().kibana_data_view == LOGS_VIEW
