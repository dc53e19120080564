"""The `IISWATCH_*` environment variables and the XDG folders: what every command reads
before it does anything, kept apart from the config loader (iiswatch/settings.py) so that
reading them costs no pydantic import (`iiswatch --help` answers at once)."""

from __future__ import annotations

import os
from pathlib import Path

# Every environment variable iiswatch reads, and what it is for (README, `--help`).
ENVIRONMENT = {
    "IISWATCH_HOME": "state directory (node data, credentials, checkpoints)",
    "IISWATCH_CACHE": "download cache (the Elasticsearch distribution)",
    "IISWATCH_CONFIG": "the Elasticsearch config file (default ~/.config/iiswatch/config.toml)",
    "IISWATCH_ALERTING_CONFIG": "the alerting config file (default ~/.config/iiswatch/"
    "alerting.toml)",
    "IISWATCH_RULES_DIR": "folder of rule files (default: the installed searches/)",
    "IISWATCH_ES_URL": "an existing cluster's URL, or its nodes' URLs comma-separated "
    "(instead of the local node)",
    "IISWATCH_ES_API_KEY": "its API key",
    "IISWATCH_ES_USERNAME": "or a user name",
    "IISWATCH_ES_PASSWORD": "and password",
    "IISWATCH_ES_CA_CERTS": "the CA that signed its certificate",
    "IISWATCH_ES_VERSION": "Elasticsearch version `es up` installs",
    "IISWATCH_ES_PORT": "HTTP port of the local node",
    "IISWATCH_DEBUG": "print tracebacks (set by --debug)",
}


def env(name: str) -> str | None:
    """An iiswatch environment variable; unset and empty are the same (None)."""
    if name not in ENVIRONMENT:
        raise AssertionError(f"{name} is not in iiswatch.environment.ENVIRONMENT")
    return os.environ.get(name) or None


def xdg_dir(var: str, default: str) -> Path:
    """An XDG base directory (`$XDG_DATA_HOME`, ...), else its default under the home."""
    return Path(os.environ.get(var) or Path.home() / default)


def user_config_dir() -> Path:
    """`$XDG_CONFIG_HOME/iiswatch`, else ~/.config/iiswatch."""
    return xdg_dir("XDG_CONFIG_HOME", ".config") / "iiswatch"
