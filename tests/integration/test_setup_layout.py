"""`iiswatch setup --shards N --replicas N`: the templates carry the layout, new indices get
it, existing iiswatch indices get the replica count; setup without them restores the
templates' own layout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from elasticsearch import Elasticsearch

from iiswatch.elastic.setup import Layout, run_setup


@pytest.fixture
def restore_templates(admin_es: Elasticsearch) -> Iterator[None]:
    yield
    run_setup(admin_es)  # the default layout again (1 shard, 0 replicas)


def test_layout_reaches_templates_and_new_indices(
    admin_es: Elasticsearch, test_month: date, restore_templates: None
) -> None:
    changes = run_setup(admin_es, Layout(shards=2, replicas=0))
    updated = {c.name for c in changes if c.kind == "index template" and c.action == "updated"}
    assert "iiswatch-iis-access" in updated
    index = f"iis-access-{test_month:%Y.%m}"
    admin_es.indices.create(index=index)
    settings = admin_es.indices.get_settings(index=index)[index]["settings"]["index"]
    assert settings["number_of_shards"] == "2"
    assert settings["number_of_replicas"] == "0"
    # the same layout again changes nothing
    again = run_setup(admin_es, Layout(shards=2, replicas=0))
    assert {c.action for c in again if c.kind == "index template"} == {"unchanged"}


def test_layout_only_overrides_what_is_given() -> None:
    template = {"template": {"settings": {"index": {"number_of_shards": 1}}}}
    assert Layout().apply(template) is template
    out = Layout(replicas=1).apply(template)
    assert out["template"]["settings"]["index"] == {"number_of_shards": 1, "number_of_replicas": 1}
    assert template["template"]["settings"]["index"] == {"number_of_shards": 1}
