"""Incident messages render through the shipped templates: the ticket's own text, and every
shipped JSON body (a webhook destination gets incidents too)."""

from __future__ import annotations

import pytest

from iiswatch.alerting.incident_delivery import comment_message, open_message
from iiswatch.alerting.risk import IncidentPolicy, finding_from_alert, summary
from iiswatch.alerting.templates import SHIPPED_JSON, Templates
from tests.unit.test_risk import alert

KIBANA = "https://kibana.example.org:5601"


def _incident() -> tuple[dict[str, object], dict[str, object]]:
    first = finding_from_alert(alert("sqli", 73, 0, n=1))
    later = finding_from_alert(alert("webshell", 90, 5, severity="critical", n=2))
    doc = {
        "incident_id": "0123456789abcdef",
        "state": "open",
        "opened_by": "risk 163 reached the threshold 100",
        "findings": [first, later],
        **summary([first, later], IncidentPolicy(), "203.0.113.9"),
    }
    return doc, later


@pytest.mark.parametrize("name", SHIPPED_JSON)
def test_every_shipped_json_body_renders_an_incident_and_its_comments(name: str) -> None:
    doc, later = _incident()
    t = Templates(kibana_url=KIBANA)
    for message in (open_message(doc, KIBANA), comment_message(doc, later, kibana_url=KIBANA)):
        title, text = t.render_message(message)
        vars_ = {"project": "SEC", "project_key": "SEC", "issue_type": "Task"}
        assert t.render_json(name, message, title=title, text=text, vars=vars_)


def test_evidence_lines_are_capped_per_destination() -> None:
    doc, _ = _incident()
    t = Templates(kibana_url=KIBANA, evidence_lines=10)
    message = open_message(doc, KIBANA)
    assert message["samples"]  # the findings' sample lines
    _, full = t.render_message(message)
    _, capped = t.render_message(message, evidence_lines=1)
    assert "the first 2 log lines" in full
    assert "the first 1 log lines" in capped


def test_the_discover_link_of_an_incident_shows_the_entity_not_the_message_group() -> None:
    doc, _ = _incident()
    message = open_message(doc, KIBANA)
    link = Templates(kibana_url=KIBANA).context(message)["discover_url"]
    assert "source.ip" in link and "incident" not in link.split("_a=")[1]


def test_the_ticket_offers_respond_dry_runs_for_the_address_and_the_web_shell_paths() -> None:
    doc, later = _incident()
    # the web-shell finding opened the incident at once; its sample hit the shell's path
    later["opens_at_once"] = True
    later["samples"] = [{"url": {"path": "/uploads/sh ell.aspx"}}]
    _, text = Templates(kibana_url=KIBANA).render_message(open_message(doc, KIBANA))
    commands = [line.strip() for line in text.splitlines() if "iiswatch respond" in line]
    assert commands == [
        "iiswatch respond block-ip 0123456789abcdef --for 24h --reason 'incident 0123456789abcdef'",
        "iiswatch respond quarantine 0123456789abcdef --path '/uploads/sh ell.aspx' "
        "--reason 'incident 0123456789abcdef'",
    ]
    # the paths of findings that do not open incidents at once (a page probed) are not offered
    later["opens_at_once"] = False
    _, text = Templates(kibana_url=KIBANA).render_message(open_message(doc, KIBANA))
    assert "quarantine" not in text and "respond block-ip" in text
