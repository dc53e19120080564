"""Where iiswatch keeps things on this machine. Each can be moved with an environment
variable, which is how tests and CI keep their state apart from a developer's."""

from __future__ import annotations

import os
from pathlib import Path

from iiswatch.environment import env, user_config_dir, xdg_dir


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def state_dir() -> Path:
    """Node data, generated credentials, checkpoints: `$IISWATCH_HOME`, else XDG data home
    (as root /var/lib/iiswatch: the node runs as its own user, which cannot enter /root)."""
    if moved := env("IISWATCH_HOME"):
        return Path(moved)
    if _is_root():
        return Path("/var/lib/iiswatch")
    return xdg_dir("XDG_DATA_HOME", ".local/share") / "iiswatch"


def cache_dir() -> Path:
    """Downloads that can be fetched again (the Elasticsearch distribution); as root
    /var/cache/iiswatch, for the same reason as state_dir()."""
    if moved := env("IISWATCH_CACHE"):
        return Path(moved)
    if _is_root():
        return Path("/var/cache/iiswatch")
    return xdg_dir("XDG_CACHE_HOME", ".cache") / "iiswatch"


def config_file() -> Path:
    """The optional user config file: `$IISWATCH_CONFIG`, else XDG config home."""
    if moved := env("IISWATCH_CONFIG"):
        return Path(moved)
    return user_config_dir() / "config.toml"


def es_state_dir() -> Path:
    """The local node's home: config, data, logs, elastic password, connection.json."""
    return state_dir() / "es"


def credentials_dir() -> Path:
    """Least-privilege credentials written by `iiswatch setup` (one 0600 JSON file each)."""
    return state_dir() / "credentials"
