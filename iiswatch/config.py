"""How iiswatch finds its Elasticsearch: flags > environment > config file > the local node
that `iiswatch es up` started. Each command asks for the narrowest credentials it needs.

Config file (TOML, `$IISWATCH_CONFIG` or ~/.config/iiswatch/config.toml)::

    [elasticsearch]
    url = "https://es.example.org:9200"   # a cluster: "https://es1:9200,https://es2:9200"
    ca_certs = "/etc/iiswatch/ca.pem"     # optional; verification is always on for https
    api_key = "base64-id:key"             # or username + password / password_file

    [elasticsearch.credentials.writer]    # optional: per-purpose credentials
    api_key = "..."

Environment: IISWATCH_ES_URL, IISWATCH_ES_API_KEY, IISWATCH_ES_USERNAME,
IISWATCH_ES_PASSWORD, IISWATCH_ES_CA_CERTS.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from iiswatch import paths, settings
from iiswatch.environment import env
from iiswatch.errors import ConfigError
from iiswatch.times import format_duration


class Purpose(StrEnum):
    """What a command does with Elasticsearch; decides which credentials it gets."""

    ADMIN = "admin"  # install templates, roles, users
    WRITER = "writer"  # create documents in the log and dead-letter indices, nothing else
    READER = "reader"  # search the logs
    ALERTING = "alerting"  # read logs, keep rule state and alerts
    RESPONDER = "responder"  # record response actions (iiswatch respond), read incidents


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None

    def resolved_password(self) -> str | None:
        if self.password is not None:
            return self.password
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as e:
                raise ConfigError(
                    f"cannot read password file {self.password_file}: {e.strerror}",
                    "check the path and its permissions",
                ) from e
        return None

    @property
    def present(self) -> bool:
        return bool(self.api_key or self.username)

    @property
    def label(self) -> str:
        return f"user {self.username}" if self.username else "an API key"


class ElasticsearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    ca_certs: Path | None = None
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    credentials: dict[Purpose, Credentials] = {}
    request_timeout: float = 30.0

    @field_validator("url")
    @classmethod
    def _url_has_a_scheme(cls, url: str | None) -> str | None:
        # the client would fail later with a traceback; say it here, with the fix
        if url is None:
            return None
        urls = split_urls(url)
        if not urls:
            raise ValueError("no URL given: write https://host:9200 (several: comma-separated)")
        for u in urls:
            if not u.lower().startswith(("http://", "https://")):
                raise ValueError(
                    f"{u!r} has no scheme: write https://{u} (or http:// for a plain node)"
                )
        return url


# below this the alerting ledger could lose window records still in use
MIN_STATE_AGE = timedelta(days=7)


class RetentionSettings(BaseModel):
    """Ages after which `iiswatch retention` deletes (durations: 400d, 12h), read and checked
    when the config file is loaded, so a bad one is reported with its file and line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    logs: settings.Duration = timedelta(days=365)  # monthly log indices, whole months
    deadletter: settings.Duration = timedelta(days=90)
    state: settings.Duration = timedelta(days=30)  # window records, expired suppressions
    alerts: settings.Duration | None = None  # the outbox: kept unless set

    @field_validator("logs", "deadletter", "state", "alerts", mode="before")
    @classmethod
    def _age_has_a_unit(cls, value: Any) -> Any:
        # elsewhere a bare TOML number is seconds; here `logs = 365` would delete nearly
        # every index, so an age must say its unit
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"an age needs a unit: write {value}d for days (or h, w)")
        return value

    @field_validator("logs", "deadletter", "alerts")
    @classmethod
    def _age_is_positive(cls, age: timedelta | None) -> timedelta | None:
        if age is not None and age <= timedelta(0):
            raise ValueError("an age of zero would delete everything: use e.g. 30d")
        return age

    @field_validator("state")
    @classmethod
    def _state_keeps_recent_windows(cls, age: timedelta) -> timedelta:
        if age < MIN_STATE_AGE:
            raise ValueError(
                f"{format_duration(age)} is shorter than 7d: the alerting service needs "
                "recent window records; use 7d or more"
            )
        return age


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    retention: RetentionSettings = RetentionSettings()


def split_urls(url: str) -> list[str]:
    """The nodes a URL setting names: one URL, or several separated by commas (the nodes of
    one cluster; the client spreads requests over them and retries a failed one on the next)."""
    return [u.strip() for u in url.split(",") if u.strip()]


class Connection(BaseModel):
    """Everything needed to build one client: where, how to trust it, who we are."""

    model_config = ConfigDict(frozen=True)

    url: str  # one URL, or several comma-separated (split_urls)
    credentials: Credentials
    ca_certs: Path | None = None
    request_timeout: float = 30.0
    source: str  # where these came from, for error messages ("local node", "config file", ...)

    @property
    def urls(self) -> list[str]:
        return split_urls(self.url)


# the environment variables that override the file's [elasticsearch] table
ENV_OVERRIDES = {
    "url": "IISWATCH_ES_URL",
    "api_key": "IISWATCH_ES_API_KEY",
    "username": "IISWATCH_ES_USERNAME",
    "password": "IISWATCH_ES_PASSWORD",
    "ca_certs": "IISWATCH_ES_CA_CERTS",
}


def load_settings(config_path: Path | None = None) -> Settings:
    """The config file (optional) with the environment over it."""
    file = settings.TomlFile.read(config_path or paths.config_file())
    data = dict(file.data)
    es = dict(data.get("elasticsearch", {}))
    from_env = {key: var for key, var in ENV_OVERRIDES.items() if env(var)}
    es.update({key: env(var) for key, var in from_env.items()})
    data["elasticsearch"] = es
    origins: dict[tuple[str, ...], str] = {
        ("elasticsearch", key): var for key, var in from_env.items()
    }
    return file.validate(
        Settings,
        data,
        "config",
        "see README 'Using an existing cluster' ([elasticsearch]) and 'Retention' ([retention])",
        origins,
    )


def _local_node() -> dict[str, Any] | None:
    f = paths.es_state_dir() / "connection.json"
    try:
        return dict(json.loads(f.read_text()))
    except (OSError, ValueError):
        return None


def local_credentials(purpose: Purpose) -> Credentials | None:
    f = paths.credentials_dir() / f"{purpose.value}.json"
    try:
        return Credentials.model_validate_json(f.read_text())
    except (OSError, ValidationError):
        return None


def connection_for(purpose: Purpose, settings: Settings | None = None) -> Connection:
    """The connection a command with this purpose should use, or a ConfigError saying why
    there is none and what to run."""
    s = (settings or load_settings()).elasticsearch
    if s.url:
        creds = s.credentials.get(purpose) or Credentials(
            api_key=s.api_key,
            username=s.username,
            password=s.password,
            password_file=s.password_file,
        )
        if not creds.present:
            raise ConfigError(
                f"no credentials configured for {s.url}",
                "set IISWATCH_ES_API_KEY (or IISWATCH_ES_USERNAME/IISWATCH_ES_PASSWORD) "
                "or add them to the config file",
            )
        return Connection(
            url=s.url,
            credentials=creds,
            ca_certs=s.ca_certs,
            request_timeout=s.request_timeout,
            source="configuration",
        )

    node = _local_node()
    if node is None:
        raise ConfigError(
            "no Elasticsearch configured and no local node found",
            "run `iiswatch es up` (local node) or set IISWATCH_ES_URL",
        )
    given = s.credentials.get(purpose) or Credentials(
        api_key=s.api_key, username=s.username, password=s.password, password_file=s.password_file
    )
    if given.present:
        # credentials given without a URL are for the local node; never silently dropped
        return Connection(
            url=node["url"],
            credentials=given,
            request_timeout=s.request_timeout,
            source="local node, configured credentials",
        )
    if purpose is Purpose.ADMIN:
        creds = Credentials(username=node["username"], password_file=Path(node["password_file"]))
    else:
        found = local_credentials(purpose)
        if found is None:
            raise ConfigError(
                f"no '{purpose.value}' credentials for the local node yet",
                "run `iiswatch setup` once to create them",
            )
        creds = found
    return Connection(
        url=node["url"], credentials=creds, request_timeout=s.request_timeout, source="local node"
    )


def save_local_credentials(purpose: Purpose, creds: Credentials) -> Path:
    """Write credentials 0600 (created that way, never world-readable for an instant)."""
    d = paths.credentials_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    f = d / f"{purpose.value}.json"
    tmp = f.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(creds.model_dump_json(exclude_none=True))
    os.replace(tmp, f)
    return f
