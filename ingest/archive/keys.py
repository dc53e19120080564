"""The collector's archive key: seals segment manifests, head files and records with
HMAC-SHA256, so that editing data *and* recomputing its hashes is still caught by anyone who
holds the key.

HMAC rather than an Ed25519 signature: the standard library has it (no native dependency on
the collector), and the party that verifies is the party that runs the collector. The key
lives outside the archive directory (0600), so a copy of the archive alone cannot be re-sealed;
keep a copy of the key in escrow with whoever may have to verify later.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from iiswatch import paths
from iiswatch.errors import ConfigError
from iiswatch.ingest.archive.layout import canonical

KEY_BYTES = 32


def default_key_path() -> Path:
    return paths.state_dir() / "collector" / "archive.key"


class ArchiveKey:
    """A loaded key. `key_id` names it in manifests, so a wrong key is told from a forgery."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise ConfigError("the archive key is too short", "generate a new one")
        self._secret = secret
        self.key_id = hashlib.sha256(b"iiswatch-archive-key\0" + secret).hexdigest()[:16]

    def mac(self, data: bytes) -> str:
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def seal(self, obj: dict[str, Any]) -> str:
        """HMAC of the canonical JSON of `obj` without its `mac` field."""
        return self.mac(canonical({k: v for k, v in obj.items() if k != "mac"}))

    def check(self, obj: dict[str, Any]) -> bool:
        mac = obj.get("mac")
        return isinstance(mac, str) and hmac.compare_digest(mac, self.seal(obj))

    def check_mac(self, data: bytes, mac: str) -> bool:
        return hmac.compare_digest(mac, self.mac(data))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def load_key(path: Path, *, archive: Path | None = None) -> ArchiveKey:
    """Read the key at `path` (hex). Refuses a key inside the archive or readable by others."""
    if archive is not None and _inside(path, archive):
        raise ConfigError(
            f"the archive key {path} is inside the archive {archive}",
            "keep the key outside the archive (default: the iiswatch state dir)",
        )
    try:
        st = path.stat()
        text = path.read_text().strip()
    except FileNotFoundError as e:
        raise ConfigError(
            f"no archive key at {path}",
            "give the collector's key with --key (the collector creates it on first run)",
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot read the archive key {path}: {e.strerror}", None) from e
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the archive key {path} is readable by other users", f"run: chmod 600 {path}"
        )
    try:
        return ArchiveKey(bytes.fromhex(text))
    except ValueError as e:
        raise ConfigError(f"the archive key {path} is not hex", "restore it from escrow") from e


def load_or_create_key(path: Path, *, archive: Path | None = None) -> ArchiveKey:
    """The key at `path`, generated (0600, created that way) the first time."""
    if not path.exists():
        if archive is not None and _inside(path, archive):
            load_key(path, archive=archive)  # raises the explanation
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            return load_key(path, archive=archive)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(KEY_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
    return load_key(path, archive=archive)
