"""Users and roles in the local node's file realm (`users`, `users_roles`, `roles.yml`).

The minimal distribution cannot create the `.security` index (its mapping needs the
analysis-common module), so the native realm, API keys and the role API are unavailable
there. The file realm is Elasticsearch's own, reloaded by the node within seconds of a
change. Passwords are stored as PBKDF2-SHA512 hashes, the format Elasticsearch verifies for
`{PBKDF2}` entries; they never appear on a command line.

Entries that iiswatch does not manage are kept as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

PBKDF2_ITERATIONS = 10_000  # Elasticsearch's default cost for its `pbkdf2` hasher
_PREFIX = "{PBKDF2}"


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(32)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=32)
    b64 = base64.b64encode
    return f"{_PREFIX}{iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    if not stored.startswith(_PREFIX):
        return False
    try:
        iterations, salt_b64, digest_b64 = stored[len(_PREFIX) :].split("$")
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations), len(digest))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, digest)


class FileRealm:
    """Read-modify-write access to the realm files in a node's config directory."""

    def __init__(self, config_dir: Path) -> None:
        self.dir = config_dir

    # --- files ---------------------------------------------------------------------------

    def _read(self, name: str) -> str:
        try:
            return (self.dir / name).read_text()
        except FileNotFoundError:
            return ""

    def _write(self, name: str, text: str) -> None:
        """Atomically replace a file, keeping the owner the node runs as able to read it."""
        target = self.dir / name
        owner = (target if target.exists() else self.dir).stat()
        tmp = target.with_name(f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if os.geteuid() == 0:
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.replace(tmp, target)

    # --- roles ---------------------------------------------------------------------------

    def roles(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self._read("roles.yml")) or {})

    def put_roles(self, wanted: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Set these roles; returns {role: created|updated|unchanged}."""
        current = self.roles()
        actions = {}
        for name, body in wanted.items():
            if current.get(name) == body:
                actions[name] = "unchanged"
            else:
                actions[name] = "updated" if name in current else "created"
                current[name] = body
        if any(a != "unchanged" for a in actions.values()):
            header = "# Managed in part by `iiswatch setup`; other roles here are left alone.\n"
            self._write("roles.yml", header + yaml.safe_dump(current, sort_keys=True))
        return actions

    # --- users ---------------------------------------------------------------------------

    def users(self) -> dict[str, str]:
        out = {}
        for line in self._read("users").splitlines():
            if ":" in line and not line.startswith("#"):
                name, _, hashed = line.partition(":")
                out[name] = hashed
        return out

    def user_roles(self) -> dict[str, set[str]]:
        """users_roles maps role → users; inverted here to user → roles."""
        out: dict[str, set[str]] = {}
        for line in self._read("users_roles").splitlines():
            if ":" in line and not line.startswith("#"):
                role, _, names = line.partition(":")
                for n in filter(None, (x.strip() for x in names.split(","))):
                    out.setdefault(n, set()).add(role.strip())
        return out

    def user_matches(self, username: str, password: str | None, roles: list[str]) -> bool:
        stored = self.users().get(username)
        return (
            stored is not None
            and password is not None
            and verify_password(password, stored)
            and self.user_roles().get(username, set()) == set(roles)
        )

    def put_user(self, username: str, password: str, roles: list[str]) -> None:
        users = self.users()
        users[username] = hash_password(password)
        self._write("users", "".join(f"{u}:{h}\n" for u, h in sorted(users.items())))
        by_user = self.user_roles()
        by_user[username] = set(roles)
        by_role: dict[str, list[str]] = {}
        for user, rs in sorted(by_user.items()):
            for r in sorted(rs):
                by_role.setdefault(r, []).append(user)
        self._write(
            "users_roles", "".join(f"{r}:{','.join(us)}\n" for r, us in sorted(by_role.items()))
        )
