"""Alerts rendered into ticket text and webhook JSON with Jinja2, safely.

Templates are trusted (the shipped ones under `templates/`, or the operator's
`templates_dir`); alerts are not: samples, URLs and user agents come from attackers. Jinja
never evaluates the values it prints, so `{{7*7}}` in a logged URL stays `{{7*7}}`; the
environment is sandboxed and undefined names are errors. A JSON template (`*.json.j2`)
must pass every printed value through `|tojson` — the environment refuses anything else at
render time — and its output must parse as JSON, so a quote or a brace in log data can
never change the payload's structure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import prison  # Rison, the URL encoding of Kibana's app state (_g, _a)
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    Undefined,
)
from jinja2.sandbox import SandboxedEnvironment

from iiswatch.errors import ConfigError
from iiswatch.fields import get_field
from iiswatch.rules.alert import group_key
from iiswatch.times import iso, time_or_none

SHIPPED_TEXT = (
    "default-title",
    "default-body",
    "incident-title",
    "incident-body",
    "incident-comment-title",
    "incident-comment",
)
SHIPPED_JSON = (
    "jira-v2.json",
    "jira-v3.json",
    "servicenow.json",
    "thehive.json",
    "slack.json",
    "teams.json",
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACE = re.compile(r"\s+")
_BREAKS = {"\r": "\\r", "\n": "\\n", "\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\x85"}
_BREAK = re.compile("|".join(map(re.escape, _BREAKS)))
_BACKTICKS = re.compile(r"`+")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")

# The longest description each markup target takes (Jira: 32,767 characters, less room for
# the wrapping and the truncation note).
JIRA_DESCRIPTION_MAX = 32_000


class TemplateProblem(ConfigError):
    """A template is missing, does not compile, uses an undefined name, or (JSON) does not
    produce JSON. A permanent delivery problem: fix the template, then `alerts retry`."""


class JsonText(str):
    """Text that `tojson` produced: the only thing a JSON template may print."""

    __slots__ = ()


def tojson(value: Any) -> JsonText:
    """A JSON value for a JSON template (plain JSON, not HTML-escaped like Jinja's own)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # raises: say which name is missing
    return JsonText(orjson.dumps(value, default=str).decode())


def _json_finalize(value: Any) -> Any:
    if isinstance(value, JsonText):
        return value
    raise TemplateError(
        f"a JSON template printed a {type(value).__name__} without |tojson; "
        "write {{ value | tojson }} so log data can never change the payload's structure"
    )


def one_line(value: Any, limit: int = 200) -> str:
    """Control characters and line breaks out (subjects, headers), cut to `limit`."""
    text = _SPACE.sub(" ", _CONTROL.sub(" ", str(value))).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flat(value: Any) -> str:
    """A value printed where one line is expected: CR, LF and other line breaks shown as
    `\\r`, `\\n`, so a lone CR in a log cannot start a forged `Severity:` line."""
    return _BREAK.sub(lambda m: _BREAKS[m.group()], str(value))


def cap(value: Any, limit: int) -> str:
    """`value` cut to `limit` characters, saying how much was left out."""
    text = str(value)
    if len(text) <= limit:
        return text
    note = f"\n… ({len(text) - limit:,} more characters: see the alert in iiswatch)"
    return text[: max(0, limit - len(note))] + note


def jira_text(value: Any, limit: int = JIRA_DESCRIPTION_MAX) -> str:
    """Plain text as a Jira wiki-markup description that renders exactly as written: one
    {noformat} block (no links, images, macros or mentions inside), capped for Jira."""
    body = cap(value, limit).replace("{noformat}", "{ noformat}")
    return "{noformat}\n" + body + "\n{noformat}"


def markdown_block(value: Any, limit: int = 100_000) -> str:
    """Plain text as a Markdown fenced code block (TheHive, Teams): the fence is longer than
    any run of backticks inside, so nothing in the log can close it (CommonMark 4.5)."""
    body = cap(value, limit)
    longest = max((len(m) for m in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def markdown(value: Any) -> str:
    """Inline Markdown: every punctuation character that could start markup (links, images,
    emphasis, HTML) backslash-escaped, on one line."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat(value))


def first_lines(value: Any, n: int = 10) -> list[str]:
    """The first `n` raw log lines (`event.original`) of a list of sample events, or the
    first `n` lines of a text."""
    if isinstance(value, str):
        return value.splitlines()[:n]
    lines: list[str] = []
    for doc in value or []:
        raw = get_field(doc, "event.original")
        if raw is None:  # a sample without its raw line: show what identifies the request
            raw = " ".join(
                str(v)
                for v in (
                    get_field(doc, "@timestamp"),
                    get_field(doc, "source.ip"),
                    get_field(doc, "http.request.method"),
                    get_field(doc, "url.original"),
                    get_field(doc, "http.response.status_code"),
                )
                if v is not None
            )
        lines.append(flat(_CONTROL.sub("?", str(raw))))
        if len(lines) >= n:
            break
    return lines


def epoch_ms(value: Any) -> int | None:
    """An ISO 8601 time as milliseconds since the epoch (TheHive's `date`)."""
    t = time_or_none(value)
    return None if t is None else int(t.timestamp() * 1000)


def mrkdwn(value: Any) -> str:
    """Slack's three control characters escaped, so `<!channel>` in a log is only text; and
    no run of three backticks, so a log line cannot close the evidence's code block."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("```", "`\u200b`\u200b`")


def lucene_phrase(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def group_query(group: Mapping[str, Any]) -> str:
    """The alert's group as a Lucene clause: field:"value" AND ..."""
    parts = []
    for field, value in sorted(group.items()):
        if isinstance(value, list):
            parts.append("(" + " OR ".join(f"{field}:{lucene_phrase(v)}" for v in value) + ")")
        elif value is not None:
            parts.append(f"{field}:{lucene_phrase(value)}")
    return " AND ".join(parts)


def discover_url(
    kibana_url: str | None, alert: Mapping[str, Any], data_view: str | None = None
) -> str | None:
    """A Kibana Discover link showing the alert's events: their @timestamp range (one
    minute either side), the rule's query and the alert's group."""
    if not kibana_url:
        return None
    rule = alert.get("rule") or {}
    window = alert.get("window") or {}
    # the events' own @timestamp range: the window is on ingest time, and a late line or a
    # back-filled file has events far from it
    times = [
        t
        for t in (time_or_none(alert.get("first_event")), time_or_none(alert.get("last_event")))
        if t is not None
    ] or [
        t
        for t in (time_or_none(window.get("start")), time_or_none(window.get("end")))
        if t is not None
    ]
    margin = timedelta(minutes=1)
    g: dict[str, Any] = {}
    if times:
        g["time"] = {"from": iso(min(times) - margin), "to": iso(max(times) + margin)}
    clauses = []
    if rule.get("lucene"):
        clauses.append(f"({rule['lucene']})")
    if grp := group_query(alert.get("group") or {}):
        clauses.append(grp)
    a: dict[str, Any] = {
        "query": {"language": "lucene", "query": " AND ".join(clauses)},
        "filters": [],
    }
    if isinstance(rule.get("query"), Mapping):  # a query-DSL rule: a custom filter
        a["filters"].append(
            {
                "meta": {
                    "alias": f"rule: {rule.get('name', '')}",
                    "disabled": False,
                    "negate": False,
                    "type": "custom",
                    "key": "query",
                    "value": orjson.dumps(rule["query"]).decode(),
                },
                "query": rule["query"],
            }
        )
    if data_view:
        a["dataSource"] = {"type": "dataView", "dataViewId": data_view}
    safe = "():,!'*-._~/@$"
    return (
        f"{kibana_url.rstrip('/')}/app/discover#/"
        f"?_g={quote(prison.dumps(g), safe=safe)}&_a={quote(prison.dumps(a), safe=safe)}"
    )


def group_ref(alert: Mapping[str, Any]) -> str:
    """A short, TicketSQL-safe identity of the alert's rule and group (not its window):
    alerts of one group share it, so a new one can find the group's open ticket."""
    rule_id = str((alert.get("rule") or {}).get("id", ""))
    text = orjson.dumps([rule_id, group_key(alert.get("group") or {})])
    return hashlib.blake2b(text, digest_size=16).hexdigest()


class Templates:
    """Shipped templates plus the operator's own, and how an alert becomes their context."""

    def __init__(
        self,
        templates_dir: Path | None = None,
        *,
        kibana_url: str | None = None,
        data_view: str | None = None,
        evidence_lines: int = 10,
    ) -> None:
        loaders: list[BaseLoader] = []
        if templates_dir is not None:
            loaders.append(FileSystemLoader(str(templates_dir)))
        loaders.append(PackageLoader("iiswatch.alerting", "templates"))
        loader = ChoiceLoader(loaders)
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": StrictUndefined,
            "autoescape": False,
            "keep_trailing_newline": True,
            "trim_blocks": True,
            "lstrip_blocks": True,
        }
        # text templates lay out lines themselves: a printed value never adds one (`flat`)
        self.text_env = SandboxedEnvironment(**common, finalize=flat)
        self.json_env = SandboxedEnvironment(**common, finalize=_json_finalize)
        for env in (self.text_env, self.json_env):
            env.filters.update(
                tojson=tojson,
                first_lines=first_lines,
                field=get_field,
                one_line=one_line,
                mrkdwn=mrkdwn,
                epoch_ms=epoch_ms,
                flat=flat,
                cap=cap,
                jira_text=jira_text,
                markdown=markdown,
                markdown_block=markdown_block,
            )
            env.globals.update(kibana_discover_url=self._discover)
        self.kibana_url = kibana_url
        self.data_view = data_view
        self.evidence_lines = evidence_lines

    @classmethod
    def from_config(cls, config: Any) -> Templates:
        return cls(
            config.templates_dir,
            kibana_url=config.kibana_url,
            data_view=config.kibana_data_view,
            evidence_lines=config.evidence_lines,
        )

    def _discover(self, alert: Mapping[str, Any]) -> str | None:
        incident = alert.get("incident")
        if isinstance(incident, Mapping):  # the entity's events, not the message's group
            return incident.get("discover_url")
        return discover_url(self.kibana_url, alert, self.data_view)

    def context(self, alert: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        """`evidence_lines` in `extra`: the destination's own cap on evidence lines."""
        cap = extra.pop("evidence_lines", None)
        ctx: dict[str, Any] = {
            "alert": alert,
            "rule": alert.get("rule") or {},
            "evidence": first_lines(
                alert.get("samples") or [], self.evidence_lines if cap is None else cap
            ),
            "discover_url": self._discover(alert),
            "kibana_url": self.kibana_url,
            "group_ref": group_ref(alert),
            "now": datetime.now(UTC),
            "vars": {},
        }
        ctx.update(extra)
        return ctx

    def render_text(self, name: str, alert: Mapping[str, Any], **extra: Any) -> str:
        return self._render(self.text_env, name, alert, extra)

    def render_inline(self, source: str, alert: Mapping[str, Any], **extra: Any) -> str:
        """A template written in the config (a custom field value)."""
        try:
            tpl = self.text_env.from_string(source)
            return tpl.render(self.context(alert, **extra))
        except TemplateError as e:
            raise TemplateProblem(
                f"template {source!r}: {e}", "fix it in the alerting config"
            ) from e

    def render_json(self, name: str, alert: Mapping[str, Any], **extra: Any) -> Any:
        """The parsed JSON a `*.json` template produced."""
        text = self._render(self.json_env, name, alert, extra)
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise TemplateProblem(
                f"template {name} did not produce JSON: {e}",
                "check its commas and brackets; `iiswatch alerts render --sample "
                "--destination NAME` shows the output",
            ) from e

    def render_message(
        self,
        alert: Mapping[str, Any],
        title: str | None = None,
        body: str | None = None,
        **extra: Any,
    ) -> tuple[str, str]:
        """Subject (one line) and body text, from the given template names or the ones the
        alert names (its rule's alert.title / alert.body). An incident message always uses
        its own templates (they tell the incident's story, not one rule's)."""
        names = alert.get("templates") or {}
        if alert.get("incident"):
            title = body = None
        subject = one_line(
            self.render_text(title or names.get("title") or "default-title", alert, **extra), 250
        )
        text = self.render_text(body or names.get("body") or "default-body", alert, **extra)
        return subject, text

    def _render(self, env: SandboxedEnvironment, name: str, alert: Any, extra: Any) -> str:
        try:
            return env.get_template(f"{name}.j2").render(self.context(alert, **extra))
        except (TemplateError, TypeError, ValueError) as e:
            where = f"template {name}"
            if lineno := getattr(e, "lineno", None):
                where += f" line {lineno}"
            raise TemplateProblem(
                f"{where}: {getattr(e, 'message', None) or e}",
                "fix the template; `iiswatch alerts render --sample --destination NAME` "
                "shows what it produces",
            ) from e


def sample_alert(now: datetime | None = None, *, suffix: str = "sample") -> dict[str, Any]:
    """A realistic alert (the incident's web shell) for `alerts render --sample` and
    `alerts test-destination`."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=1)
    lines = [
        "2026-11-25 12:19:23 10.0.0.5 GET /uploads/x7k2q.aspx cmd=Cmd.ExE+/c+whoami 443 - "
        "203.0.113.9 Mozilla/5.0 - 200 0 0 15",
        "2026-11-25 12:19:41 10.0.0.5 GET /uploads/x7k2q.aspx cmd=cmd.exe+/c+ipconfig+/all "
        "443 - 203.0.113.9 Mozilla/5.0 - 200 0 0 31",
    ]
    samples: list[dict[str, Any]] = [
        {
            "@timestamp": iso(start + timedelta(seconds=10 + i)),
            "event": {"original": line},
            "source": {"ip": "203.0.113.9"},
            "url": {"original": line.split(" ")[4] + "?" + line.split(" ")[5]},
            "http": {"request": {"method": "GET"}, "response": {"status_code": 200}},
        }
        for i, line in enumerate(lines)
    ]
    return {
        "alert_id": f"iiswatch-{suffix}",
        "rule": {
            "id": "b48343f6-dc99-427c-842d-de56f95dc38a",
            "name": "Web shell command execution parameters",
            "type": "match",
            "lucene": "url.extension:aspx AND iiswatch.url.path:\\/uploads\\/*",
            "index": "iis-access-*",
        },
        "severity": "critical",
        "risk_score": 90,
        "mitre": [
            {"tactic": "TA0002", "technique": "T1059.003"},
            {"tactic": "TA0003", "technique": "T1505.003"},
        ],
        "tags": ["attack.execution", "webshell"],
        "group": {"source.ip": "203.0.113.9"},
        "source": {"ip": ["203.0.113.9"]},
        "first_event": samples[0]["@timestamp"],
        "last_event": samples[-1]["@timestamp"],
        "event_count": len(samples),
        "samples": samples,
        "window": {"start": iso(start), "end": iso(now), "time_field": "event.ingested"},
        "details": {},
        "templates": {"title": "default-title", "body": "default-body"},
    }
