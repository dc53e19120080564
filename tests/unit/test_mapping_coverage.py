"""Every field the parsers emit is mapped explicitly: templates use `dynamic: false`, so an
unmapped field would be stored but silently unsearchable."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from iiswatch.cli.demo.sample_day import write_sample_day
from iiswatch.elastic.indices import index_for
from iiswatch.elastic.setup import INDEX_TEMPLATES, load_mapping
from iiswatch.ingest.model import DeadLetter
from iiswatch.ingest.pipeline import parse_file

GOLDEN = Path(__file__).parent.parent / "golden"


def mapped_paths(template_file: str) -> tuple[set[str], list[str]]:
    """Leaf field paths of the component + index template, and dynamic path prefixes."""
    paths: set[str] = set()
    dynamic: list[str] = []

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], path + ".")
            elif spec.get("type") == "object" and spec.get("dynamic"):
                dynamic.append(path + ".")
            else:
                paths.add(path)

    walk(load_mapping("component-ecs-common.json")["template"]["mappings"]["properties"], "")
    walk(load_mapping(template_file)["template"]["mappings"]["properties"], "")
    return paths, dynamic


def leaf_paths(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in doc.items():
        if isinstance(v, dict):
            out |= leaf_paths(v, f"{prefix}{k}.")
        else:
            out.add(f"{prefix}{k}")
    return out


TEMPLATE_FOR_INDEX = {
    "iis-access-": "template-iis-access.json",
    "iis-error-": "template-iis-error.json",
    "iiswatch-deadletter": "template-deadletter.json",
}


def _template_for(index: str) -> str:
    return next(t for prefix, t in TEMPLATE_FOR_INDEX.items() if index.startswith(prefix))


def _all_sample_logs(tmp: Path) -> list[Path]:
    write_sample_day(tmp, day=date(2026, 11, 26), requests=3000)
    return sorted(p for p in tmp.rglob("*.log")) + sorted(GOLDEN.glob("*.log"))


def test_every_field_the_parsers_emit_is_mapped(tmp_path: Path) -> None:
    assert set(TEMPLATE_FOR_INDEX.values()) <= set(INDEX_TEMPLATES.values())
    unmapped: dict[str, set[str]] = {}
    checked = 0
    for log in _all_sample_logs(tmp_path):
        for source, _off, out in parse_file(log, host_name="h"):
            doc = out.to_doc(source) if isinstance(out, DeadLetter) else out
            doc.setdefault("event", {})["ingested"] = "2026-01-01T00:00:00Z"
            template = _template_for(index_for(doc))
            paths, dynamic = mapped_paths(template)
            for p in leaf_paths(doc):
                if p not in paths and not any(p.startswith(d) for d in dynamic):
                    unmapped.setdefault(template, set()).add(p)
            checked += 1
    assert checked > 1000
    assert unmapped == {}


@pytest.mark.parametrize("template", sorted(set(TEMPLATE_FOR_INDEX.values())))
def test_log_templates_have_patterns_and_the_common_component(template: str) -> None:
    t = load_mapping(template)
    assert t["index_patterns"] and t["composed_of"] == ["iiswatch-ecs-common"]
