"""Attack 7: markup in tickets. Before, log text reached Jira wiki, Markdown (TheHive, Teams)
and Slack bodies raw: a link, an image, a closing code fence all rendered; a lone CR forged a
`Severity:` line in the plain-text body; nothing capped a Jira description."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from iiswatch.alerting.templates import Templates, sample_alert

CR_FORGERY = "GET /a.aspx\rSeverity:      low (risk score 1)"
LINK = "[Reset your password](https://evil.example/x)"
IMAGE = "![x](https://evil.example/pixel.png)"
FENCE = "```\n</pre> ``` {noformat} <!channel>"


def hostile(extra_lines: int = 0) -> dict[str, Any]:
    alert = copy.deepcopy(sample_alert(suffix="hostile"))
    originals = [CR_FORGERY, LINK, IMAGE, FENCE] + ["A" * 1000] * extra_lines
    base = alert["samples"][0]
    alert["samples"] = [{**copy.deepcopy(base), "event": {"original": line}} for line in originals]
    alert["event_count"] = len(originals)
    alert["group"] = {"user_agent.original": "Mozilla\r\nSeverity: low"}
    return alert


@pytest.fixture
def templates() -> Templates:
    return Templates(evidence_lines=100)


def test_a_lone_cr_cannot_forge_a_line_in_the_plain_text_body(templates: Templates) -> None:
    _, body = templates.render_message(hostile())
    lines = re.split(r"\r\n|\r|\n", body)
    assert [x for x in lines if x.startswith("Severity:")] == [lines[2]]
    assert "\\r" in body


def test_jira_wiki_description_renders_log_text_literally(templates: Templates) -> None:
    payload = templates.render_json(
        "jira-v2.json", hostile(), **_message(templates), vars={"project": "SEC"}
    )
    desc = payload["fields"]["description"]
    assert desc.startswith("{noformat}\n") and desc.endswith("\n{noformat}")
    inner = desc[len("{noformat}\n") : -len("\n{noformat}")]
    assert "{noformat}" not in inner  # a log line cannot end the literal block


def test_jira_description_is_capped_to_what_jira_takes(templates: Templates) -> None:
    alert = hostile(extra_lines=100)
    payload = templates.render_json(
        "jira-v2.json", alert, **_message(templates, alert), vars={"project": "SEC"}
    )
    assert len(payload["fields"]["description"]) <= 32_767
    assert "more characters" in payload["fields"]["description"]


def test_thehive_markdown_description_cannot_be_broken_out_of(templates: Templates) -> None:
    payload = templates.render_json("thehive.json", hostile(), **_message(templates))
    desc = payload["description"]
    fence = re.match(r"`{3,}", desc)
    assert fence is not None
    closing = desc.rstrip().rsplit("\n", 1)[1]
    assert closing == fence.group()
    assert fence.group() + "\n" not in desc[fence.end() : -len(closing)]  # never closed early


def test_teams_markdown_shows_links_and_images_as_text(templates: Templates) -> None:
    payload = templates.render_json("teams.json", hostile(), **_message(templates))
    body = payload["attachments"][0]["content"]["body"]
    evidence = body[-1]["text"]
    assert "](" not in evidence.replace("\\](", "").replace("\\]\\(", "")
    assert "\\[Reset your password\\]\\(https://evil\\.example/x\\)" in evidence
    assert "\\!\\[x\\]" in evidence


def test_slack_evidence_block_cannot_be_closed_and_mentions_stay_text(
    templates: Templates,
) -> None:
    payload = templates.render_json("slack.json", hostile(), **_message(templates))
    section = next(b for b in payload["blocks"] if b["type"] == "section" and "text" in b)
    text = section["text"]["text"]
    assert text.startswith("```") and text.endswith("```")
    assert "```" not in text[3:-3]
    assert "<!channel>" not in text


def _message(templates: Templates, alert: dict[str, Any] | None = None) -> dict[str, str]:
    title, text = templates.render_message(alert or hostile())
    return {"title": title, "text": text}
