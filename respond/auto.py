"""The optional automatic policy: alerts of the rules named in the policy's `[auto]` table
block their source addresses on the policy's hosts, as a responder would with `block-ip`.
Off unless rules are named; every action it takes is an ordinary recorded action with
`auto_rule` set; each (alert, host, address) is acted on once (deterministic action ids),
so running it on a schedule is safe. The allow-list and private ranges are never forced."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from elasticsearch import ConflictError, Elasticsearch

from iiswatch.respond import store
from iiswatch.respond.model import Action
from iiswatch.respond.plan import plan_block
from iiswatch.respond.policy import Policy
from iiswatch.times import parse_duration

ALERTS = "iiswatch-alerts*"
REQUESTED_BY = "iiswatch auto-policy"


@dataclass
class AutoResult:
    recorded: list[Action] = field(default_factory=list)
    already: int = 0
    refused: list[str] = field(default_factory=list)


def auto_id(alert_id: str, host: str, ip: str) -> str:
    digest = hashlib.sha256(f"{alert_id}\0{host}\0{ip}".encode()).hexdigest()[:16]
    return f"block_ip-auto-{digest}"


def planned(es: Elasticsearch, policy: Policy, since: timedelta) -> AutoResult:
    """The actions the policy asks for, for the named rules' alerts of the last `since`
    (ids set; nothing recorded)."""
    out = AutoResult()
    auto = policy.auto
    if not auto.rules or not auto.hosts:
        return out
    hits = es.search(
        index=ALERTS,
        ignore_unavailable=True,
        query={
            "bool": {
                "filter": [
                    {"terms": {"rule.id": list(auto.rules)}},
                    {"range": {"@timestamp": {"gte": f"now-{int(since.total_seconds())}s"}}},
                ]
            }
        },
        source_includes=["alert_id", "rule.id", "source.ip"],
        size=500,
    )["hits"]["hits"]
    duration = parse_duration(auto.block_for)
    for h in hits:
        src = h["_source"]
        ips = (src.get("source") or {}).get("ip") or []
        ips = ips if isinstance(ips, list) else [ips]
        rule = str((src.get("rule") or {}).get("id", ""))
        alert_id = str(src.get("alert_id") or h["_id"])
        plan = plan_block(
            [str(i) for i in ips],
            list(auto.hosts),
            duration=duration,
            reason=f"automatic: alert {alert_id} of rule {rule}",
            requested_by=REQUESTED_BY,
            policy=policy,
            site=auto.site,
            auto_rule=rule,
        )
        out.refused += plan.refused
        for a in plan.actions:
            assert a.target.ip is not None
            out.recorded.append(a.model_copy(update={"id": auto_id(alert_id, a.host, a.target.ip)}))
    return out


def run_auto(es: Elasticsearch, policy: Policy, since: timedelta, *, yes: bool) -> AutoResult:
    result = planned(es, policy, since)
    if not yes:
        return result
    recorded = []
    for a in result.recorded:
        try:
            store.record(es, a)
        except ConflictError:
            result.already += 1
            continue
        recorded.append(a)
    result.recorded = recorded
    return result
