"""The agent's `[actions]` table: which response actions this host accepts (none unless
listed) and where IIS keeps what they change.

    [actions]
    allow = ["block_ip", "quarantine"]     # nothing by default: every action is refused
    poll_seconds = 15
    ip_security = "appcmd"                 # or "xml" (edit the file); default: appcmd on Windows
    application_host = '%windir%\\System32\\inetsrv\\config\\applicationHost.config'
    web_config = 'D:\\sites\\shop\\web.config'   # optional: deny entries go here instead
    quarantine_dir = 'C:\\ProgramData\\iiswatch\\quarantine'   # default: STATE\\quarantine
    site = "Default Web Site"              # default site for actions that name none
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from iiswatch.ingest.agent.discover import DEFAULT_CONFIG, expand, windows_environment

DEFAULT_APPCMD = r"%windir%\system32\inetsrv\appcmd.exe"
ActionName = Literal["block_ip", "quarantine"]


class ActionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: tuple[ActionName, ...] = ()
    poll_seconds: float = Field(15.0, ge=0.05, le=3600)
    ip_security: Literal["appcmd", "xml"] | None = None
    application_host: str = DEFAULT_CONFIG
    web_config: Path | None = None
    quarantine_dir: Path | None = None
    site: str | None = None
    appcmd: str = DEFAULT_APPCMD

    @property
    def ip_backend(self) -> str:
        return self.ip_security or ("appcmd" if os.name == "nt" else "xml")

    def application_host_path(self) -> Path:
        return Path(expand(self.application_host, windows_environment()))
