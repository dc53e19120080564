"""The alerting config file: where alerts go (named destinations), how delivery retries,
and the Kibana URL for links. TOML, like the rest of iiswatch's config.

The `[service]` section (how `iiswatch alerting run` schedules rules: service_config.py) is
part of the same model; the file is read once, through iiswatch.settings.

File: `--config FILE`, else `$IISWATCH_ALERTING_CONFIG`, else
`~/.config/iiswatch/alerting.toml`. Secrets are never written in the file itself: any
value marked secret below may be `${env:NAME}` (an environment variable) or
`${file:/path}` (the file's content, trailing newline stripped), and may be embedded in
text (`"Bearer ${env:JIRA_TOKEN}"`). They are resolved when a delivery needs them and are
never printed or logged.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from iiswatch import settings
from iiswatch.alerting.service_config import ServiceSettings
from iiswatch.environment import env, user_config_dir
from iiswatch.errors import ConfigError
from iiswatch.settings import Duration

SEVERITIES = ("low", "medium", "high", "critical")
_SECRET_REF = re.compile(r"\$\{(env|file):([^}]+)\}")


Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
TemplateName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)]


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def resolve_secret(value: SecretStr | str, what: str) -> str:
    """The text with every `${env:NAME}` / `${file:PATH}` replaced; ConfigError naming the
    variable or file (never the value) when one is missing."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value

    def one(m: re.Match[str]) -> str:
        kind, ref = m.group(1), m.group(2).strip()
        if kind == "env":
            if ref not in os.environ:
                raise ConfigError(
                    f"{what}: environment variable {ref} is not set",
                    f"export {ref} for the alerting service, or use ${{file:...}}",
                )
            return os.environ[ref]
        try:
            return Path(ref).read_text().rstrip("\r\n")
        except OSError as e:
            raise ConfigError(
                f"{what}: cannot read secret file {ref}: {e.strerror}",
                "check the path and that the service user may read it (mode 0600)",
            ) from e

    return _SECRET_REF.sub(one, text)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeliverySettings(_Model):
    """Retries: exponential backoff from `backoff_base` up to `backoff_max` between
    attempts, `quick_attempts` of them inside one pass (short outages), then again on
    later passes until `deadline` after the alert was stored or `max_attempts` per
    destination; then the alert is `failed` (`iiswatch alerts retry ID` replays it)."""

    deadline: Duration = timedelta(hours=2)
    max_attempts: int = Field(default=50, ge=1)
    backoff_base: Duration = timedelta(seconds=2)
    backoff_max: Duration = timedelta(minutes=5)
    quick_attempts: int = Field(default=2, ge=1, le=10)
    claim_timeout: Duration = timedelta(minutes=5)  # a crashed deliverer's claim expires

    @model_validator(mode="after")
    def _ordered(self) -> DeliverySettings:
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must be >= backoff_base")
        return self


class RequestTrackerDestination(_Model):
    """Request Tracker 5 through REST 2 (`{url}/REST/2.0`)."""

    type: Literal["request_tracker"]
    url: HttpUrl  # RT's base URL, e.g. https://rt.example.org
    queue: str = "General"
    token: SecretStr | None = None  # an RT auth token ("1-14-..."), e.g. "${file:/etc/...}"
    user: str | None = None  # or basic auth
    password: SecretStr | None = None
    requestor: str | None = None
    priority: dict[Literal["low", "medium", "high", "critical"], int] = {
        "low": 20,
        "medium": 50,
        "high": 80,
        "critical": 100,
    }
    custom_fields: dict[str, str] = {"Severity": "{{ alert.severity }}"}  # values: templates
    alert_id_field: str = "IiswatchAlertId"  # FreeformMultiple: idempotency key
    group_field: str = "IiswatchGroup"  # FreeformSingle: finds the open ticket of a group
    comment_when_open: bool = True  # the group fires again while its ticket is open
    subject: TemplateName | None = None  # default: the rule's alert.title
    body: TemplateName | None = None  # default: the rule's alert.body
    evidence_lines: int | None = Field(default=None, ge=0, le=200)  # default: evidence_lines
    timeout: Duration = timedelta(seconds=15)
    ca_certs: Path | None = None

    @model_validator(mode="after")
    def _auth(self) -> RequestTrackerDestination:
        if (self.token is None) == (self.user is None):
            raise ValueError("needs exactly one of `token` or `user` (+ `password`)")
        if self.user is not None and self.password is None:
            raise ValueError("`user` needs `password` (e.g. password = '${file:/path}')")
        return self


class BasicAuth(_Model):
    type: Literal["basic"]
    username: str
    password: SecretStr


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: SecretStr


class WebhookDestination(_Model):
    """An HTTP request whose body is a JSON template (`body`, e.g. `slack.json`)."""

    type: Literal["webhook"]
    url: SecretStr  # a Slack/Teams webhook URL is itself a secret: "${env:SLACK_URL}"
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    body: TemplateName
    headers: dict[str, SecretStr] = {}
    auth: Annotated[BasicAuth | BearerAuth, Field(discriminator="type")] | None = None
    vars: dict[str, str] = {}  # handed to the template as `vars` (Jira project key, ...)
    ticket_field: str | None = None  # dotted path of the ticket id in the response JSON
    evidence_lines: int | None = Field(default=None, ge=0, le=200)  # default: evidence_lines
    timeout: Duration = timedelta(seconds=15)
    ca_certs: Path | None = None

    @field_validator("headers")
    @classmethod
    def _no_framing_headers(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        bad = {"content-length", "host", "transfer-encoding"} & {k.lower() for k in v}
        if bad:
            raise ValueError(f"these headers are set by iiswatch: {', '.join(sorted(bad))}")
        return v


class CommandDestination(_Model):
    """A program run with the alert as JSON on stdin. Exit 0: delivered (the first line
    of stdout, if any, is recorded as the ticket reference); anything else is retried."""

    type: Literal["command"]
    argv: Annotated[list[str], Field(min_length=1)]
    timeout: Duration = timedelta(seconds=30)
    env: dict[str, SecretStr] = {}
    cwd: Path | None = None


Destination = Annotated[
    RequestTrackerDestination | WebhookDestination | CommandDestination,
    Field(discriminator="type"),
]


class AlertingConfig(_Model):
    kibana_url: HttpUrl | None = None
    # the data view Discover links open: by default the one `iiswatch kibana export` ships
    # (iiswatch.kibana.objects.LOGS_VIEW); None leaves it to Kibana
    kibana_data_view: str | None = "iiswatch-logs"
    templates_dir: Path | None = None  # your own *.j2, looked up before the shipped ones
    evidence_lines: int = Field(default=10, ge=0, le=200)
    delivery: DeliverySettings = DeliverySettings()
    destinations: dict[Name, Destination] = {}
    service: ServiceSettings = ServiceSettings()

    def destination(self, name: str) -> Destination:
        try:
            return self.destinations[name]
        except KeyError:
            known = ", ".join(sorted(self.destinations)) or "none configured"
            raise ConfigError(
                f"no destination named {name!r} (known: {known})",
                "add [destinations.NAME] to the alerting config, or fix the rule's "
                "alert.destinations",
            ) from None


def default_config_path() -> Path:
    return Path(env("IISWATCH_ALERTING_CONFIG") or user_config_dir() / "alerting.toml")


def parse_config(text: str, where: str = "<config>") -> AlertingConfig:
    """Validate TOML text; a ConfigError lists every problem as `where:line: a.b.c: message`."""
    return _validated(settings.TomlFile(text, where))


def load_config(path: Path | None = None) -> AlertingConfig:
    """The alerting config file (`path`, else the default), with its `[service]`."""
    path = path or default_config_path()
    hint = (
        "write one (README 'Alerting: scheduled rules, tickets in Request Tracker') "
        "or pass --config FILE"
    )
    return _validated(settings.TomlFile.read(path, what="alerting config", missing_hint=hint))


def _validated(file: settings.TomlFile) -> AlertingConfig:
    config = file.validate(
        AlertingConfig,
        file.data,
        "alerting config",
        "see README 'Alerting: scheduled rules, tickets in Request Tracker'",
    )
    service = config.service
    named = service.error_destinations + service.default_destinations
    extra = (service.deadman.destinations or []) + (service.incidents.destinations or [])
    for name in named + extra:
        config.destination(name)  # a ConfigError naming what is known
    return config
