"""Where alerts go: one class per kind of destination, all with the same small interface.

`deliver(alert)` hands one alert over and returns a `DeliveryResult` (what happened and the
ticket it landed in) or raises `DeliveryError`, whose `retryable` says whether a later
attempt may work. Retrying, backoff and bookkeeping are the outbox's job, not theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from iiswatch.alerting.config import (
    AlertingConfig,
    CommandDestination,
    RequestTrackerDestination,
    WebhookDestination,
)
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


def build(name: str, config: AlertingConfig, templates: Templates | None = None) -> Destination:
    """The destination called `name` in the config."""
    from iiswatch.alerting.destinations.command import Command
    from iiswatch.alerting.destinations.request_tracker import RequestTracker
    from iiswatch.alerting.destinations.webhook import Webhook

    cfg = config.destination(name)
    tpl = templates or Templates.from_config(config)
    if isinstance(cfg, RequestTrackerDestination):
        return RequestTracker(name, cfg, tpl)
    if isinstance(cfg, WebhookDestination):
        return Webhook(name, cfg, tpl)
    if isinstance(cfg, CommandDestination):
        return Command(name, cfg)
    raise AssertionError(f"unknown destination type {type(cfg).__name__}")
