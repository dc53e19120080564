"""Sigma aggregations in a condition (`count() by c-ip > 50`) become threshold and
cardinality rules (before: rejected with `no query produced`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iiswatch.rules.loader import load_rules
from iiswatch.rules.sigma import Converted, Rejected, convert_file, split_aggregation

RULE = """title: {title}
id: {id}
status: test
description: A client that requests many pages.
author: test
logsource:
  category: webserver
detection:
  selection:
    cs-method: GET
  condition: {condition}
level: medium
"""


def convert(tmp_path: Path, condition: str) -> Converted | Rejected:
    f = tmp_path / "agg.yml"
    f.write_text(
        RULE.format(
            title="Many requests", id="5d0a1b86-4b3c-4f5e-9a7e-2f3b0f1c9a11", condition=condition
        )
    )
    (r,) = convert_file(f)
    return r


def test_count_by_field_becomes_a_threshold_rule_that_loads(tmp_path: Path) -> None:
    r = convert(tmp_path, "selection | count() by c-ip > 50")
    assert isinstance(r, Converted), r
    doc = yaml.safe_load(r.text)
    assert doc["type"] == "threshold"
    assert doc["lucene"] == "http.request.method:GET"
    assert doc["group_by"] == ["source.ip"]
    assert doc["threshold"] == {"value": 51}  # "> 50" is "at least 51"
    out = tmp_path / "rules"
    out.mkdir()
    (out / "r.yaml").write_text(r.text)
    (lr,) = load_rules(out)
    assert lr.rule.threshold is not None and lr.rule.threshold.value == 51


def test_count_of_a_field_becomes_a_cardinality_rule(tmp_path: Path) -> None:
    r = convert(tmp_path, "selection | count(cs-uri-stem) by c-ip >= 20")
    assert isinstance(r, Converted), r
    doc = yaml.safe_load(r.text)
    assert doc["type"] == "cardinality"
    assert doc["cardinality"] == {"field": "iiswatch.url.path", "value": 20}


def test_other_aggregations_are_rejected_with_a_reason(tmp_path: Path) -> None:
    r = convert(tmp_path, "selection | max(time-taken) by c-ip > 5")
    assert isinstance(r, Rejected)
    assert "threshold or cardinality" in r.reasons[0]


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("selection", ("selection", None)),
        ("selection and not filter | count() > 10", ("selection and not filter", 11)),
    ],
)
def test_split_aggregation(cond: str, expected: tuple[str, int | None]) -> None:
    split = split_aggregation(cond)
    assert split is not None
    rest, agg = split
    assert rest == expected[0]
    assert (agg.value if agg else None) == expected[1]
