"""Templates: log content is data, never evaluated; JSON payloads are built only through
`tojson` and always parse; the shipped templates carry what each product requires and
what on-call needs (rule, severity, MITRE, counts, IPs, evidence, a Discover link)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import prison
import pytest

from iiswatch.alerting.templates import (
    SHIPPED_JSON,
    TemplateProblem,
    Templates,
    discover_url,
    first_lines,
    group_query,
    group_ref,
    sample_alert,
)

INJECTIONS = [
    "{{7*7}}",
    "{% raw %}{% for x in range(3) %}{{ x }}{% endfor %}{% endraw %}",
    "{{ config.__class__.__init__.__globals__ }}",
    '"}, "injected": true, "x": {"',
    "<!channel> &amp; ```",
]
LINE = (
    "2026-11-25 12:20:02 10.0.0.5 GET /uploads/x7k2q.aspx "
    "cmd={{7*7}}&q={% raw %}{% for x in range(3) %}{{ x }}{% endfor %}{% endraw %}"
    '&p={{ config.__class__.__init__.__globals__ }}&j="}, "injected": true, "x": {"'
    "&s=<!channel> &amp; ``` 443 - 203.0.113.9 Mozilla/5.0 - 200 0 0 15"
)


def hostile_alert() -> dict[str, Any]:
    alert = sample_alert()
    alert["samples"][0]["event"]["original"] = LINE
    alert["group"] = {"url.original": '/uploads/x.aspx?cmd={{7*7}}"'}
    return alert


@pytest.fixture
def templates() -> Templates:
    return Templates(kibana_url="https://kibana.example.org:5601", data_view="iis-access")


def all_strings(value: Any) -> str:
    if isinstance(value, dict):
        return "\n".join(all_strings(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(all_strings(v) for v in value)
    return str(value)


def test_log_content_shows_up_literally_in_subject_and_body(templates: Templates) -> None:
    subject, body = templates.render_message(hostile_alert())
    assert LINE in body
    for s in INJECTIONS:
        assert s in body
    # {{7*7}} was not evaluated anywhere (the body's timestamps may well contain "49")
    assert "cmd=49" not in body and "cmd=49" not in subject
    assert "{{7*7}}" in subject and "\n" not in subject


@pytest.mark.parametrize("name", SHIPPED_JSON)
def test_log_content_shows_up_literally_in_every_json_template(
    templates: Templates, name: str
) -> None:
    alert = hostile_alert()
    subject, body = templates.render_message(alert)
    payload = templates.render_json(name, alert, title=subject, text=body, vars={"project": "SEC"})
    assert "injected" not in payload and "x" not in payload  # no key came from the log
    text = all_strings(payload)
    for s in ("{{7*7}}", "{% raw %}", '"injected": true'):
        unescaped = re.sub(r"\\(.)", r"\1", text)  # Markdown (Teams) escapes punctuation
        assert s in text or s in text.replace("&lt;", "<") or s in unescaped


def test_a_json_template_must_pass_values_through_tojson(tmp_path: Path) -> None:
    (tmp_path / "bad.json.j2").write_text('{"title": "{{ alert.rule.name }}"}')
    t = Templates(tmp_path)
    with pytest.raises(TemplateProblem, match="without \\|tojson"):
        t.render_json("bad.json", sample_alert())


def test_a_json_template_must_produce_json(tmp_path: Path) -> None:
    (tmp_path / "broken.json.j2").write_text('{"title": {{ alert.rule.name | tojson }},}')
    with pytest.raises(TemplateProblem, match="did not produce JSON"):
        Templates(tmp_path).render_json("broken.json", sample_alert())


def test_an_undefined_name_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    (tmp_path / "typo.j2").write_text("{{ alert.severty }}")
    with pytest.raises(TemplateProblem, match="severty"):
        Templates(tmp_path).render_text("typo", sample_alert())


def test_templates_run_in_a_sandbox(tmp_path: Path) -> None:
    (tmp_path / "escape.j2").write_text("{{ alert.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateProblem, match=r"unsafe|not safely|__class__"):
        Templates(tmp_path).render_text("escape", sample_alert())


def test_own_templates_are_found_before_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "default-title.j2").write_text("OWN {{ alert.severity }}")
    subject, _ = Templates(tmp_path).render_message(sample_alert())
    assert subject == "OWN critical"


def test_the_default_ticket_has_what_on_call_needs(templates: Templates) -> None:
    alert = sample_alert()
    subject, body = templates.render_message(alert)
    assert subject.startswith("[iiswatch] CRITICAL: Web shell command execution parameters")
    assert "source.ip=203.0.113.9" in subject
    for needle in (
        "Web shell command execution parameters",
        "critical (risk score 90)",
        "TA0002 / T1059.003",
        "TA0003 / T1505.003",
        "Events:        2",
        "Source IPs:    203.0.113.9",
        "cmd=Cmd.ExE+/c+whoami",
        "https://kibana.example.org:5601/app/discover#/",
        alert["alert_id"],
    ):
        assert needle in body, needle


def test_the_discover_link_has_the_time_range_query_and_group(templates: Templates) -> None:
    alert = sample_alert()
    url = discover_url("https://kibana.example.org/", alert, "iis-access")
    assert url is not None and url.startswith("https://kibana.example.org/app/discover#/?_g=")
    params = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    g = prison.loads(unquote(params["_g"]))
    a = prison.loads(unquote(params["_a"]))
    assert g["time"]["from"] < alert["window"]["start"]
    assert g["time"]["to"] > alert["window"]["end"]
    assert a["query"]["language"] == "lucene"
    assert a["query"]["query"].startswith("(url.extension:aspx AND")
    assert a["query"]["query"].endswith('source.ip:"203.0.113.9"')
    assert a["dataSource"] == {"type": "dataView", "dataViewId": "iis-access"}


def test_a_query_dsl_rule_becomes_a_custom_filter_in_the_link() -> None:
    alert = sample_alert()
    del alert["rule"]["lucene"]
    alert["rule"]["query"] = {"term": {"url.extension": "aspx"}}
    url = discover_url("https://k.example", alert)
    assert url is not None
    a = prison.loads(unquote(url.split("&_a=", 1)[1]))
    assert a["filters"][0]["query"] == {"term": {"url.extension": "aspx"}}
    assert a["query"]["query"] == 'source.ip:"203.0.113.9"'


def test_group_values_are_quoted_as_lucene_phrases() -> None:
    q = group_query({"url.original": 'a"b\\c OR *:*', "source.ip": "1.2.3.4"})
    assert q == 'source.ip:"1.2.3.4" AND url.original:"a\\"b\\\\c OR *:*"'


def test_no_kibana_url_means_no_link(templates: Templates) -> None:
    assert discover_url(None, sample_alert()) is None
    _, body = Templates().render_message(sample_alert())
    assert "Kibana" not in body


def test_first_lines_takes_the_raw_lines_and_falls_back_to_fields() -> None:
    samples = [
        {"event": {"original": "line 1\x1b[31m"}},
        {"@timestamp": "t", "source": {"ip": "1.2.3.4"}, "url": {"original": "/x"}},
        {"event": {"original": "line 3"}},
    ]
    assert first_lines(samples, 2) == ["line 1?[31m", "t 1.2.3.4 /x"]
    assert first_lines("a\nb\nc", 2) == ["a", "b"]


def test_the_group_ref_is_the_same_for_every_window_of_a_group() -> None:
    a = sample_alert()
    b = copy.deepcopy(a)
    b["alert_id"], b["window"]["start"] = "other", "2020-01-01T00:00:00.000Z"
    assert group_ref(a) == group_ref(b)
    b["group"] = {"source.ip": "198.51.100.7"}
    assert group_ref(a) != group_ref(b)


REQUIRED = {
    "jira-v2.json": lambda p: (
        p["fields"]["project"]["key"] == "SEC"
        and p["fields"]["issuetype"]["name"] == "Task"
        and p["fields"]["summary"]
        and isinstance(p["fields"]["description"], str)
    ),
    "jira-v3.json": lambda p: (
        p["fields"]["project"]["key"] == "SEC"
        and p["fields"]["description"]["type"] == "doc"
        and p["fields"]["description"]["version"] == 1
        and all(
            n["text"] for block in p["fields"]["description"]["content"] for n in block["content"]
        )
    ),
    "servicenow.json": lambda p: (
        p["short_description"] and p["description"] and p["urgency"] == "1" and p["impact"] == "1"
    ),
    "thehive.json": lambda p: (
        {"type", "source", "sourceRef", "title", "description"} <= set(p)
        and p["severity"] == 4
        and isinstance(p["date"], int)
        and {"dataType": "ip", "data": "203.0.113.9"}.items() <= p["observables"][0].items()
    ),
    "slack.json": lambda p: (
        p["text"]
        and p["blocks"][0]["type"] == "header"
        and len(p["blocks"][0]["text"]["text"]) <= 150
        and all(len(b.get("text", {}).get("text", "")) <= 3000 for b in p["blocks"])
    ),
    "teams.json": lambda p: (
        p["type"] == "message"
        and p["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        and p["attachments"][0]["content"]["type"] == "AdaptiveCard"
        and p["attachments"][0]["content"]["body"]
    ),
}


@pytest.mark.parametrize("name", SHIPPED_JSON)
def test_each_shipped_payload_has_the_products_required_fields(
    templates: Templates, name: str
) -> None:
    alert = sample_alert()
    subject, body = templates.render_message(alert)
    payload = templates.render_json(name, alert, title=subject, text=body, vars={"project": "SEC"})
    assert REQUIRED[name](payload)


def test_jira_needs_its_project_key(templates: Templates) -> None:
    alert = sample_alert()
    with pytest.raises(TemplateProblem, match="project"):
        templates.render_json("jira-v2.json", alert, title="t", text="b", vars={})
