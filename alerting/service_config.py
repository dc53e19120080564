"""The `[service]` section of the alerting config (`AlertingConfig.service`): how
`iiswatch alerting run` schedules rules, catches up after downtime, shares the work between
replicas and watches itself.

    [service]
    settle = "2s"            # a window is evaluated this long after it ends (index refresh
                             # + a bulk request in flight)
    catch_up = "1h"          # after downtime, evaluate at most this much of missed ingest
                             # time per rule; anything older is reported as a gap alert
    jitter = "1s"            # random delay added to each rule run (spreads the load; at
                             # most a quarter of the interval; none for rules that open
                             # an incident at once)
    reload_poll = "5s"       # how often rule files are checked for changes
    deliver_every = "1s"     # delivery pass (also run as soon as a rule's alerts are stored)
    lease_name = "alerting"  # replicas sharing a lease name share the work
    lease_ttl = "15s"        # a dead leader is replaced within this (+ one renewal)
    disabled = []            # rule ids or names not to run
    default_destinations = ["servicedesk"] # for rules whose alert.destinations is empty
    error_destinations = ["servicedesk"]   # rule errors, gaps and deadman alerts go here

    [service.deadman]
    enabled = true
    silent_for = "15m"       # no event ingested from a host for this long -> alert
    known_for = "7d"         # hosts that sent anything within this are expected to
    every = "1m"
    destinations = []        # default: error_destinations

    [service.incidents]      # one ticket per attacker (risk-based alerting)
    enabled = true
    entity = "source.ip"     # what a rule alert's risk_score is credited to
    window = "24h"           # risk adds up over this
    threshold = 100          # an incident opens at this risk (or at once for a rule with
                             # `opens_incident: always`)
    destinations = []        # default: default_destinations
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from iiswatch.alerting.risk import IncidentPolicy
from iiswatch.settings import Duration


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeadmanSettings(_Model):
    enabled: bool = True
    silent_for: Duration = timedelta(minutes=15)
    known_for: Duration = timedelta(days=7)
    every: Duration = timedelta(minutes=1)
    index: str = "iis-*"
    destinations: list[str] | None = None  # None: the service's error_destinations

    @model_validator(mode="after")
    def _ordered(self) -> DeadmanSettings:
        if self.known_for <= self.silent_for:
            raise ValueError("known_for must be longer than silent_for")
        return self


class IncidentSettings(_Model):
    """`[service.incidents]`: risk-based alerting (iiswatch.alerting.risk). Off: every
    rule alert is delivered on its own, as before."""

    enabled: bool = True
    entity: str = Field(
        default="source.ip", pattern=r"^@?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"
    )
    window: Duration = timedelta(hours=24)
    threshold: int = Field(default=100, ge=1)
    destinations: list[str] | None = None  # None: the service's default_destinations

    def policy(self) -> IncidentPolicy:
        return IncidentPolicy(self.entity, self.window, self.threshold)


class ServiceSettings(_Model):
    settle: Duration = timedelta(seconds=2)
    catch_up: Duration = timedelta(hours=1)
    jitter: Duration = timedelta(seconds=1)
    reload_poll: Duration = timedelta(seconds=5)
    deliver_every: Duration = timedelta(seconds=1)
    lease_name: str = Field(default="alerting", pattern=r"^[A-Za-z0-9_.-]+$")
    lease_ttl: Duration = timedelta(seconds=15)
    disabled: list[str] = []
    default_destinations: list[str] = []
    error_destinations: list[str] = []
    deadman: DeadmanSettings = DeadmanSettings()
    incidents: IncidentSettings = IncidentSettings()
    # resolve a group's tickets once it has not fired for this long (off when unset)
    auto_resolve_after: Duration | None = None

    @model_validator(mode="after")
    def _positive(self) -> ServiceSettings:
        for name in ("reload_poll", "deliver_every", "lease_ttl"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be longer than zero")
        if self.settle < timedelta(0) or self.jitter < timedelta(0):
            raise ValueError("settle and jitter cannot be negative")
        return self
