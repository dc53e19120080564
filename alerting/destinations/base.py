"""What every destination is: one class per kind, all with the same small interface, and
the shared setup of those that speak HTTP.

`deliver(alert)` hands one alert over and returns a `DeliveryResult` (what happened and the
ticket it landed in) or raises `DeliveryError`, whose `retryable` says whether a later
attempt may work. Retrying, backoff and bookkeeping are the outbox's job, not theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

import urllib3

from iiswatch.alerting.config import RequestTrackerDestination, WebhookDestination
from iiswatch.alerting.destinations.http import pool
from iiswatch.alerting.templates import Templates

Action = Literal["created", "commented", "reused", "sent"]


@dataclass(frozen=True)
class DeliveryResult:
    destination: str
    action: Action  # created a ticket | commented on the group's open ticket | found the
    # ticket this alert already made (a retried delivery) | sent (webhook, command)
    ticket_id: str | None = None
    url: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Destination(Protocol):
    name: str

    def deliver(self, alert: Mapping[str, Any]) -> DeliveryResult: ...

    def preview(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        """What `deliver` would send, without secrets (for `alerts render`)."""
        ...


HttpConfig = TypeVar("HttpConfig", RequestTrackerDestination, WebhookDestination)


class HttpDestination(Generic[HttpConfig]):
    """A destination reached over HTTP: its config, templates and a connection pool that
    trusts the configured CA (tests pass their own pool)."""

    def __init__(
        self,
        name: str,
        cfg: HttpConfig,
        templates: Templates,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        self.name = name
        self.cfg: HttpConfig = cfg
        self.templates = templates
        self.http = http or pool(cfg.ca_certs)
