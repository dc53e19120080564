"""Delivering incidents: one ticket per incident, and one comment per later finding.

The same idempotency design as the alert outbox (`iiswatch.alerting.outbox`): a pass
claims an incident with a conditional write (claim owner and expiry in
`delivery.claim`), so one process at a time works on it; each step (ticket opened,
finding commented) is recorded with a conditional write before the next; and every
message has a deterministic id (the incident id for the ticket, incident id + alert id for
a comment) that Request Tracker keeps in `IiswatchAlertId`, so a process that died after
RT took a message but before recording it finds that ticket again instead of opening a
second one. Only the lease holder runs the pass; a claim left by a dead leader expires
after `delivery.claim_timeout` and the next leader takes it over.

Each claim also counts, per destination whose ticket is not open yet, the claims that set
out to open it (`open_claims`). The first one cannot have a ticket to find, so its message
says `first_open_attempt` and the destination skips the look-up for an earlier attempt's
ticket (two searches in Request Tracker, most of a ticket's time besides its creation);
any later claim, after a crash or a failure, looks it up as before.

The incidents of one pass are delivered side by side (`PARALLEL` at a time): each has its
own claim, and a burst of attackers in one window does not queue behind each other's
ticket creation.

A message is an alert-like mapping (what destinations and templates know), with
`incident` (the incident's story) and, for comments, `finding`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import ConflictError, Elasticsearch

from iiswatch.alerting.config import AlertingConfig
from iiswatch.alerting.delivery import Deliverer, backoff
from iiswatch.alerting.incidents import LIVE, Incident, IncidentStore
from iiswatch.alerting.risk import search_command, severity_rank
from iiswatch.alerting.templates import discover_url
from iiswatch.errors import ConfigError, DeliveryError
from iiswatch.fields import get_field
from iiswatch.times import iso, time_or_none

log = logging.getLogger(__name__)

INCIDENT_RULE_ID = "incident"  # the `rule.id` of incident messages (their group_ref)
PARALLEL = 4  # incidents delivered at once in one pass


@dataclass
class IncidentReport:
    incident_id: str
    actions: list[str] = field(default_factory=list)  # "servicedesk: created 12", ...
    errors: dict[str, str] = field(default_factory=dict)


def _story(doc: Mapping[str, Any], kibana_url: str | None, data_view: str | None) -> dict[str, Any]:
    """What a ticket says about an incident: timeline, rules with their text, evidence
    search and link over the events' own @timestamp range."""
    entity = doc.get("entity") or {}
    findings = sorted(doc.get("findings") or [], key=lambda f: str(f.get("first_event")))
    rules: dict[str, dict[str, Any]] = {}
    for f in findings:
        r = f.get("rule") or {}
        rules.setdefault(str(r.get("id")), dict(r))
    link_alert = {
        "first_event": doc.get("first_event"),
        "last_event": doc.get("last_event"),
        "group": {str(entity.get("field")): entity.get("value")},
        "rule": {},
    }
    return {
        "incident_id": doc.get("incident_id"),
        "state": doc.get("state"),
        "entity": entity,
        "opened_by": doc.get("opened_by"),
        "risk_score": doc.get("risk_score"),
        "severity": doc.get("severity"),
        "hosts": list(doc.get("hosts") or []),
        "sites": list(doc.get("sites") or []),
        "first_event": doc.get("first_event"),
        "last_event": doc.get("last_event"),
        "timeline": [
            {
                "first_event": f.get("first_event"),
                "last_event": f.get("last_event"),
                "rule": (f.get("rule") or {}).get("name"),
                "severity": f.get("severity"),
                "risk_score": f.get("risk_score"),
                "event_count": f.get("event_count"),
                "alert_id": f.get("alert_id"),
            }
            for f in findings
        ],
        "rules": list(rules.values()),
        "search": search_command(
            str(entity.get("field")),
            str(entity.get("value")),
            doc.get("first_event"),
            doc.get("last_event"),
        ),
        "discover_url": discover_url(kibana_url, link_alert, data_view),
        "respond": _respond_commands(doc, findings),
    }


def _respond_commands(doc: Mapping[str, Any], findings: list[dict[str, Any]]) -> list[str]:
    """The ready `iiswatch respond` dry runs for an attacker's incident: block the address,
    and quarantine each path a rule that opens incidents at once (the web-shell rules) saw."""
    from iiswatch.respond.plan import ready_commands

    if (doc.get("entity") or {}).get("field") != "source.ip":
        return []  # blocking and quarantine act on an attacker's address
    paths = sorted(
        {
            str(path)
            for f in findings
            if f.get("opens_at_once")
            for sample in f.get("samples") or []
            if (path := get_field(sample, "url.path"))
        }
    )
    return ready_commands(str(doc["incident_id"]), tuple(paths))


def _base(doc: Mapping[str, Any], story: dict[str, Any]) -> dict[str, Any]:
    entity = doc.get("entity") or {}
    iid = str(doc["incident_id"])
    return {
        "rule": {
            "id": INCIDENT_RULE_ID,
            "name": f"Incident: {entity.get('field')}={entity.get('value')}",
            "type": "incident",
        },
        "severity": doc.get("severity", "medium"),
        "risk_score": doc.get("risk_score", 0),
        "mitre": [],
        "tags": ["incident"],
        "group": {"incident": iid},
        "source": dict(doc.get("source") or {}),
        "first_event": doc.get("first_event"),
        "last_event": doc.get("last_event"),
        "event_count": doc.get("event_count", 0),
        "window": {
            "start": doc.get("first_event"),
            "end": doc.get("last_event"),
            "time_field": "@timestamp",
        },
        "details": {},
        "incident": story,
    }


def open_message(
    doc: Mapping[str, Any], kibana_url: str | None = None, data_view: str | None = None
) -> dict[str, Any]:
    """The message that opens the incident's ticket: the whole story so far."""
    story = _story(doc, kibana_url, data_view)
    samples = [s for f in doc.get("findings") or [] for s in f.get("samples") or []]
    return _base(doc, story) | {
        "alert_id": str(doc["incident_id"]),
        "samples": samples,
        "templates": {"title": "incident-title", "body": "incident-body"},
    }


def comment_message(
    doc: Mapping[str, Any],
    finding: Mapping[str, Any],
    *,
    told_severity: str | None = None,
    kibana_url: str | None = None,
    data_view: str | None = None,
) -> dict[str, Any]:
    """A later finding, as a comment on the incident's ticket."""
    story = _story(doc, kibana_url, data_view)
    raised = told_severity is not None and severity_rank(doc.get("severity")) > severity_rank(
        told_severity
    )
    return _base(doc, story) | {
        "alert_id": f"{doc['incident_id']}-{finding['alert_id']}",
        "samples": list(finding.get("samples") or []),
        "finding": dict(finding),
        "severity_raised_from": told_severity if raised else None,
        "templates": {"title": "incident-comment-title", "body": "incident-comment"},
    }


class IncidentDeliverer:
    def __init__(
        self,
        es: Elasticsearch,
        config: AlertingConfig,
        store: IncidentStore,
        *,
        owner: str | None = None,
        deliverer: Deliverer | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.deliverer = deliverer or Deliverer(es, config, owner=owner)
        self.owner = self.deliverer.owner
        self.settings = config.delivery

    def deliver_pending(
        self, now: datetime | None = None, *, ids: Sequence[str] | None = None
    ) -> list[IncidentReport]:
        now = now or datetime.now(UTC)
        candidates = (
            list(dict.fromkeys(ids))
            if ids is not None
            else [i.incident_id for i in self.store.due(now)]
        )
        if len(candidates) <= 1:
            done = [self.deliver_one(iid, now) for iid in candidates]
        else:
            with ThreadPoolExecutor(min(PARALLEL, len(candidates))) as pool:
                done = list(pool.map(lambda iid: self.deliver_one(iid, now), candidates))
        return [r for r in done if r is not None]

    # -- one incident ---------------------------------------------------------------------

    def deliver_one(self, iid: str, now: datetime) -> IncidentReport | None:
        """Claim the incident, bring each destination up to date, release. None when it
        had nothing due or another process holds it."""
        inc = self._claim(iid, now)
        if inc is None:
            return None
        report = IncidentReport(iid)
        errors = False
        try:
            for name in inc.delivery.get("destinations") or []:
                if not self._to_destination(iid, name, report):
                    errors = True
        except _Lost:
            return report
        finally:
            self._settle(iid, now, errors)
        return report

    def _claim(self, iid: str, now: datetime) -> Incident | None:
        cur = self.store.get(iid)
        if cur is None or cur.state not in LIVE:
            return None
        d = cur.delivery
        if not d.get("pending"):
            return None
        if cur.state == "snoozed":
            until = time_or_none(cur.doc.get("snoozed_until"))
            if until is None or until > now:
                return None
        nxt = time_or_none(d.get("next_attempt_at"))
        if nxt is not None and nxt > now:
            return None
        claim = d.get("claim") or {}
        until = time_or_none(claim.get("until"))
        if until is not None and until > now and claim.get("owner") != self.owner:
            return None
        doc = copy.deepcopy(cur.doc)
        doc["delivery"]["claim"] = {
            "owner": self.owner,
            "at": iso(now),
            "until": iso(now + self.settings.claim_timeout),
        }
        states = doc["delivery"].setdefault("states", {})
        for name in d.get("destinations") or []:
            st = states.setdefault(name, {})
            if not st.get("opened"):
                st["open_claims"] = int(st.get("open_claims") or 0) + 1
        try:
            return self.store.update(cur, doc)
        except ConflictError:
            return None  # changed meanwhile (a new finding, another process): next pass

    def _step(self, iid: str, name: str, change: Mapping[str, Any]) -> Incident:
        """Record progress for one destination: a conditional write, retried on a conflict
        with a writer adding findings; `_Lost` when our claim was taken over."""
        while True:
            cur = self.store.get(iid)
            if cur is None or (cur.delivery.get("claim") or {}).get("owner") != self.owner:
                raise _Lost(iid)
            doc = copy.deepcopy(cur.doc)
            states = doc["delivery"].setdefault("states", {})
            st = dict(states.get(name) or {})
            for k, v in change.items():
                if k == "posted":
                    st["posted"] = list(dict.fromkeys([*(st.get("posted") or []), *v]))
                else:
                    st[k] = v
            states[name] = st
            try:
                return self.store.update(cur, doc)
            except ConflictError:
                continue

    def _to_destination(self, iid: str, name: str, report: IncidentReport) -> bool:
        """Open the ticket if not yet, then one comment per finding not yet posted.
        False when a delivery failed (tried again after a backoff)."""
        kibana, view = self.config.kibana_url, self.config.kibana_data_view
        try:
            dest = self.deliverer.destination(name)
            inc = self.store.get(iid)
            assert inc is not None
            st = (inc.delivery.get("states") or {}).get(name) or {}
            if not st.get("opened"):
                msg = open_message(inc.doc, kibana, view)
                # our claim is the first to set out to open it: no earlier ticket to find
                msg["first_open_attempt"] = int(st.get("open_claims") or 0) == 1
                result = dest.deliver(msg)
                inc = self._step(
                    iid,
                    name,
                    {
                        "opened": True,
                        "opened_at": iso(datetime.now(UTC)),
                        "ticket_id": result.ticket_id,
                        "url": result.url,
                        "action": result.action,
                        "severity": inc.doc.get("severity"),
                        "posted": [f["alert_id"] for f in inc.findings],
                        "error": None,
                    },
                )
                report.actions.append(f"{name}: {result.action} {result.ticket_id or ''}".strip())
            while True:
                st = (inc.delivery.get("states") or {}).get(name) or {}
                posted = set(st.get("posted") or [])
                todo = [f for f in inc.findings if f["alert_id"] not in posted]
                if not todo:
                    return True
                f = todo[0]
                msg = comment_message(
                    inc.doc, f, told_severity=st.get("severity"), kibana_url=kibana, data_view=view
                )
                result = dest.deliver(msg)
                inc = self._step(
                    iid,
                    name,
                    {"posted": [f["alert_id"]], "severity": inc.doc.get("severity"), "error": None},
                )
                report.actions.append(f"{name}: {result.action} {result.ticket_id or ''}".strip())
        except (DeliveryError, ConfigError) as e:
            log.warning("incident %s -> %s: %s", iid, name, e.message)
            report.errors[name] = e.message
            self._step(iid, name, {"error": e.message})
            return False

    def _settle(self, iid: str, now: datetime, errors: bool) -> None:
        """Release the claim; still pending if a finding is not posted everywhere yet."""
        while True:
            cur = self.store.get(iid)
            if cur is None or (cur.delivery.get("claim") or {}).get("owner") != self.owner:
                return
            doc = copy.deepcopy(cur.doc)
            d = doc["delivery"]
            ids = {f["alert_id"] for f in cur.findings}
            states = d.get("states") or {}
            done = all(
                (states.get(n) or {}).get("opened")
                and ids <= set((states.get(n) or {}).get("posted") or [])
                for n in d.get("destinations") or []
            )
            attempts = int(d.get("failed_passes", 0)) + 1 if errors else 0
            d.update(
                pending=not done,
                claim=None,
                failed_passes=attempts,
                next_attempt_at=iso(
                    now + timedelta(seconds=backoff(self.settings, attempts)) if errors else now
                ),
            )
            try:
                self.store.update(cur, doc)
                return
            except ConflictError:
                continue


class _Lost(Exception):
    """Another process took the incident over (our claim had expired)."""
