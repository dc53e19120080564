"""Kibana saved objects built from our mappings and rules.

Data views (`index-pattern` objects) for the logs, the dead letters and the alerts; one
saved search per rule (its query, the fields its alerts show); a traffic and a detections
dashboard of aggregation-based visualizations. Ids are stable names, so importing again
overwrites instead of duplicating, and ticket links can name a data view.

Kibana reads these formats since 8.8 (the migration versions below are what 8.8 writes);
newer Kibana migrates them on import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from iiswatch.elastic import indices
from iiswatch.rules.model import Rule

LOGS_VIEW = "iiswatch-logs"
DEADLETTER_VIEW = "iiswatch-deadletter"
ALERTS_VIEW = "iiswatch-alerts"
INCIDENTS_VIEW = "iiswatch-incidents"

# (view id, title = index pattern, display name, time field, templates whose fields it sees)
DATA_VIEWS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    (LOGS_VIEW, "iis-*", "IIS logs", "@timestamp", ("iiswatch-iis-access", "iiswatch-iis-error")),
    (
        DEADLETTER_VIEW,
        f"{indices.DEADLETTER_ALIAS}*",
        "iiswatch dead letters",
        "@timestamp",
        ("iiswatch-deadletter",),
    ),
    (ALERTS_VIEW, "iiswatch-alerts*", "iiswatch alerts", "@timestamp", ("iiswatch-alerts",)),
    (
        INCIDENTS_VIEW,
        "iiswatch-incidents*",
        "iiswatch incidents",
        "@timestamp",
        ("iiswatch-incidents",),
    ),
)

_MIGRATION = {
    "index-pattern": "8.0.0",
    "search": "8.0.0",
    "visualization": "8.5.0",
    "dashboard": "8.7.0",
}
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
_DATASETS = {"iis-access-*": "iis.access", "iis-error-*": "iis.error"}


@dataclass(frozen=True)
class SavedObject:
    type: str
    id: str
    attributes: Mapping[str, Any]
    references: Sequence[Mapping[str, str]] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "attributes": dict(self.attributes),
            "references": [dict(r) for r in self.references],
            "coreMigrationVersion": "8.8.0",
            "typeMigrationVersion": _MIGRATION[self.type],
            "managed": False,
        }


def _json(value: Any) -> str:
    """Kibana keeps nested state as JSON text inside attributes; sorted keys keep the
    export byte-stable."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _search_source(query: str = "", language: str = "lucene", filters: Iterable[Any] = ()) -> str:
    return _json(
        {
            "query": {"query": query, "language": language},
            "filter": list(filters),
            "indexRefName": _INDEX_REF,
        }
    )


def _view_ref(view: str) -> dict[str, str]:
    return {"name": _INDEX_REF, "type": "index-pattern", "id": view}


def custom_filter(alias: str, query: Mapping[str, Any]) -> dict[str, Any]:
    """A Kibana filter pill holding query DSL (how Discover shows a DSL rule)."""
    return {
        "meta": {
            "alias": alias,
            "disabled": False,
            "negate": False,
            "type": "custom",
            "key": "query",
            "value": _json(query),
            "indexRefName": _INDEX_REF,
        },
        "query": dict(query),
        "$state": {"store": "appState"},
    }


def data_views() -> list[SavedObject]:
    return [
        SavedObject(
            "index-pattern",
            view_id,
            {"title": title, "name": name, "timeFieldName": time_field, "allowHidden": False},
        )
        for view_id, title, name, time_field, _ in DATA_VIEWS
    ]


# --- a saved search per rule ---------------------------------------------------------


def rule_query(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """The rule's events as Discover can show them: a Lucene query bar and DSL filters.
    A sequence rule shows the events of any of its steps. Thresholds, cardinality and new
    terms are conditions over these events; Discover lists the events themselves."""
    lucene_parts: list[str] = []
    dsl: list[Mapping[str, Any]] = []
    sources: list[Any] = list(rule.sequence.steps) if rule.sequence else [rule]
    for src in sources:
        if src.lucene is not None:
            lucene_parts.append(f"({src.lucene})")
        if src.query is not None:
            dsl.append(src.query)
    filters: list[dict[str, Any]] = []
    if dataset := _DATASETS.get(rule.index):
        filters.append(custom_filter("dataset", {"term": {"event.dataset": dataset}}))
    if rule.sequence:
        # steps are alternatives: one filter (or query) that any step satisfies
        should = [{"query_string": {"query": p, "analyze_wildcard": True}} for p in lucene_parts]
        should += [dict(q) for q in dsl]
        filters.append(
            custom_filter(
                f"rule: {rule.name}", {"bool": {"should": should, "minimum_should_match": 1}}
            )
        )
        return "", filters
    filters += [custom_filter(f"rule: {rule.name}", q) for q in dsl]
    return " AND ".join(lucene_parts), filters


def rule_search_id(rule: Rule) -> str:
    return f"iiswatch-rule-{rule.id}"


def rule_search(rule: Rule) -> SavedObject:
    query, filters = rule_query(rule)
    columns = list(
        dict.fromkeys(
            [*(rule.alert.fields or ()), *(rule.group_by or ()), "url.original"]
            if rule.alert.fields
            else [*(rule.group_by or ()), "source.ip", "url.original"]
        )
    )
    return SavedObject(
        "search",
        rule_search_id(rule),
        {
            "title": f"Rule: {rule.name}",
            "description": (
                f"The events rule {rule.id} ({rule.type}, {rule.severity}) looks at. "
                "Generated by `iiswatch kibana export`; exceptions are not applied."
            ),
            "columns": columns,
            "sort": [["@timestamp", "desc"]],
            "grid": {},
            "hideChart": False,
            "isTextBasedQuery": False,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query, "lucene", filters)},
        },
        [_view_ref(LOGS_VIEW)],
    )


# --- visualizations and dashboards -----------------------------------------------------


@dataclass(frozen=True)
class Agg:
    """One aggregation of an aggregation-based visualization."""

    type: str  # count | max | avg | sum | terms | date_histogram
    schema: str  # metric | segment | group | bucket | split
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def field(self) -> str | None:
        value = self.params.get("field")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class Vis:
    id: str
    title: str
    vis_type: str  # histogram | line | table | pie
    view: str
    aggs: Sequence[Agg]
    query: str = ""  # Lucene on the data view
    params: Mapping[str, Any] = field(default_factory=dict)

    def saved_object(self) -> SavedObject:
        aggs = [
            {"id": str(i), "enabled": True, "type": a.type, "schema": a.schema, "params": a.params}
            for i, a in enumerate(self.aggs, start=1)
        ]
        state = {"title": self.title, "type": self.vis_type, "params": self.params, "aggs": aggs}
        return SavedObject(
            "visualization",
            self.id,
            {
                "title": self.title,
                "description": "",
                "version": 1,
                "visState": _json(state),
                "uiStateJSON": "{}",
                "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(self.query)},
            },
            [_view_ref(self.view)],
        )


def _over_time(field_: str = "@timestamp") -> Agg:
    return Agg(
        "date_histogram", "segment", {"field": field_, "interval": "auto", "min_doc_count": 1}
    )


def _terms(field_: str, schema: str, size: int = 10, order_by: str = "1") -> Agg:
    return Agg(
        "terms",
        schema,
        {"field": field_, "size": size, "order": "desc", "orderBy": order_by,
         "otherBucket": False, "missingBucket": False},
    )  # fmt: skip


_COUNT = Agg("count", "metric")
_ACCESS = "event.dataset:iis.access"
SLOW_NS = 5_000_000_000  # a request slower than 5 s is "slow" (event.duration is in ns)

TRAFFIC: tuple[Vis, ...] = (
    Vis("iiswatch-vis-requests-by-status", "Requests over time by status", "histogram",
        LOGS_VIEW, (_COUNT, _over_time(), _terms("http.response.status_code", "group", 10)),
        _ACCESS),
    Vis("iiswatch-vis-top-clients", "Top clients", "table", LOGS_VIEW,
        (_COUNT, _terms("source.ip", "bucket", 20)), _ACCESS),
    Vis("iiswatch-vis-top-urls", "Top URLs", "table", LOGS_VIEW,
        (_COUNT, _terms("url.path", "bucket", 20)), _ACCESS),
    Vis("iiswatch-vis-top-user-agents", "Top user agents", "table", LOGS_VIEW,
        (_COUNT, _terms("user_agent.original", "bucket", 20)), _ACCESS),
    Vis("iiswatch-vis-errors", "4xx and 5xx over time", "histogram", LOGS_VIEW,
        (_COUNT, _over_time(), _terms("http.response.status_code", "group", 20)),
        f"{_ACCESS} AND http.response.status_code:[400 TO 599]"),
    Vis("iiswatch-vis-slow-requests", "Slow requests (over 5 s)", "table", LOGS_VIEW,
        (Agg("max", "metric", {"field": "event.duration"}), _COUNT,
         _terms("url.path", "bucket", 20, order_by="1")),
        f"{_ACCESS} AND event.duration:>{SLOW_NS}"),
)  # fmt: skip

DETECTIONS: tuple[Vis, ...] = (
    Vis("iiswatch-vis-alerts-by-rule", "Alerts over time by rule", "histogram", ALERTS_VIEW,
        (_COUNT, _over_time(), _terms("rule.name", "group", 20))),
    Vis("iiswatch-vis-alerts-by-severity", "Alerts over time by severity", "histogram",
        ALERTS_VIEW, (_COUNT, _over_time(), _terms("severity", "group", 5))),
    Vis("iiswatch-vis-top-attackers", "Top attackers", "table", ALERTS_VIEW,
        (Agg("sum", "metric", {"field": "event_count"}), _COUNT,
         _terms("source.ip", "bucket", 20))),
    Vis("iiswatch-vis-delivery", "Alert delivery status", "pie", ALERTS_VIEW,
        (_COUNT, _terms("delivery.status", "segment", 10))),
)  # fmt: skip


def dashboard(dash_id: str, title: str, description: str, panels: Sequence[Vis]) -> SavedObject:
    """Panels two to a row, 24 of Kibana's 48 grid columns each."""
    panels_json = []
    refs = []
    for i, vis in enumerate(panels):
        pid = f"p{i + 1}"
        panels_json.append(
            {
                "version": "8.8.0",
                "type": "visualization",
                "gridData": {"x": 24 * (i % 2), "y": 15 * (i // 2), "w": 24, "h": 15, "i": pid},
                "panelIndex": pid,
                "embeddableConfig": {"enhancements": {}},
                "panelRefName": f"panel_{pid}",
            }
        )
        refs.append({"name": f"{pid}:panel_{pid}", "type": "visualization", "id": vis.id})
    return SavedObject(
        "dashboard",
        dash_id,
        {
            "title": title,
            "description": description,
            "version": 1,
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 60000},
            "optionsJSON": _json(
                {"useMargins": True, "syncColors": False, "hidePanelTitles": False}
            ),
            "panelsJSON": _json(panels_json),
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": _json(
                    {"query": {"query": "", "language": "kuery"}, "filter": []}
                )
            },
        },
        refs,
    )


def all_objects(rules: Iterable[Rule]) -> list[SavedObject]:
    """Everything `iiswatch kibana export` writes, referenced objects before their users."""
    out = data_views()
    out += [rule_search(r) for r in sorted(rules, key=lambda r: r.name)]
    out += [v.saved_object() for v in (*TRAFFIC, *DETECTIONS)]
    out.append(
        dashboard(
            "iiswatch-dashboard-traffic",
            "iiswatch: IIS traffic",
            "Requests by status, top clients, URLs and user agents, errors and slow requests.",
            TRAFFIC,
        )
    )
    out.append(
        dashboard(
            "iiswatch-dashboard-detections",
            "iiswatch: detections",
            "Alerts over time by rule and severity, top attackers, delivery status.",
            DETECTIONS,
        )
    )
    return out
