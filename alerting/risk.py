"""Risk-based alerting, the pure part: rule alerts become *findings* credited to an entity
(`source.ip` by default), and an entity becomes an *incident* when its risk within a window
reaches a threshold, or at once when a finding comes from a rule marked
`opens_incident: always`. Shared by the service (`iiswatch.alerting.incidents`, state in
Elasticsearch) and `rules run --incidents` (in memory). Nothing here talks to a backend.

Risk is the sum, over the distinct rules that fired for the entity within the window, of
each rule's highest risk_score: one noisy rule firing window after window is still one
piece of evidence, so low-risk noise alone never opens an incident; several different
techniques from one address do.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from iiswatch.alerting.templates import lucene_phrase
from iiswatch.fields import get_field
from iiswatch.times import iso, time_or_none

SEVERITIES = ("low", "medium", "high", "critical")
MAX_FINDING_SAMPLES = 5  # sample events kept per finding in an incident
NO_ENTITY = "(none)"


@dataclass(frozen=True)
class IncidentPolicy:
    """How findings add up (the `[service.incidents]` settings)."""

    entity: str = "source.ip"
    window: timedelta = timedelta(hours=24)
    threshold: int = 100


def severity_rank(severity: Any) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def entity_values(alert: Mapping[str, Any], entity: str) -> list[str]:
    """The entity values an alert is credited to: its group's value of the entity field,
    else the values the alert lists for it (`source.ip` lists the clients it saw)."""
    group = alert.get("group") or {}
    value = group[entity] if entity in group else get_field(alert, entity)
    values = value if isinstance(value, list) else [value]
    return list(dict.fromkeys(str(v) for v in values if v not in (None, "")))


def incident_id(entity: str, value: str, generation: int) -> str:
    """Deterministic: every process computes the same id for an entity's n-th incident."""
    text = orjson.dumps(["incident", entity, value, generation])
    return hashlib.blake2b(text, digest_size=8).hexdigest()


def finding_from_alert(
    alert: Mapping[str, Any], rule: Any = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """What an incident keeps of one rule alert: enough to tell the story without the
    outbox (rule text for the ticket, evidence, event times)."""
    r = alert.get("rule") or {}
    samples = list(alert.get("samples") or [])[:MAX_FINDING_SAMPLES]
    hosts = sorted({str(h) for s in samples if (h := get_field(s, "host.name"))})
    sites = sorted(
        {
            str(x)
            for s in samples
            if (x := get_field(s, "iis.site_name") or get_field(s, "url.domain"))
        }
    )
    finding: dict[str, Any] = {
        "alert_id": str(alert["alert_id"]),
        "rule": {"id": str(r.get("id", "")), "name": str(r.get("name", ""))},
        "severity": str(alert.get("severity", "low")),
        "risk_score": int(alert.get("risk_score") or 0),
        "opens_at_once": bool(rule is not None and getattr(rule, "opens_incident", "") == "always"),
        "first_event": alert.get("first_event"),
        "last_event": alert.get("last_event"),
        "event_count": int(alert.get("event_count") or 0),
        "group": dict(alert.get("group") or {}),
        "source_ips": list((alert.get("source") or {}).get("ip") or []),
        "hosts": hosts,
        "sites": sites,
        "samples": samples,
        "added": iso(now or datetime.now(UTC)),
    }
    if rule is not None:
        finding["rule"].update(
            description=rule.description,
            false_positives=list(rule.false_positives),
            response=rule.response,
            lucene=rule.lucene,
            index=rule.index,
        )
    return finding


def _last(f: Mapping[str, Any]) -> datetime:
    return (
        time_or_none(f.get("last_event"))
        or time_or_none(f.get("added"))
        or datetime.min.replace(tzinfo=UTC)
    )


def _first(f: Mapping[str, Any]) -> datetime:
    return time_or_none(f.get("first_event")) or _last(f)


def risk(findings: Sequence[Mapping[str, Any]], window: timedelta) -> int:
    """Sum over distinct rules of their highest risk_score, among the findings whose last
    event is within `window` of the newest one."""
    if not findings:
        return 0
    newest = max(_last(f) for f in findings)
    best: dict[str, int] = {}
    for f in findings:
        if _last(f) >= newest - window:
            rid = str((f.get("rule") or {}).get("id", ""))
            best[rid] = max(best.get(rid, 0), int(f.get("risk_score") or 0))
    return sum(best.values())


def opens(findings: Sequence[Mapping[str, Any]], policy: IncidentPolicy) -> str | None:
    """Why these findings open an incident (None: they do not, yet)."""
    for f in findings:
        if f.get("opens_at_once"):
            return f"rule {(f.get('rule') or {}).get('name', '')!s} opens an incident at once"
    score = risk(findings, policy.window)
    if score >= policy.threshold:
        return f"risk {score} reached the threshold {policy.threshold}"
    return None


def severity(findings: Sequence[Mapping[str, Any]], policy: IncidentPolicy) -> str:
    """The highest severity of its findings, raised by the risk they add up to: twice the
    threshold is at least high, three times is critical."""
    rank = max((severity_rank(f.get("severity")) for f in findings), default=0)
    score = risk(findings, policy.window)
    if score >= 3 * policy.threshold:
        rank = max(rank, severity_rank("critical"))
    elif score >= 2 * policy.threshold:
        rank = max(rank, severity_rank("high"))
    return SEVERITIES[rank]


def summary(
    findings: Sequence[Mapping[str, Any]], policy: IncidentPolicy, entity_value: str
) -> dict[str, Any]:
    """The fields of an incident derived from its findings (the document's top level)."""
    ordered = sorted(findings, key=_first)
    ips: list[str]
    if policy.entity == "source.ip":
        ips = [entity_value]
    else:
        ips = list(dict.fromkeys(ip for f in ordered for ip in f.get("source_ips") or []))
    rules: dict[str, str] = {}
    for f in ordered:
        r = f.get("rule") or {}
        rules.setdefault(str(r.get("id", "")), str(r.get("name", "")))
    return {
        "entity": {"field": policy.entity, "value": entity_value},
        "source": {"ip": ips},
        "rules": [{"id": k, "name": v} for k, v in rules.items()],
        "rule_names": list(rules.values()),
        "risk_score": risk(ordered, policy.window),
        "severity": severity(ordered, policy),
        "first_event": iso(min(_first(f) for f in ordered)) if ordered else None,
        "last_event": iso(max(_last(f) for f in ordered)) if ordered else None,
        "event_count": sum(int(f.get("event_count") or 0) for f in ordered),
        "hosts": sorted({h for f in ordered for h in f.get("hosts") or []}),
        "sites": sorted({s for f in ordered for s in f.get("sites") or []}),
        "finding_count": len(ordered),
    }


def search_command(entity: str, value: str, first: Any, last: Any) -> str:
    """The `iiswatch search` command that lists the entity's events over the incident's
    own event times (@timestamp), so a late or back-filled line is found too."""
    t0, t1 = time_or_none(first), time_or_none(last)
    args = ["iiswatch", "search", f"{entity}:{lucene_phrase(value)}"]
    if t0 is not None and t1 is not None:
        args += ["--from", iso(t0), "--to", iso(t1 + timedelta(seconds=1))]
    args += ["--oldest-first", "-n", "200"]
    return shlex.join(args)


@dataclass
class _Entity:
    value: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    opened_by: str | None = None
    opened_at: str | None = None


def offline_incidents(
    alerts: Iterable[tuple[Mapping[str, Any], Any]], policy: IncidentPolicy
) -> list[dict[str, Any]]:
    """The incidents a set of rule alerts (each with its rule) would open, as the service
    would open them: findings replayed in the order of their last event, an incident opening
    at the first finding that makes it. Entities that never open one are left out."""
    entities: dict[str, _Entity] = {}
    findings = []
    for alert, rule in alerts:
        finding = finding_from_alert(alert, rule)
        for value in entity_values(alert, policy.entity) or [NO_ENTITY]:
            findings.append((value, finding))
    findings.sort(key=lambda vf: _last(vf[1]))
    for value, finding in findings:
        ent = entities.setdefault(value, _Entity(value))
        ent.findings.append(finding)
        if ent.opened_by is None and (why := opens(ent.findings, policy)):
            ent.opened_by, ent.opened_at = why, iso(_last(finding))
    out = []
    for ent in entities.values():
        if ent.opened_by is None:
            continue
        doc = summary(ent.findings, policy, ent.value)
        doc = {
            "incident_id": incident_id(policy.entity, ent.value, 1),
            **doc,
            "opened_by": ent.opened_by,
            "opened_at_event": ent.opened_at,
            "findings": [
                {
                    "alert_id": f["alert_id"],
                    "rule": f["rule"]["name"],
                    "risk_score": f["risk_score"],
                    "first_event": f["first_event"],
                    "last_event": f["last_event"],
                }
                for f in sorted(ent.findings, key=_first)
            ],
            "search": search_command(
                policy.entity, ent.value, doc["first_event"], doc["last_event"]
            ),
        }
        out.append(doc)
    out.sort(key=lambda d: str(d["first_event"]))
    return out
