"""Request Tracker 5 through REST 2: one ticket per alert group while it is open.

Idempotent by construction: every alert delivered to a ticket is recorded in the ticket's
`IiswatchAlertId` custom field (multi-valued), and `deliver` first searches for it, so a
retried delivery finds its ticket instead of opening a second one. An alert whose group
(`IiswatchGroup`: rule + group key) already has an active ticket becomes a comment on it.
RT ignores unknown custom fields without an error (the ticket is created without them),
so the queue's fields are checked once before the first delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import urllib3

from iiswatch.alerting.config import RequestTrackerDestination, resolve_secret
from iiswatch.alerting.destinations.base import DeliveryResult, HttpDestination
from iiswatch.alerting.destinations.http import request
from iiswatch.alerting.templates import Templates, group_ref
from iiswatch.errors import DeliveryError


def ticketsql_string(value: str) -> str:
    """A quoted TicketSQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RequestTracker(HttpDestination[RequestTrackerDestination]):
    def __init__(
        self,
        name: str,
        cfg: RequestTrackerDestination,
        templates: Templates,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        super().__init__(name, cfg, templates, http)
        self.rest = cfg.url.rstrip("/") + "/REST/2.0"
        self._checked = False

    # -- REST plumbing --------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        what = f"destination {self.name}"
        if self.cfg.token is not None:
            return {"Authorization": "token " + resolve_secret(self.cfg.token, what + " token")}
        assert self.cfg.user is not None and self.cfg.password is not None
        password = resolve_secret(self.cfg.password, what + " password")
        return urllib3.make_headers(basic_auth=f"{self.cfg.user}:{password}")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = request(
            self.http,
            method,
            self.rest + path,
            what=f"Request Tracker {self.name} ({self.cfg.url})",
            timeout=self.cfg.timeout.total_seconds(),
            headers=self._auth(),
            **kwargs,
        )
        return resp.json()

    def ticket_url(self, ticket_id: str) -> str:
        return f"{self.cfg.url.rstrip('/')}/Ticket/Display.html?id={ticket_id}"

    def search(self, ticketsql: str, fields: str = "Status,Subject") -> list[dict[str, Any]]:
        """Tickets matching a TicketSQL query, newest first (first page is enough here)."""
        found = self._call(
            "GET",
            "/tickets",
            fields={
                "query": ticketsql,
                "fields": fields,
                "orderby": "id",
                "order": "DESC",
                "per_page": "20",
            },
        )
        return list((found or {}).get("items") or [])

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/ticket/{ticket_id}") or {})

    # -- checks ---------------------------------------------------------------------------

    def check(self) -> None:
        """The queue exists and carries every custom field we write: RT would otherwise
        drop them silently, and without IiswatchAlertId retries could open a second ticket."""
        queue = self._call("GET", f"/queue/{quote(self.cfg.queue, safe='')}")
        have = {cf.get("name") for cf in (queue or {}).get("TicketCustomFields") or []}
        wanted = [self.cfg.alert_id_field, self.cfg.group_field, *self.cfg.custom_fields]
        missing = [f for f in wanted if f not in have]
        if missing:
            raise DeliveryError(
                f"Request Tracker queue {self.cfg.queue!r} has no custom field "
                f"{', '.join(missing)} (RT would drop the value without an error)",
                "create them in RT (Admin > Custom Fields: IiswatchAlertId "
                "'Enter multiple values', IiswatchGroup and Severity 'Enter one value') and "
                "apply them to the queue; scripts/rt/start-rt.sh does this for tests",
                retryable=False,
            )
        self._checked = True

    # -- the payloads ---------------------------------------------------------------------

    def _custom_fields(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {
            k: self.templates.render_inline(v, alert) for k, v in self.cfg.custom_fields.items()
        }
        values[self.cfg.group_field] = group_ref(alert)
        values[self.cfg.alert_id_field] = [str(alert["alert_id"])]
        return values

    def create_payload(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        subject, body = self.templates.render_message(
            alert, self.cfg.subject, self.cfg.body, evidence_lines=self.cfg.evidence_lines
        )
        payload: dict[str, Any] = {
            "Queue": self.cfg.queue,
            "Subject": subject,
            "Content": body,
            "ContentType": "text/plain",
            "Priority": self.cfg.priority.get(alert.get("severity", "medium"), 50),
            "CustomFields": self._custom_fields(alert),
        }
        if self.cfg.requestor:
            payload["Requestor"] = self.cfg.requestor
        return payload

    def comment_payload(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        subject, body = self.templates.render_message(
            alert, self.cfg.subject, self.cfg.body, evidence_lines=self.cfg.evidence_lines
        )
        if alert.get("incident"):  # a finding of the ticket's incident: its own words
            return {"Subject": subject, "Content": body, "ContentType": "text/plain"}
        return {
            "Subject": f"Fired again: {subject}",
            "Content": "The same alert group fired again while this ticket is open.\n\n" + body,
            "ContentType": "text/plain",
        }

    def preview(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "destination": self.name,
            "type": "request_tracker",
            "request": f"POST {self.rest}/ticket",
            "json": self.create_payload(alert),
            "or, when the group's ticket is open": {
                "request": f"POST {self.rest}/ticket/N/comment",
                "json": self.comment_payload(alert),
            },
        }

    # -- delivery -------------------------------------------------------------------------

    def deliver(self, alert: Mapping[str, Any]) -> DeliveryResult:
        if not self._checked:
            self.check()
        alert_id = str(alert["alert_id"])
        idf, gf = self.cfg.alert_id_field, self.cfg.group_field

        # the sender knows no earlier attempt can have reached RT (an incident's first
        # claim to open its ticket, whose group is that incident): nothing to look up
        first = bool(alert.get("first_open_attempt"))

        # 1. a ticket this alert already reached (an earlier attempt that we did not record)
        done = [] if first else self.search(f"CF.{{{idf}}} = {ticketsql_string(alert_id)}")
        if done:
            tid = str(done[0]["id"])
            return DeliveryResult(self.name, "reused", tid, self.ticket_url(tid))

        # 2. the group's ticket is still open: a comment, and the alert id added to it
        if self.cfg.comment_when_open and not first:
            open_ = self.search(
                f"CF.{{{gf}}} = {ticketsql_string(group_ref(alert))} AND Status = '__Active__'"
            )
            if open_:
                tid = str(open_[0]["id"])
                self._call("POST", f"/ticket/{tid}/comment", json=self.comment_payload(alert))
                self._add_alert_id(tid, alert_id)
                if alert.get("severity_raised_from"):  # the incident grew: so does the ticket
                    self._raise_priority(tid, alert)
                return DeliveryResult(self.name, "commented", tid, self.ticket_url(tid))

        # 3. a new ticket
        created = self._call("POST", "/ticket", json=self.create_payload(alert))
        tid = str((created or {}).get("id", ""))
        if not tid:
            raise DeliveryError(
                f"Request Tracker {self.name} created a ticket but did not say its id",
                "look for it in RT by the IiswatchAlertId custom field",
                retryable=True,  # the next attempt finds it by its alert id
            )
        return DeliveryResult(self.name, "created", tid, self.ticket_url(tid))

    def _add_alert_id(self, ticket_id: str, alert_id: str) -> None:
        # RT 5.0 REST 2 sets a multi-valued field to exactly the list it is given
        current = self.ticket(ticket_id)
        values: list[str] = []
        for cf in current.get("CustomFields") or []:
            if cf.get("name") == self.cfg.alert_id_field:
                values = [str(v) for v in cf.get("values") or []]
        if alert_id not in values:
            self._call(
                "PUT",
                f"/ticket/{ticket_id}",
                json={"CustomFields": {self.cfg.alert_id_field: [*values, alert_id]}},
            )

    def _raise_priority(self, ticket_id: str, alert: Mapping[str, Any]) -> None:
        fields = {
            k: self.templates.render_inline(v, alert) for k, v in self.cfg.custom_fields.items()
        }
        self._call(
            "PUT",
            f"/ticket/{ticket_id}",
            json={
                "Priority": self.cfg.priority.get(alert.get("severity", "medium"), 50),
                "CustomFields": fields,
            },
        )

    def resolve(self, ticket_id: str) -> None:
        """Mark the ticket resolved (the alert's condition has been clear long enough)."""
        self._call("PUT", f"/ticket/{ticket_id}", json={"Status": "resolved"})
