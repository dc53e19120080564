"""The action: what a responder asked for, on which host, why, until when, and what became of
it. One document per action in `iiswatch-actions`; its `_id` is `action.id`."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from iiswatch.times import iso

ACTIONS_INDEX = "iiswatch-actions"
HostName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")]


class Kind(StrEnum):
    BLOCK_IP = "block_ip"
    UNBLOCK_IP = "unblock_ip"
    QUARANTINE = "quarantine"


# Which `[actions] allow` entry lets an agent run a kind: lifting a block is part of blocking.
ALLOWED_BY = {Kind.BLOCK_IP: "block_ip", Kind.UNBLOCK_IP: "block_ip", Kind.QUARANTINE: "quarantine"}


class State(StrEnum):
    PENDING = "pending"  # recorded, not yet handed to the agent
    DELIVERED = "delivered"  # handed to the agent in a poll answer
    APPLIED = "applied"  # the agent did it
    FAILED = "failed"  # the agent tried and could not
    REFUSED = "refused"  # the agent's config does not allow this kind
    EXPIRED = "expired"  # a block whose time ran out, removed by the agent
    LIFTED = "lifted"  # a block removed early by `iiswatch respond unblock`


FINAL_STATES = frozenset({State.FAILED, State.REFUSED, State.EXPIRED, State.LIFTED})


def now() -> datetime:
    return datetime.now(UTC)


def new_action_id(kind: Kind, when: datetime | None = None) -> str:
    return f"{kind.value}-{(when or now()):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


class Target(BaseModel):
    """What the action works on: an address (`ip`) or a file of a site (`url_path`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ip: str | None = None
    url_path: str | None = None
    site: str | None = None  # the IIS site name; None: the agent's only/default site


class Result(BaseModel):
    """What the agent reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: State
    message: str = Field(max_length=4000)
    changes: list[str] = Field(default_factory=list, max_length=50)  # what was changed, exactly
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(default=None, ge=0)
    quarantined_to: str | None = Field(default=None, max_length=4096)
    at: datetime = Field(default_factory=now)


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: Kind
    host: HostName
    target: Target
    reason: str = Field(min_length=1, max_length=2000)
    requested_by: str
    requested_at: datetime = Field(default_factory=now)
    expires_at: datetime | None = None  # blocks only
    incident: str | None = None
    ticket: str | None = None  # RT ticket id told about this action
    auto_rule: str | None = None  # set when an automatic policy asked for it
    lifts: str | None = None  # unblock: the block action it lifts
    state: State = State.PENDING
    results: list[Result] = Field(default_factory=list)

    def to_doc(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json", exclude_none=True)
        doc["@timestamp"] = doc["requested_at"]
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Action:
        return cls.model_validate({k: v for k, v in doc.items() if k != "@timestamp"})

    def for_agent(self) -> dict[str, Any]:
        """What the agent needs to apply it (no who/why: those stay central)."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "target": self.target.model_dump(exclude_none=True),
        }
        if self.expires_at is not None:
            out["expires_at"] = iso(self.expires_at)
        if self.lifts:
            out["lifts"] = self.lifts
        return out
