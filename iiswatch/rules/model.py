"""The rule file as a frozen, typed model (docs/design/rule-schema.md is the contract).

Constrained types are named once here; the loader maps every validation error back to a
line and column of the YAML file. Rules are data: nothing here talks to Elasticsearch.
"""

from __future__ import annotations

import ipaddress
from datetime import date, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from iiswatch import times

# -- constrained types --------------------------------------------------------------------


def parse_duration(value: Any) -> timedelta:
    """A duration in the grammar of iiswatch.times, longer than zero."""
    try:
        td = times.parse_duration(value)
    except ValueError:
        raise PydanticCustomError("duration", "not a duration") from None
    if td <= timedelta(0):
        raise PydanticCustomError(
            "duration", "must be longer than zero, got {got}", {"got": repr(value)}
        )
    return td


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(times.format_duration, return_type=str),
]
Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["experimental", "test", "stable"]
RuleType = Literal["match", "threshold", "cardinality", "new_terms", "sequence"]
# `always`: one alert opens an incident (a ticket) at once; `risk`: the alert adds its
# risk_score to its entity and an incident opens when the entity's risk reaches the threshold
OpensIncident = Literal["always", "risk"]
ALWAYS_INTERVAL = timedelta(seconds=5)  # default interval of rules that open incidents at once
RiskScore = Annotated[int, Field(ge=0, le=100)]
PositiveInt = Annotated[int, Field(ge=1)]
SampleCount = Annotated[int, Field(ge=0, le=100)]
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
# ECS-style dotted field names: `source.ip`, `iiswatch.url.path.text`, `@timestamp`
FieldName = Annotated[
    str, StringConstraints(pattern=r"^@?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
]
MitreTactic = Annotated[str, StringConstraints(pattern=r"^TA\d{4}$")]
MitreTechnique = Annotated[str, StringConstraints(pattern=r"^T\d{4}(\.\d{3})?$")]
IndexPattern = Annotated[str, StringConstraints(pattern=r"^[^\s\"\\/?<>|#]+$")]
StepName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
# Elasticsearch query DSL: one query type at the top (`bool`, `term`, ...); ES checks the rest.
QueryDsl = Annotated[dict[str, Any], Field(min_length=1, max_length=1)]
LuceneQuery = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=False))
    except ValueError:
        raise PydanticCustomError("cidr", "not an IP address or network") from None


Cidr = Annotated[str, AfterValidator(_cidr)]
NetworkList = Literal["verified_crawlers"]  # iiswatch.crawlers.NETWORK_LISTS
FieldList = Annotated[list[FieldName], Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sections -----------------------------------------------------------------------------


class Mitre(_Model):
    tactic: MitreTactic
    technique: MitreTechnique | None = None


class Schedule(_Model):
    interval: Duration = timedelta(minutes=5)
    lookback: Duration = timedelta(minutes=1)


class Threshold(_Model):
    value: PositiveInt


class Cardinality(_Model):
    field: FieldName
    value: PositiveInt


class NewTerms(_Model):
    fields: Annotated[list[FieldName], Field(min_length=1, max_length=3)]
    history: Duration


def _one_query(query: object, lucene: object) -> None:
    if (query is None) == (lucene is None):
        raise PydanticCustomError(
            "query_choice",
            "needs exactly one of `query` (query DSL) or `lucene` (query string)"
            if query is None
            else "has both `query` and `lucene`: keep one",
        )


class Step(_Model):
    name: StepName
    query: QueryDsl | None = None
    lucene: LuceneQuery | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Step:
        _one_query(self.query, self.lucene)
        return self


class Sequence(_Model):
    by: FieldList
    max_span: Duration
    steps: Annotated[list[Step], Field(min_length=2, max_length=10)]

    @model_validator(mode="after")
    def _unique_names(self) -> Sequence:
        names = [s.name for s in self.steps]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PydanticCustomError("step_names", "step names repeat: {dup}", {"dup": dup})
        return self


class RuleException(_Model):
    """Events whose `field` matches one of the values, networks or wildcards are dropped.
    `networks` names lists kept as data (`verified_crawlers`: iiswatch/crawlers.py)."""

    field: FieldName
    values: list[str | int] | None = None
    cidrs: list[Cidr] | None = None
    wildcards: list[NonEmptyStr] | None = None
    networks: list[NetworkList] | None = None
    owner: NonEmptyStr
    reason: NonEmptyStr
    expires: date | None = None

    @model_validator(mode="after")
    def _something_to_match(self) -> RuleException:
        if not (self.values or self.cidrs or self.wildcards or self.networks):
            raise PydanticCustomError(
                "exception_empty", "needs a non-empty `values`, `cidrs`, `wildcards` or `networks`"
            )
        return self

    def active(self, today: date) -> bool:
        """Expired on the day after `expires`: an entry expiring 2027-06-30 applies that day."""
        return self.expires is None or today <= self.expires


class Suppression(_Model):
    group_by: list[FieldName] | None = None  # default: the rule's group key
    duration: Duration


class AlertSpec(_Model):
    title: NonEmptyStr = "default-title"
    body: NonEmptyStr = "default-body"
    destinations: list[NonEmptyStr] = []
    fields: list[FieldName] = [
        "source.ip",
        "url.original",
        "http.response.status_code",
        "user_agent.original",
    ]
    samples: SampleCount = 5


class RuleTest(_Model):
    name: NonEmptyStr
    match: bool
    log: NonEmptyStr


# -- the rule -----------------------------------------------------------------------------

TYPE_SECTIONS: dict[str, str] = {
    "threshold": "threshold",
    "cardinality": "cardinality",
    "new_terms": "new_terms",
    "sequence": "sequence",
}


def shape_issues(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Checks across keys that field types cannot express: (location, message, hint) each.

    Works on the raw mapping so the loader can report them alongside field errors.
    """
    issues: list[tuple[tuple[str | int, ...], str, str]] = []
    rtype = data.get("type")
    if rtype not in ("match", "threshold", "cardinality", "new_terms", "sequence"):
        return issues  # the field error says it
    section = TYPE_SECTIONS.get(rtype)
    if section and data.get(section) is None:
        issues.append(
            (("type",), f"type {rtype} needs a `{section}:` section", f"add `{section}:`")
        )
    for other in TYPE_SECTIONS.values():
        if other != section and data.get(other) is not None:
            issues.append(
                ((other,), f"`{other}` does not apply to type {rtype}", "remove it or change type")
            )
    has_q, has_l = data.get("query") is not None, data.get("lucene") is not None
    if has_q and has_l:
        issues.append((("lucene",), "has both `query` and `lucene`", "keep exactly one"))
    elif not (has_q or has_l) and rtype != "sequence":
        issues.append(
            (
                ("type",),
                "needs a `query` (query DSL) or a `lucene` query string",
                "add `lucene: 'field:value'` or `query: {bool: ...}`",
            )
        )
    if data.get("group_by") is not None and rtype in ("new_terms", "sequence"):
        key = "new_terms.fields" if rtype == "new_terms" else "sequence.by"
        issues.append((("group_by",), f"type {rtype} groups by `{key}`", "remove `group_by`"))
    sup = data.get("suppression")
    if isinstance(sup, dict) and isinstance(sup.get("group_by"), list):
        group = group_key_of(data)
        extra = [f for f in sup["group_by"] if f not in group]
        if extra:
            issues.append(
                (
                    ("suppression", "group_by"),
                    f"{', '.join(map(str, extra))} not in the rule's group key {group or '[]'}",
                    "suppression groups by some of the fields alerts are grouped by",
                )
            )
    return issues


def group_key_of(data: dict[str, Any]) -> list[str]:
    rtype = data.get("type")
    if rtype == "new_terms":
        nt = data.get("new_terms")
        return list(nt.get("fields") or []) if isinstance(nt, dict) else []
    if rtype == "sequence":
        seq = data.get("sequence")
        return list(seq.get("by") or []) if isinstance(seq, dict) else []
    return list(data.get("group_by") or [])


class Rule(_Model):
    id: UUID
    name: NonEmptyStr
    description: NonEmptyStr
    author: NonEmptyStr
    status: Status
    severity: Severity
    risk_score: RiskScore
    # `enabled: false` keeps a rule in the pack (tested, listed) without the service running it
    enabled: bool = True
    tags: list[NonEmptyStr] = []
    mitre: list[Mitre] = []
    references: list[NonEmptyStr] = []
    false_positives: list[NonEmptyStr] = []
    response: NonEmptyStr | None = None  # for on-call: what to check, what to do
    opens_incident: OpensIncident = "risk"

    index: IndexPattern = "iis-access-*"
    schedule: Schedule = Schedule()

    type: RuleType
    query: QueryDsl | None = None
    lucene: LuceneQuery | None = None
    group_by: list[FieldName] | None = None
    threshold: Threshold | None = None
    cardinality: Cardinality | None = None
    new_terms: NewTerms | None = None
    sequence: Sequence | None = None

    exceptions: list[RuleException] = []
    suppression: Suppression | None = None
    alert: AlertSpec = AlertSpec()
    tests: list[RuleTest] = []

    @model_validator(mode="before")
    @classmethod
    def _always_runs_often(cls, data: Any) -> Any:
        """A rule that opens an incident at once is one small query: unless its file says
        otherwise it runs every 5 s, so its ticket comes within seconds."""
        if not isinstance(data, dict) or data.get("opens_incident") != "always":
            return data
        schedule = data.get("schedule")
        if schedule is None:
            return {**data, "schedule": {"interval": ALWAYS_INTERVAL}}
        if isinstance(schedule, dict) and "interval" not in schedule:
            return {**data, "schedule": {**schedule, "interval": ALWAYS_INTERVAL}}
        return data

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        present = {k: getattr(self, k) for k in ("type", *TYPE_SECTIONS, "query", "lucene")}
        present["group_by"] = self.group_by
        if self.suppression is not None:
            present["suppression"] = {"group_by": self.suppression.group_by}
        if self.new_terms is not None:
            present["new_terms"] = {"fields": self.new_terms.fields}
        if self.sequence is not None:
            present["sequence"] = {"by": self.sequence.by}
        issues = shape_issues(present)
        if issues:
            loc, message, _hint = issues[0]
            raise PydanticCustomError(
                "rule_shape",
                "{where}: {message}",
                {"where": ".".join(map(str, loc)), "message": message},
            )
        return self

    @property
    def rule_id(self) -> str:
        return str(self.id)

    @property
    def group_fields(self) -> list[str]:
        """The fields whose values make one alert: `group_by`, `new_terms.fields` or
        `sequence.by` by type."""
        return group_key_of(
            {
                "type": self.type,
                "group_by": self.group_by,
                "new_terms": {"fields": self.new_terms.fields} if self.new_terms else None,
                "sequence": {"by": self.sequence.by} if self.sequence else None,
            }
        )

    @property
    def suppression_fields(self) -> list[str]:
        if self.suppression is None:
            return []
        return list(self.suppression.group_by or self.group_fields)

    def expired_exceptions(self, today: date) -> list[tuple[int, RuleException]]:
        return [(i, e) for i, e in enumerate(self.exceptions) if not e.active(today)]

    def active_exceptions(self, today: date) -> list[RuleException]:
        return [e for e in self.exceptions if e.active(today)]
