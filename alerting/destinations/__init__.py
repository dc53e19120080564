"""Where alerts go: `build` makes the destination a config names. The interface is in
base.py; each kind of destination is a module here that imports base, never this package."""

from __future__ import annotations

from iiswatch.alerting.config import (
    AlertingConfig,
    CommandDestination,
    RequestTrackerDestination,
    WebhookDestination,
)
from iiswatch.alerting.destinations.base import Destination
from iiswatch.alerting.destinations.command import Command
from iiswatch.alerting.destinations.request_tracker import RequestTracker
from iiswatch.alerting.destinations.webhook import Webhook
from iiswatch.alerting.templates import Templates


def build(name: str, config: AlertingConfig, templates: Templates | None = None) -> Destination:
    """The destination called `name` in the config."""
    cfg = config.destination(name)
    tpl = templates or Templates.from_config(config)
    if isinstance(cfg, RequestTrackerDestination):
        return RequestTracker(name, cfg, tpl)
    if isinstance(cfg, WebhookDestination):
        return Webhook(name, cfg, tpl)
    if isinstance(cfg, CommandDestination):
        return Command(name, cfg)
    raise AssertionError(f"unknown destination type {type(cfg).__name__}")
