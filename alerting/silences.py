"""Silences (`iiswatch silence add --match source.ip=… --until … --reason … --owner …`):
kept in Elasticsearch (`iiswatch-silences`) so every service replica honours them. A rule
alert that matches an active silence is kept in the outbox, marked silenced, and neither
counts towards an incident nor reaches a ticket. A silence always has an end, an owner and
a reason: a forgotten mute must not hide an attacker for ever.

A match is `field=value` on the alert as stored (`source.ip`, `rule.name`, `rule.id`,
`host.name`, any group field); all of a silence's matches must hold. `source.ip` takes
an address or a network (`203.0.113.0/24`).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

from iiswatch.alerting.templates import get_field
from iiswatch.elastic.client import backend_errors
from iiswatch.errors import UsageError
from iiswatch.times import iso, time_or_none

SILENCES_INDEX = "iiswatch-silences"


@dataclass(frozen=True)
class Silence:
    silence_id: str
    match: dict[str, str]
    until: datetime
    reason: str
    owner: str
    created: datetime

    def active(self, now: datetime) -> bool:
        return now < self.until

    def matches(self, alert: Mapping[str, Any]) -> bool:
        return all(_field_matches(alert, f, v) for f, v in self.match.items())

    def to_doc(self) -> dict[str, Any]:
        return {
            "kind": "silence",
            "silence_id": self.silence_id,
            "match": self.match,
            "until": iso(self.until),
            "reason": self.reason,
            "owner": self.owner,
            "created": iso(self.created),
            "@timestamp": iso(self.created),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Silence:
        return cls(
            str(doc["silence_id"]),
            {str(k): str(v) for k, v in (doc.get("match") or {}).items()},
            time_or_none(doc.get("until")) or datetime.min.replace(tzinfo=UTC),
            str(doc.get("reason", "")),
            str(doc.get("owner", "")),
            time_or_none(doc.get("created")) or datetime.min.replace(tzinfo=UTC),
        )


def _values(alert: Mapping[str, Any], field: str) -> list[Any]:
    group = alert.get("group") or {}
    value = group[field] if field in group else get_field(alert, field)
    return value if isinstance(value, list) else [value]


def _field_matches(alert: Mapping[str, Any], field: str, wanted: str) -> bool:
    values = [v for v in _values(alert, field) if v is not None]
    if field.endswith(".ip") and "/" in wanted:
        net = ipaddress.ip_network(wanted, strict=False)
        for v in values:
            try:
                if ipaddress.ip_address(str(v)) in net:
                    return True
            except ValueError:
                continue
        return False
    return any(str(v) == wanted for v in values)


def parse_matches(items: Sequence[str]) -> dict[str, str]:
    """`field=value` pairs from the command line, checked."""
    if not items:
        raise UsageError(
            "a silence needs at least one --match", "e.g. --match source.ip=203.0.113.9"
        )
    out: dict[str, str] = {}
    for item in items:
        field, sep, value = item.partition("=")
        field, value = field.strip(), value.strip()
        if not sep or not field or not value:
            raise UsageError(
                f"--match {item!r} is not field=value", "e.g. --match source.ip=203.0.113.9"
            )
        if field.endswith(".ip"):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise UsageError(
                    f"--match {item!r}: {value!r} is not an IP address or network",
                    "e.g. 203.0.113.9 or 203.0.113.0/24",
                ) from None
        out[field] = value
    return out


class SilenceStore:
    def __init__(self, es: Elasticsearch, index: str = SILENCES_INDEX) -> None:
        self.es = es
        self.index = index

    def add(
        self,
        match: Mapping[str, str],
        *,
        until: datetime,
        reason: str,
        owner: str,
        now: datetime | None = None,
    ) -> Silence:
        now = now or datetime.now(UTC)
        if until <= now:
            raise UsageError("--until is in the past", "give a time ahead, e.g. --until 8h")
        if not reason.strip() or not owner.strip():
            raise UsageError("a silence needs a --reason and an --owner", "say why and who")
        s = Silence(uuid.uuid4().hex[:12], dict(match), until, reason.strip(), owner.strip(), now)
        with backend_errors(self.es):
            self.es.index(
                index=self.index, id=s.silence_id, document=s.to_doc(), refresh="wait_for"
            )
        return s

    def remove(self, silence_id: str) -> Silence:
        s = self.get(silence_id)
        with backend_errors(self.es):
            self.es.delete(index=self.index, id=s.silence_id, refresh="wait_for")
        return s

    def get(self, silence_id: str) -> Silence:
        found = [s for s in self.all() if s.silence_id.startswith(silence_id)]
        if len(found) != 1:
            raise UsageError(
                f"{'no' if not found else 'more than one'} silence {silence_id!r}",
                "`iiswatch silence list` shows the ids (a unique prefix is enough)",
            )
        return found[0]

    def all(self) -> list[Silence]:
        with backend_errors(self.es):
            try:
                r = self.es.search(
                    index=self.index,
                    query={"term": {"kind": "silence"}},
                    size=1000,
                    sort=[{"until": "desc"}],
                    ignore_unavailable=True,
                )
            except (NotFoundError, BadRequestError):
                return []
        return [Silence.from_doc(h["_source"]) for h in r["hits"]["hits"]]

    def active(self, now: datetime | None = None) -> list[Silence]:
        now = now or datetime.now(UTC)
        return [s for s in self.all() if s.active(now)]


def silenced_by(alert: Mapping[str, Any], silences: Sequence[Silence]) -> Silence | None:
    return next((s for s in silences if s.matches(alert)), None)
