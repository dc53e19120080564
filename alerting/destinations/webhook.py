"""An HTTP request whose JSON body a template builds (Jira, ServiceNow, TheHive, Slack,
Teams, or your own). The URL, headers and auth may hold secrets: they are resolved at send
time and never appear in messages, previews or the outbox (only the URL's host does)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import urllib3

from iiswatch.alerting.config import BasicAuth, WebhookDestination, resolve_secret
from iiswatch.alerting.destinations.base import DeliveryResult, HttpDestination
from iiswatch.alerting.destinations.http import request
from iiswatch.errors import ConfigError
from iiswatch.fields import get_field


class Webhook(HttpDestination[WebhookDestination]):
    def payload(self, alert: Mapping[str, Any]) -> Any:
        cap = self.cfg.evidence_lines
        title, text = self.templates.render_message(alert, evidence_lines=cap)
        return self.templates.render_json(
            self.cfg.body,
            alert,
            title=title,
            text=text,
            vars=dict(self.cfg.vars),
            evidence_lines=cap,
        )

    def _url(self) -> str:
        url = resolve_secret(self.cfg.url, f"destination {self.name} url")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"destination {self.name}: url must start with http:// or https://",
                "check the value (or the variable/file it refers to)",
            )
        return url

    def _headers(self) -> dict[str, str]:
        what = f"destination {self.name}"
        headers = {k: resolve_secret(v, f"{what} header {k}") for k, v in self.cfg.headers.items()}
        auth = self.cfg.auth
        if isinstance(auth, BasicAuth):
            password = resolve_secret(auth.password, f"{what} auth password")
            headers.update(urllib3.make_headers(basic_auth=f"{auth.username}:{password}"))
        elif auth is not None:
            headers["Authorization"] = "Bearer " + resolve_secret(auth.token, f"{what} token")
        return headers

    def describe(self) -> str:
        """The destination for messages: its name and host, never the full URL."""
        try:
            host = urlsplit(self._url()).netloc.rsplit("@", 1)[-1]
        except ConfigError:
            host = "?"
        return f"webhook {self.name} ({host})"

    def preview(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "destination": self.name,
            "type": "webhook",
            "request": f"{self.cfg.method} {self.describe()}",
            "headers": sorted(["Content-Type", *self.cfg.headers])
            + (["Authorization"] if self.cfg.auth else []),
            "json": self.payload(alert),
        }

    def deliver(self, alert: Mapping[str, Any]) -> DeliveryResult:
        body = self.payload(alert)
        resp = request(
            self.http,
            self.cfg.method,
            self._url(),
            what=self.describe(),
            timeout=self.cfg.timeout.total_seconds(),
            headers=self._headers(),
            json=body,
        )
        ticket = None
        if self.cfg.ticket_field:
            value = get_field(resp.json() or {}, self.cfg.ticket_field)
            ticket = None if value is None else str(value)
        return DeliveryResult(self.name, "sent", ticket, None, {"status": resp.status})
