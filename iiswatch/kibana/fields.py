"""The fields a data view sees, read from our index templates (the same JSON `iiswatch
setup` installs), with what Kibana needs to know: searchable and aggregatable.

Pure: nothing here talks to Elasticsearch. The integration test compares the result with
the real `_field_caps`, so the two cannot disagree silently."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from iiswatch.elastic.setup import COMPONENT, INDEX_TEMPLATES, load_mapping

# Field types whose values have doc values by default (terms, histograms, metrics work).
_DOC_VALUE_TYPES = {
    "keyword", "long", "integer", "short", "byte", "double", "float", "half_float",
    "scaled_float", "unsigned_long", "date", "date_nanos", "ip", "boolean", "constant_keyword",
    "version", "wildcard",
}  # fmt: skip
_NUMERIC = {
    "long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float",
    "unsigned_long",
}  # fmt: skip


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: str
    searchable: bool
    aggregatable: bool

    @property
    def numeric(self) -> bool:
        return self.type in _NUMERIC


def _walk(properties: Mapping[str, Any], prefix: str = "") -> Iterable[FieldInfo]:
    for key, spec in properties.items():
        name = f"{prefix}{key}"
        if "properties" in spec or spec.get("type") in (None, "object", "nested"):
            if spec.get("enabled", True) is False:
                continue  # stored, never indexed: invisible to search and aggregations
            yield from _walk(spec.get("properties", {}), f"{name}.")
            continue
        ftype = spec["type"]
        searchable = spec.get("index", True) is not False
        aggregatable = ftype in _DOC_VALUE_TYPES and spec.get("doc_values", True) is not False
        yield FieldInfo(name, ftype, searchable, aggregatable)
        for sub, subspec in spec.get("fields", {}).items():
            yield from _walk({sub: subspec}, f"{name}.")


def _mappings(template: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(template.get("template", {}).get("mappings", {}).get("properties", {}))


def template_fields(name: str) -> dict[str, FieldInfo]:
    """Every field an index made from the iiswatch index template `name` maps."""
    template = load_mapping(INDEX_TEMPLATES[name])
    props: dict[str, Any] = {}
    if COMPONENT in template.get("composed_of", []):
        props = _merge(props, _mappings(load_mapping("component-ecs-common.json")))
    props = _merge(props, _mappings(template))
    return {f.name: f for f in _walk(props)}


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Merge mapping properties the way composed templates do (later wins, objects merge)."""
    out = dict(a)
    for key, spec in b.items():
        if key in out and "properties" in out[key] and "properties" in spec:
            merged = dict(out[key])
            merged["properties"] = _merge(out[key]["properties"], spec["properties"])
            out[key] = merged
        else:
            out[key] = spec
    return out


def union(*field_sets: Mapping[str, FieldInfo]) -> dict[str, FieldInfo]:
    """The fields of a data view over several templates (`iis-*` sees access and error logs).
    A field counts as aggregatable only when it is so everywhere it is mapped."""
    out: dict[str, FieldInfo] = {}
    for fields in field_sets:
        for name, f in fields.items():
            prev = out.get(name)
            if prev is None:
                out[name] = f
            else:
                out[name] = FieldInfo(
                    name,
                    prev.type if prev.type == f.type else "conflict",
                    prev.searchable and f.searchable,
                    prev.aggregatable and f.aggregatable and prev.type == f.type,
                )
    return out
