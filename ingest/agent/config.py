"""The agent's settings: a TOML file (written by `iiswatch agent discover --write-config` or by
hand) with command-line flags over it. Every problem in the file is reported at once, each with
where it is.

    [agent]
    name = "web01"                          # the name the collector issued the token to
    collector = "https://collector.example:8443"
    token_file = 'C:\\ProgramData\\iiswatch\\agent.token'
    state = 'C:\\ProgramData\\iiswatch\\state'
    ca = 'C:\\ProgramData\\iiswatch\\collector-ca.pem'   # optional; verification is always on
    flush_logbuffer_seconds = 10            # opt-in: `netsh http flush logbuffer` (Windows)

    [[inputs]]
    path = 'C:\\inetpub\\logs\\LogFiles\\W3SVC1\\*.log'
    format = "w3c"                          # optional: detected from the file
    site = "W3SVC1"                         # optional: the file's folder name
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from iiswatch import settings
from iiswatch.errors import ConfigError
from iiswatch.respond.agent_config import ActionsConfig

Format = Literal["w3c", "iis", "ncsa", "httperr"]
# Agent, host and site names become directory names in the collector's archive.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$"


log = logging.getLogger(__name__)


class InputConfig(BaseModel):
    """Files to follow: a glob (`*`, `?`, `[..]`, `**`), Windows or POSIX spelling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    format: Format | None = None
    site: str | None = Field(default=None, pattern=NAME_PATTERN)


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default_factory=socket.gethostname, pattern=NAME_PATTERN)
    host: str | None = Field(default=None, pattern=NAME_PATTERN)  # host.name; default: `name`
    collector: str = Field(pattern=r"^https?://")
    token_file: Path
    state: Path
    ca: Path | None = None
    insecure: bool = False  # allow plain http to a collector that is not on loopback
    inputs: tuple[InputConfig, ...] = Field(min_length=1)

    poll_interval: float = Field(0.2, gt=0, le=10)  # seconds between looks at the files
    batch_max_bytes: int = Field(1 << 20, ge=4096, le=64 << 20)
    batch_max_lines: int = Field(5000, ge=1)
    batch_max_wait: float = Field(0.5, ge=0, le=60)  # a read line is sent within this
    identity_settle: float = Field(2.0, ge=0)  # see follow.py: ids of files under 1 KiB
    close_inactive: float = Field(300.0, gt=0)  # release an idle, fully shipped file
    forget_after: float = Field(7 * 86400.0, gt=0)  # drop checkpoints of vanished files
    request_timeout: float = Field(30.0, gt=0)
    backoff_initial: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)
    flush_logbuffer_seconds: float = Field(0, ge=0)  # 0: off
    actions: ActionsConfig | None = None  # [actions]: response actions (respond/); None: off

    @property
    def host_name(self) -> str:
        return self.host or self.name


def load_agent_config(path: Path | None, overrides: dict[str, Any]) -> AgentConfig:
    """The file's `[agent]` table and `[[inputs]]`, with `overrides` (flags that were given)
    over them; `overrides["inputs"]` replaces the file's inputs."""
    if path is not None:
        file = settings.TomlFile.read(
            path, what="agent config", missing_hint="check the --config path"
        )
    else:
        file = settings.TomlFile("", "command line")
    raw = file.data
    unknown = sorted(set(raw) - {"agent", "inputs", "actions"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown table(s): {', '.join(unknown)}",
            "the agent config has an [agent] table, [[inputs]] entries and an optional "
            "[actions] table",
        )
    data = dict(raw.get("agent", {}))
    if "inputs" in raw:
        data["inputs"] = raw["inputs"]
    if "actions" in raw:
        data["actions"] = raw["actions"]
    data.update({k: v for k, v in overrides.items() if v is not None})
    return file.validate(
        AgentConfig,
        data,
        "agent configuration",
        "pass --collector, --token-file, --state and --path, or set them in --config",
    )


def read_token(path: Path) -> str:
    """The agent's bearer token: the file's first line. Never logged."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(
            f"cannot read token file {path}: {e.strerror}",
            "create it with the token `iiswatch collector add-agent` printed",
        ) from e
    _warn_if_readable_by_others(path)
    if not token or "\n" in token:
        raise ConfigError(
            f"token file {path} must hold exactly one line, the token",
            "paste the token `iiswatch collector add-agent` printed, and nothing else",
        )
    return token


def _warn_if_readable_by_others(path: Path) -> None:
    """The token lets anyone send logs as this agent: say so when others may read it."""
    if os.name != "posix":
        return  # Windows ACLs are not mode bits; the installer sets them
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "token file %s is readable by group or others (mode %o): chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
