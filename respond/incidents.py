"""From an incident id to what response needs: the attacker's addresses, the hosts, and the
incident's ticket. ONE function reads the incident document, so it is the one place to adapt
when the incident model (issue 9, `iiswatch-incidents`) changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from iiswatch.errors import UsageError

INCIDENTS_INDEX = "iiswatch-incidents"


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


def read_incident(es: Elasticsearch, incident_id: str) -> Incident:
    """The incident document `incident_id`: `source.ip` (list), `host.name` (list) and the
    ticket reference `ticket.id`."""
    try:
        doc = es.get(index=INCIDENTS_INDEX, id=incident_id)["_source"]
    except NotFoundError as e:
        if _error_type(e) == "index_not_found_exception":
            raise UsageError(
                f"there is no {INCIDENTS_INDEX} index, so incident {incident_id!r} cannot be read",
                "give the attacker's IP address instead (and --host), or create incidents first",
            ) from None
        raise UsageError(
            f"no incident {incident_id!r} in {INCIDENTS_INDEX}",
            "check the id in the incident's ticket, or give the IP address instead",
        ) from None
    ticket = _strings(_field(doc, "ticket.id"))
    return Incident(
        id=incident_id,
        ips=_strings(_field(doc, "source.ip")),
        hosts=_strings(_field(doc, "host.name")),
        ticket=ticket[0] if ticket else None,
    )
