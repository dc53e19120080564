"""Sigma import: convert Sigma web-server rules into iiswatch rule files with pySigma's
Elasticsearch (Lucene) backend, through this project's W3C → ECS processing pipeline.

Every rule either becomes a rule file (Lucene shorthand, severity from `level`, MITRE from
`attack.*` tags, a commented test stub) or comes back with the reason it could not be
converted: not a web-server log source, a correlation rule, a field IIS does not log, a
modifier the fields cannot honour, a backend error. Keywords (values without a field) are
looked for in what a client controls: the decoded URL, the user agent and the referrer.
Needs the optional `sigma` extra (`pip install iiswatch[sigma]`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from iiswatch.errors import IiswatchError
from iiswatch.ingest.normalize import decode_once

try:
    from sigma.backends.elasticsearch import LuceneBackend
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError
    from sigma.modifiers import reverse_modifier_mapping
    from sigma.processing.conditions import IncludeFieldCondition
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import (
        CaseTransformation,
        DetectionItemFailureTransformation,
        FieldMappingTransformation,
        ReplaceStringTransformation,
    )
    from sigma.processing.transformations.base import ValueTransformation
    from sigma.processing.transformations.values import StringValueTransformation
    from sigma.types import SigmaRegularExpression, SigmaString

    _MISSING: str | None = None
except ImportError as e:  # the optional `sigma` extra
    _MISSING = e.name or "pysigma"

# W3C extended log field names (as IIS writes them and as Sigma's `webserver` taxonomy
# spells them) → the ECS fields our events carry. The query and path go to the decoded
# detection fields, so a Sigma value is decoded the same way (see DecodeUrlValue).
W3C_TO_ECS: Final[dict[str, str]] = {
    "cs-uri-query": "iiswatch.url.query",
    "c-uri-query": "iiswatch.url.query",
    "cs-uri-stem": "iiswatch.url.path",
    "c-uri-stem": "iiswatch.url.path",
    "c-uri": "iiswatch.url.uri",
    "cs-uri": "iiswatch.url.uri",
    "c-uri-extension": "url.extension",
    "cs-method": "http.request.method",
    "sc-status": "http.response.status_code",
    "sc-substatus": "iis.access.sub_status",
    "sc-win32-status": "iis.access.win32_status",
    "c-useragent": "user_agent.original",
    "cs-user-agent": "user_agent.original",
    "cs(User-Agent)": "user_agent.original",
    "c-ip": "source.ip",
    "src_ip": "source.ip",
    "c-port": "source.port",
    "src_port": "source.port",
    "s-ip": "destination.ip",
    "dst_ip": "destination.ip",
    "s-port": "destination.port",
    "dst_port": "destination.port",
    "cs-referer": "http.request.referrer",
    "cs-referrer": "http.request.referrer",
    "cs(Referer)": "http.request.referrer",
    "cs-host": "url.domain",
    "cs(Host)": "url.domain",
    "cs-username": "user.name",
    "cs-cookie": "iis.access.cookie",
    "cs(Cookie)": "iis.access.cookie",
    "cs-bytes": "http.request.body.bytes",
    "sc-bytes": "http.response.body.bytes",
    "cs-version": "http.version",
    "s-sitename": "iis.access.site_name",
    "s-computername": "iis.access.server_name",
}
# Where a keyword search (a value without a field, "anywhere in the line") looks: the parts
# of an access log line a client controls.
KEYWORD_FIELDS: Final = ("iiswatch.url.uri", "user_agent.original", "http.request.referrer")
# Fields with the lower-case normalizer: a `cased` match cannot be honoured on them.
LOWERCASED_FIELDS: Final = frozenset(
    {"iiswatch.url.query", "iiswatch.url.path", "iiswatch.url.uri"}
)
# Why some W3C fields have no mapping, for the report.
UNMAPPABLE: Final[dict[str, str]] = {
    "time-taken": "time-taken is in milliseconds, event.duration in nanoseconds",
    "r-dns": "IIS does not log the client's reverse DNS name",
    "date": "dates are matched by the time window, not the query",
    "time": "times are matched by the time window, not the query",
}

LEVELS: Final[dict[str, tuple[str, int]]] = {
    "informational": ("low", 5),
    "low": ("low", 21),
    "medium": ("medium", 47),
    "high": ("high", 73),
    "critical": ("critical", 99),
}
STATUSES: Final[dict[str, str]] = {
    "stable": "stable",
    "test": "test",
    "experimental": "experimental",
}
TACTICS: Final[dict[str, str]] = {
    "reconnaissance": "TA0043",
    "resource_development": "TA0042",
    "initial_access": "TA0001",
    "execution": "TA0002",
    "persistence": "TA0003",
    "privilege_escalation": "TA0004",
    "defense_evasion": "TA0005",
    "credential_access": "TA0006",
    "discovery": "TA0007",
    "lateral_movement": "TA0008",
    "collection": "TA0009",
    "command_and_control": "TA0011",
    "exfiltration": "TA0010",
    "impact": "TA0040",
}
# The tactic of techniques common in web-server rules, for rules tagging several tactics.
TECHNIQUE_TACTIC: Final[dict[str, str]] = {
    "T1190": "TA0001",
    "T1133": "TA0001",
    "T1078": "TA0001",
    "T1505": "TA0003",
    "T1059": "TA0002",
    "T1203": "TA0002",
    "T1595": "TA0043",
    "T1592": "TA0043",
    "T1110": "TA0006",
    "T1552": "TA0006",
    "T1212": "TA0006",
    "T1083": "TA0007",
    "T1046": "TA0007",
    "T1071": "TA0011",
    "T1105": "TA0011",
    "T1102": "TA0011",
    "T1041": "TA0010",
    "T1499": "TA0040",
    "T1498": "TA0040",
    "T1005": "TA0009",
}
_TECHNIQUE = re.compile(r"^t(\d{4})(?:\.(\d{3}))?$")
_SLUG = re.compile(r"[^a-z0-9]+")
# Our namespace for ids of Sigma rules that have none: same title, same id on re-import.
_NAMESPACE: Final = uuid.UUID("4f9d5d0e-3d0b-4a55-9a1e-5b1f0c8e7a21")


class SigmaUnavailable(IiswatchError):
    """pySigma or its Elasticsearch backend is not installed."""


@dataclass(frozen=True)
class Converted:
    source: Path
    title: str
    rule_id: str
    text: str  # the rule file
    notes: tuple[str, ...] = ()
    out: Path | None = None


@dataclass(frozen=True)
class Rejected:
    source: Path
    title: str
    reasons: tuple[str, ...]


@dataclass
class ImportResult:
    converted: list[Converted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _require() -> None:
    if _MISSING is not None:
        raise SigmaUnavailable(
            f"Sigma import needs pySigma and its Elasticsearch backend ({_MISSING} is missing)",
            "pip install 'iiswatch[sigma]'",
        )


# -- the processing pipeline ----------------------------------------------------------------


if _MISSING is None:

    @dataclass
    class DecodeUrlValue(StringValueTransformation):
        """Percent-decode the plain parts of a value once, as ingest decodes the field
        (`+` as a space in queries): `%2e%2e%2f` in a rule matches `../` in the event."""

        plus_as_space: bool = False

        def apply_string_value(self, field: str | None, val: SigmaString) -> SigmaString:
            return val.map_parts(
                lambda s: decode_once(str(s), plus_as_space=self.plus_as_space),
                lambda p: isinstance(p, str),
            )

    @dataclass
    class LuceneRegex(ValueTransformation):
        """Sigma regular expressions as Lucene ones (see `lucene_regex`)."""

        lower: bool = False

        def apply_value(  # type: ignore[override]  # the annotation selects the values
            self, field: str | None, val: SigmaRegularExpression
        ) -> SigmaRegularExpression:
            return SigmaRegularExpression(lucene_regex(str(val.regexp), lower=self.lower))


_LUCENE_SPECIAL: Final = frozenset('~&<>@#"')


def lucene_regex(pattern: str, *, lower: bool) -> str:
    """A Sigma (PCRE-style, unanchored) regular expression as a Lucene one, which matches
    the whole term: `^`/`$` dropped or `.*` added, Lucene's extra operators (`~ & < > @ #`)
    escaped, and literal letters lower-cased for a lower-cased field."""
    body = pattern
    head = body.startswith("^")
    body = body[1:] if head else body
    tail = body.endswith("$") and not body.endswith("\\$")
    body = body[:-1] if tail else body
    chars: list[str] = []
    escaped = False
    for ch in body:
        if escaped:
            chars.append(ch)
            escaped = False
        elif ch == "\\":
            chars.append(ch)
            escaped = True
        elif ch in _LUCENE_SPECIAL:
            chars.append("\\" + ch)
        else:
            chars.append(ch.lower() if lower else ch)
    return ("" if head else ".*") + "".join(chars) + ("" if tail else ".*")


def _field_mapping() -> dict[str | None, str | list[str]]:
    mapping: dict[str | None, str | list[str]] = {k: v for k, v in W3C_TO_ECS.items()}
    mapping[None] = list(KEYWORD_FIELDS)  # pySigma wraps keyword values in wildcards
    return mapping


def w3c_ecs_pipeline() -> Any:
    """The pySigma processing pipeline from W3C field names to our ECS fields."""
    _require()
    targets = sorted(set(W3C_TO_ECS.values()))
    return ProcessingPipeline(
        name="iiswatch: IIS W3C fields to ECS",
        priority=20,
        items=[
            ProcessingItem(
                identifier="iiswatch_w3c_to_ecs",
                transformation=FieldMappingTransformation(_field_mapping()),
            ),
            ProcessingItem(
                identifier="iiswatch_unmapped_field",
                transformation=DetectionItemFailureTransformation(
                    "a field that IIS access logs do not have"
                ),
                field_name_conditions=[IncludeFieldCondition(fields=targets)],
                field_name_condition_negation=True,
            ),
            ProcessingItem(
                identifier="iiswatch_decode_query",
                transformation=DecodeUrlValue(plus_as_space=True),
                field_name_conditions=[IncludeFieldCondition(fields=["iiswatch.url.query"])],
            ),
            ProcessingItem(
                identifier="iiswatch_decode_path",
                transformation=DecodeUrlValue(),
                field_name_conditions=[IncludeFieldCondition(fields=["iiswatch.url.path"])],
            ),
            ProcessingItem(  # path?query: rules write `+` for a space in the query part
                identifier="iiswatch_decode_uri",
                transformation=DecodeUrlValue(plus_as_space=True),
                field_name_conditions=[IncludeFieldCondition(fields=["iiswatch.url.uri"])],
            ),
            ProcessingItem(  # the index lower-cases them; wildcards in query_string are not
                identifier="iiswatch_lowercase",
                transformation=CaseTransformation(method="lower"),
                field_name_conditions=[IncludeFieldCondition(fields=sorted(LOWERCASED_FIELDS))],
            ),
            ProcessingItem(
                identifier="iiswatch_regex_lowercased",
                transformation=LuceneRegex(lower=True),
                field_name_conditions=[IncludeFieldCondition(fields=sorted(LOWERCASED_FIELDS))],
            ),
            ProcessingItem(
                identifier="iiswatch_regex",
                transformation=LuceneRegex(),
                field_name_conditions=[IncludeFieldCondition(fields=sorted(LOWERCASED_FIELDS))],
                field_name_condition_negation=True,
            ),
            ProcessingItem(  # ECS keeps "1.1" where W3C logs "HTTP/1.1"
                identifier="iiswatch_http_version",
                transformation=ReplaceStringTransformation(regex="^(?i:http/)", replacement=""),
                field_name_conditions=[IncludeFieldCondition(fields=["http.version"])],
            ),
        ],
    )


# -- checks that give a reason a person can act on -------------------------------------------


def _items(detection: Any) -> Iterator[Any]:
    for item in detection.detection_items:
        if hasattr(item, "detection_items"):
            yield from _items(item)
        else:
            yield item


def _modifier_names(item: Any) -> list[str]:
    """The modifiers as a rule writes them (`contains`, `cased`, `fieldref` ...)."""
    return [reverse_modifier_mapping.get(m.__name__, m.__name__) for m in item.modifiers]


def _precheck(rule: Any) -> list[str]:
    reasons: list[str] = []
    status = str(getattr(rule.status, "name", rule.status or "")).lower()
    if status in ("deprecated", "unsupported"):
        reasons.append(f"status {status}: SigmaHQ no longer maintains it")
    ls = rule.logsource
    if not (ls.category == "webserver" or ls.product == "iis" or ls.service == "iis"):
        shown = ", ".join(
            f"{k}: {v}"
            for k, v in (
                ("category", ls.category),
                ("product", ls.product),
                ("service", ls.service),
            )
            if v
        )
        reasons.append(
            f"logsource ({shown or 'empty'}) is not web server access logs "
            "(category: webserver or product: iis)"
        )
    unmapped: set[str] = set()
    for det in rule.detection.detections.values():
        for item in _items(det):
            if item.field is None:
                continue  # a keyword: mapped to KEYWORD_FIELDS
            fname = item.field
            if fname not in W3C_TO_ECS and fname not in W3C_TO_ECS.values():
                unmapped.add(fname)
                continue
            mods = _modifier_names(item)
            target = W3C_TO_ECS.get(fname, fname)
            if "cased" in mods and target in LOWERCASED_FIELDS:
                reasons.append(
                    f"{fname}|cased: {target} is stored lower-cased, a case-sensitive match "
                    "is impossible"
                )
            if "fieldref" in mods:
                reasons.append(f"{fname}|fieldref: comparing two fields needs a script")
            if "re" in mods:
                reasons += _regex_problems(fname, target, item, mods)
    for fname in sorted(unmapped):
        why = UNMAPPABLE.get(fname, "not a field of IIS access logs or not mapped")
        reasons.append(f"unmapped field {fname}: {why}")
    return list(dict.fromkeys(reasons))


_PCRE_ONLY: Final = re.compile(r"\(\?|\\[bBAZzG1-9]|[*+?}]\?")


def _regex_problems(fname: str, target: str, item: Any, mods: list[str]) -> list[str]:
    problems = []
    for v in item.value:
        text = str(getattr(v, "regexp", v))
        if _PCRE_ONLY.search(text):
            problems.append(
                f"{fname}|re '{text}': lookarounds, inline flags, word boundaries, "
                "back-references and lazy quantifiers have no Lucene equivalent"
            )
    if ("i" in mods or "ignorecase" in mods) and target not in LOWERCASED_FIELDS:
        problems.append(
            f"{fname}|re|i: {target} keeps its case and a query string regex cannot ignore it"
        )
    return problems


def _notes(rule: Any) -> list[str]:
    notes = []
    for det in rule.detection.detections.values():
        for item in _items(det):
            if item.field is None:
                notes.append(
                    "keywords are looked for in the decoded URL (path?query), the user agent "
                    "and the referrer"
                )
                continue
            target = W3C_TO_ECS.get(item.field, item.field)
            mods = _modifier_names(item)
            if target == "user_agent.original" and "re" not in mods:
                notes.append("user_agent.original is matched case-sensitively, as written")
    return list(dict.fromkeys(notes))


# -- the rule file --------------------------------------------------------------------------


def _mitre(tags: Iterable[Any]) -> list[dict[str, str]]:
    """`attack.<tactic>` and `attack.tNNNN[.NNN]` tags as tactic/technique pairs: a
    technique goes with its own tactic when known here, else with the rule's first tactic."""
    tactics: list[str] = []
    techniques: list[str] = []
    for t in tags:
        if t.namespace != "attack":
            continue
        name = t.name.lower().replace("-", "_")
        if name in TACTICS:
            tactics.append(TACTICS[name])
        elif m := _TECHNIQUE.match(name):
            techniques.append(f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else ""))
    out: list[dict[str, str]] = []
    placed: set[str] = set()
    for tech in dict.fromkeys(techniques):
        tactic = TECHNIQUE_TACTIC.get(tech.split(".")[0]) or (tactics[0] if tactics else None)
        if tactic is not None:
            out.append({"tactic": tactic, "technique": tech})
            placed.add(tactic)
    out += [{"tactic": t} for t in dict.fromkeys(tactics) if t not in placed]
    return out


def _slug(title: str) -> str:
    return _SLUG.sub("_", title.lower()).strip("_")[:80] or "sigma_rule"


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key, as the pack


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


# `selection | count() by c-ip > 50` (threshold) or `... | count(cs-uri-stem) by c-ip > 20`
# (cardinality): Sigma's aggregation in a condition, deprecated upstream in favour of
# correlation rules but common in web-server rules
_AGGREGATION = re.compile(
    r"^(?P<cond>.+?)\s*\|\s*count\(\s*(?P<field>[^\s)]*)\s*\)"
    r"(?:\s+by\s+(?P<by>[^\s>]+))?\s*(?P<op>>=|>)\s*(?P<n>\d+)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Aggregation:
    """A Sigma `count()` aggregation as our rule types see it."""

    count_field: str | None  # count(field): distinct values (cardinality); None: events
    group_by: str | None
    value: int  # "> 50" is "at least 51"

    def sections(self) -> dict[str, Any]:
        group = [self.group_by] if self.group_by else []
        if self.count_field:
            return {
                "type": "cardinality",
                "group_by": group,
                "cardinality": {"field": self.count_field, "value": self.value},
            }
        return {"type": "threshold", "group_by": group, "threshold": {"value": self.value}}


def split_aggregation(condition: str) -> tuple[str, Aggregation | None] | None:
    """(the condition without its aggregation, the aggregation); the condition unchanged
    and None when it has none; None when it has one we cannot convert."""
    if "|" not in condition:
        return condition, None
    m = _AGGREGATION.match(condition.strip())
    if not m:
        return None
    n = int(m.group("n")) + (1 if m.group("op") == ">" else 0)
    field, by = m.group("field") or None, m.group("by")
    mapped = [W3C_TO_ECS.get(f, f) if f else None for f in (field, by)]
    return m.group("cond"), Aggregation(mapped[0], mapped[1], n)


def rule_text(rule: Any, query: str, source: Path, aggregation: Aggregation | None = None) -> str:
    """The rule file for a converted Sigma rule: schema key order, a test stub to fill in."""
    level = str(getattr(rule.level, "name", rule.level or "medium")).lower()
    severity, risk = LEVELS.get(level, ("medium", 47))
    sigma_status = str(getattr(rule.status, "name", rule.status or "")).lower()
    status = STATUSES.get(sigma_status, "experimental")
    rid = str(rule.id) if rule.id else str(uuid.uuid5(_NAMESPACE, rule.title))
    tags = [f"{t.namespace}.{t.name}" for t in rule.tags]
    doc: dict[str, Any] = {
        "id": rid,
        "name": rule.title,
        "description": (rule.description or rule.title).strip()
        + f"\n\nImported from Sigma ({source.name}).",
        "author": rule.author or "Sigma",
        "status": status,
        "severity": severity,
        "risk_score": risk,
        "tags": [*tags, "sigma"],
        "mitre": _mitre(rule.tags),
        "references": [str(r) for r in rule.references or []],
        "false_positives": [str(f) for f in rule.falsepositives or []] or ["Unknown"],
        "index": "iis-access-*",
        "schedule": {"interval": "5m", "lookback": "1m"},
        "type": "match",
        "lucene": query,
        "group_by": ["source.ip"],
        "suppression": {"group_by": ["source.ip"], "duration": "1h"},
        "tests": [],
    }
    if aggregation is not None:
        extra = aggregation.sections()
        doc["type"] = extra.pop("type")
        doc["group_by"] = extra.pop("group_by")
        # the new sections follow group_by, as in the pack's files
        order = list(doc)
        at = order.index("group_by") + 1
        doc = {k: doc[k] for k in order[:at]} | extra | {k: doc[k] for k in order[at:]}
        doc["suppression"] = {"group_by": list(doc["group_by"]) or ["source.ip"], "duration": "1h"}
        if not doc["group_by"]:
            del doc["group_by"]
            doc["suppression"] = {"duration": "1h"}
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)
    return body + (
        "# Add log lines it must catch and must leave alone, then `iiswatch rules test`:\n"
        "#  - name: the attack this Sigma rule describes\n"
        "#    match: true\n"
        "#    log: |\n"
        "#      2026-11-25 12:19:23 10.0.0.5 GET /path.aspx a=b 443 - 203.0.113.9 "
        "Mozilla/5.0 - 200 0 0 15\n"
        "#  - name: benign traffic that looks like it\n"
        "#    match: false\n"
        "#    log: |\n"
        "#      ...\n"
    )


# -- conversion ------------------------------------------------------------------------------


def _sigma_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(x for x in p.rglob("*") if x.suffix in (".yml", ".yaml"))
        else:
            files.append(p)
    return files


def convert_file(path: Path, backend: Any = None) -> list[Converted | Rejected]:
    """Every rule of one Sigma file (a file may hold several documents), converted or
    rejected with its reasons."""
    _require()
    try:
        collection = SigmaCollection.load_ruleset([path], collect_errors=True)
    except (SigmaError, yaml.YAMLError, OSError) as e:
        return [Rejected(path, path.name, (f"not a readable Sigma file: {e}",))]
    out: list[Converted | Rejected] = []
    for rule in collection.rules:
        title = str(getattr(rule, "title", None) or path.stem)
        if isinstance(rule, SigmaCorrelationRule):
            kind = str(getattr(rule.type, "name", rule.type)).lower()
            out.append(
                Rejected(
                    path,
                    title,
                    (
                        f"a correlation rule ({kind}): write it as a threshold, cardinality "
                        "or sequence rule over the rules it refers to",
                    ),
                )
            )
            continue
        rule._output = True  # a correlation's base rule is a rule of its own here
        if rule.errors:
            out.append(Rejected(path, title, tuple(f"invalid Sigma: {e}" for e in rule.errors)))
            continue
        reasons = _precheck(rule)
        if reasons:
            out.append(Rejected(path, title, tuple(reasons)))
            continue
        aggregation = None
        conditions: list[str] = []
        for cond in rule.detection.condition:
            split = split_aggregation(cond)
            if split is None:
                conditions = []
                break
            conditions.append(split[0])
            aggregation = aggregation or split[1]
        if not conditions:
            out.append(
                Rejected(
                    path,
                    title,
                    (
                        "an aggregation other than `| count([field]) [by field] > N`: "
                        "write it as a threshold or cardinality rule",
                    ),
                )
            )
            continue
        if aggregation is not None:
            rule.detection.condition = conditions
            # pySigma parses the conditions once, at load: parse the stripped ones again
            rule.detection.__post_init__()
        notes = _notes(rule)  # before conversion: the pipeline renames fields in place
        be = backend or LuceneBackend(processing_pipeline=w3c_ecs_pipeline(), collect_errors=True)
        try:
            queries = be.convert_rule(rule)
        except (SigmaError, NotImplementedError) as e:  # the backend's "not supported"
            out.append(Rejected(path, title, (f"conversion failed: {e}",)))
            continue
        if rule.errors or not queries:
            errs = tuple(f"conversion failed: {e}" for e in rule.errors) or ("no query produced",)
            out.append(Rejected(path, title, errs))
            continue
        query = queries[0] if len(queries) == 1 else " OR ".join(f"({q})" for q in queries)
        text = rule_text(rule, str(query), path, aggregation)
        rid = yaml.safe_load(text)["id"]
        out.append(Converted(path, title, rid, text, tuple(notes)))
    return out


def import_sigma(
    paths: Iterable[Path], out_dir: Path | None = None, *, overwrite: bool = False
) -> ImportResult:
    """Convert the Sigma rules in `paths` (files or folders). With `out_dir`, write each
    converted rule to `out_dir/<slug>.yaml`: a file already there is replaced only when it
    holds the same rule id or `overwrite` is set, otherwise the rule is rejected."""
    result = ImportResult()
    for f in _sigma_files(paths):
        for r in convert_file(f):
            if isinstance(r, Rejected):
                result.rejected.append(r)
                continue
            if out_dir is None:
                result.converted.append(r)
                continue
            target = out_dir / f"{_slug(r.title)}.yaml"
            if target.exists() and not overwrite:
                try:
                    existing = str((yaml.safe_load(target.read_text()) or {}).get("id"))
                except yaml.YAMLError:
                    existing = ""
                if existing != r.rule_id:
                    result.rejected.append(
                        Rejected(r.source, r.title, (f"{target} exists with another rule id",))
                    )
                    continue
            out_dir.mkdir(parents=True, exist_ok=True)
            target.write_text(r.text, encoding="utf-8")
            result.converted.append(
                Converted(r.source, r.title, r.rule_id, r.text, r.notes, out=target)
            )
    return result
