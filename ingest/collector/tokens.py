"""Agent tokens: issued once, stored only as hashes in `ARCHIVE/agents.json` (0600).

A token is 32 random bytes (`secrets.token_urlsafe`), so a plain SHA-256 of it is enough: a
slow password hash protects guessable secrets, and 256 random bits cannot be guessed. The
check hashes the presented token and compares it with every stored hash in constant time
(`hmac.compare_digest`), so neither a name nor a prefix leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from iiswatch.errors import ConfigError, UsageError
from iiswatch.ingest.archive.layout import valid_name, write_atomic

AGENTS_FILE = "agents.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The agents allowed to send to a collector. Re-read when the file changes, so
    `collector add-agent` takes effect without a restart."""

    def __init__(self, archive: Path) -> None:
        self.path = archive / AGENTS_FILE
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._hashes: dict[str, str] = {}

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

    def add(self, name: str, *, replace: bool = False) -> str:
        """Issue a token for agent `name`; return it (it is not stored, only its hash)."""
        if not valid_name(name):
            raise UsageError(
                f"not a valid agent name: {name!r}",
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
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(self.path, orjson.dumps(data, option=orjson.OPT_INDENT_2), mode=0o600)
            self.path.chmod(0o600)
            return token

    def names(self) -> list[str]:
        return sorted(self._current())

    def _current(self) -> dict[str, str]:
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                agents = self._load()["agents"] if stamp else {}
                self._hashes = {
                    n: str(a.get("sha256", "")) for n, a in agents.items() if isinstance(a, dict)
                }
                self._stamp = stamp
            return self._hashes

    def authenticate(self, token: str | None) -> str | None:
        """The agent name `token` was issued to, or None."""
        if not token:
            return None
        presented = _digest(token)
        found = None
        for name, stored in self._current().items():
            if hmac.compare_digest(presented, stored) and stored:
                found = name  # no early exit: every entry is compared
        return found
