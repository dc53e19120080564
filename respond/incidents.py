"""From an incident id to what response needs: the attacker's addresses, the hosts, and the
incident's ticket. One function reads the incident document (alerting/incidents.py writes
it): `source.ip`, `hosts`, and the ticket id its delivery recorded per destination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from iiswatch.alerting.incidents import INCIDENTS_INDEX
from iiswatch.errors import UsageError


@dataclass(frozen=True)
class Incident:
    id: str
    ips: tuple[str, ...]
    hosts: tuple[str, ...]
    ticket: str | None


def _field(doc: dict[str, Any], dotted: str) -> Any:
    """A field by its dotted name, whether the document nests objects or not."""
    if dotted in doc:
        return doc[dotted]
    head, _, rest = dotted.partition(".")
    sub = doc.get(head)
    return _field(sub, rest) if rest and isinstance(sub, dict) else None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    return tuple(dict.fromkeys(str(v) for v in values if v not in (None, "")))


def _error_type(e: NotFoundError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    error = body.get("error")
    return str(error.get("type", "")) if isinstance(error, dict) else ""


def _ticket(doc: dict[str, Any]) -> str | None:
    """The incident's ticket: the first destination that recorded one."""
    states = (doc.get("delivery") or {}).get("states") or {}
    for state in states.values():
        if isinstance(state, dict) and state.get("ticket_id"):
            return str(state["ticket_id"])
    return None


def read_incident(es: Elasticsearch, incident_id: str) -> Incident:
    """The incident `incident_id` (or the one whose id starts with it): its source
    addresses, hosts and ticket."""
    try:
        doc = es.get(index=INCIDENTS_INDEX, id=incident_id)["_source"]
    except NotFoundError as e:
        if _error_type(e) == "index_not_found_exception":
            raise UsageError(
                f"there is no {INCIDENTS_INDEX} index, so incident {incident_id!r} cannot be read",
                "give the attacker's IP address instead (and --host), or create incidents first",
            ) from None
        hits = es.search(
            index=INCIDENTS_INDEX,
            query={"prefix": {"incident_id": incident_id}},
            size=2,
        )["hits"]["hits"]
        if len(hits) != 1:
            raise UsageError(
                f"{'no' if not hits else 'more than one'} incident {incident_id!r} "
                f"in {INCIDENTS_INDEX}",
                "`iiswatch incidents list` shows the ids (a unique prefix is enough), "
                "or give the IP address instead",
            ) from None
        doc = hits[0]["_source"]
        incident_id = hits[0]["_id"]
    return Incident(
        id=incident_id,
        ips=_strings(_field(doc, "source.ip")),
        hosts=_strings(doc.get("hosts")) or _strings(_field(doc, "host.name")),
        ticket=_ticket(doc) or (_strings(_field(doc, "ticket.id")) or (None,))[0],
    )
