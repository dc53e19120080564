"""Agent tokens: issued once, stored only as hashes in `ARCHIVE/agents.json` (0600).

A token is 32 random bytes (`secrets.token_urlsafe`), so a plain SHA-256 of it is enough: a
slow password hash protects guessable secrets, and 256 random bits cannot be guessed. The
check hashes the presented token and compares it with every stored hash in constant time
(`hmac.compare_digest`), so neither a name nor a prefix leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from iiswatch.errors import ConfigError, UsageError
from iiswatch.ingest.archive.layout import valid_name, write_atomic

AGENTS_FILE = "agents.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """Who a token was issued to, and the hosts it may send logs for. `id` is ECS `agent.id`:
    a random UUID fixed when the token was issued (an agent's name may be reused later)."""

    name: str
    id: str
    hosts: frozenset[str]

    def may_send_for(self, host: str) -> bool:
        return host.lower() in self.hosts


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The agents allowed to send to a collector. Re-read when the file changes, so
    `collector add-agent` takes effect without a restart."""

    def __init__(self, archive: Path) -> None:
        self.path = archive / AGENTS_FILE
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._agents: dict[str, tuple[str, AgentIdentity]] = {}  # name -> (hash, identity)

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"version": 1, "agents": {}}
        except OSError as e:
            raise ConfigError(f"cannot read {self.path}: {e.strerror}", None) from e
        try:
            data = orjson.loads(raw)
            if not isinstance(data.get("agents"), dict):
                raise ValueError("no 'agents' object")
        except (ValueError, AttributeError) as e:
            raise ConfigError(f"{self.path} is not a valid agents file: {e}", None) from e
        return dict(data)

    def add(
        self, name: str, *, replace: bool = False, hosts: list[str] | tuple[str, ...] = ()
    ) -> str:
        """Issue a token for agent `name`, allowed to send logs of `hosts` (default: the host
        named like the agent); return it (it is not stored, only its hash)."""
        for what, value in [("agent", name), *(("host", h) for h in hosts)]:
            if not valid_name(value):
                raise UsageError(
                    f"not a valid {what} name: {value!r}",
                    "use letters, digits, '.', '_' and '-', starting with a letter or digit",
                )
        with self._lock:
            data = self._load()
            if name in data["agents"] and not replace:
                raise UsageError(
                    f"agent {name!r} already has a token",
                    "add --replace to issue a new one (the old token stops working)",
                )
            token = secrets.token_urlsafe(32)
            data["agents"][name] = {
                "sha256": _digest(token),
                "id": str(uuid.uuid4()),
                "hosts": sorted({h.lower() for h in (hosts or [name])}),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._save(data)
            return token

    def remove(self, name: str) -> None:
        """Revoke agent `name`'s token: its next request is refused (401)."""
        with self._lock:
            data = self._load()
            if name not in data["agents"]:
                known = ", ".join(sorted(data["agents"])) or "none"
                raise UsageError(f"no agent {name!r} in {self.path}", f"agents: {known}")
            del data["agents"][name]
            self._save(data)

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, orjson.dumps(data, option=orjson.OPT_INDENT_2), mode=0o600)
        self.path.chmod(0o600)

    def names(self) -> list[str]:
        return sorted(self._current())

    def _current(self) -> dict[str, tuple[str, AgentIdentity]]:
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                try:
                    agents = self._load()["agents"] if stamp else {}
                except ConfigError as e:
                    # a half-edited or corrupt file must not turn every request into a 500:
                    # keep serving the agents last read, and say so once per change
                    log.error("%s; keeping the %d agents read before", e.message, len(self._agents))
                    self._stamp = stamp
                    return self._agents
                self._agents = {
                    n: (str(a.get("sha256", "")), _identity(n, a))
                    for n, a in agents.items()
                    if isinstance(a, dict)
                }
                self._stamp = stamp
            return self._agents

    def authenticate(self, token: str | None) -> AgentIdentity | None:
        """The agent `token` was issued to, or None."""
        if not token:
            return None
        presented = _digest(token)
        found = None
        for stored, identity in self._current().values():
            if hmac.compare_digest(presented, stored) and stored:
                found = identity  # no early exit: every entry is compared
        return found


def _identity(name: str, entry: dict[str, Any]) -> AgentIdentity:
    hosts = entry.get("hosts")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        hosts = [name]  # tokens issued before hosts were bound: the agent's own host only
    # tokens issued before agent ids existed: derived from the token hash (stable, not secret)
    agent_id = str(entry.get("id") or str(entry.get("sha256", ""))[:32])
    return AgentIdentity(name, agent_id, frozenset(h.lower() for h in hosts))
