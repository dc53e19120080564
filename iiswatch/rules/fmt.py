"""Canonical formatting of rule files (`rules fmt`): two-space indentation, sequences
indented under their key, test logs as literal blocks, comments, blank lines and key order
kept (ruamel attaches blank lines and comments to the key above them, so moving keys would
move them away from the key they describe). Idempotent: a second run changes nothing."""

from __future__ import annotations

import io
import uuid
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from iiswatch.rules.loader import yaml_rt


def format_text(text: str) -> str:
    y = yaml_rt()
    root = y.load(text)
    if isinstance(root, CommentedMap):
        _literal_logs(root)
    buf = io.StringIO()
    y.dump(root, buf)
    return buf.getvalue()


def _literal_logs(root: CommentedMap) -> None:
    tests = root.get("tests")
    if not isinstance(tests, CommentedSeq):
        return
    for case in tests:
        if isinstance(case, CommentedMap) and isinstance(case.get("log"), str):
            log = str(case["log"])
            if not isinstance(case["log"], LiteralScalarString):
                case["log"] = LiteralScalarString(log if log.endswith("\n") else log + "\n")


def scaffold(name: str, rule_type: str, lucene: str | None) -> str:
    """The text of a new, valid rule file with a test stub to fill in."""
    sections: dict[str, str] = {
        "match": "group_by: [source.ip]\n",
        "threshold": "group_by: [source.ip]\nthreshold:\n  value: 20\n",
        "cardinality": "group_by: [source.ip]\ncardinality:\n  field: url.path\n  value: 25\n",
        "new_terms": "new_terms:\n  fields: [url.path]\n  history: 30d\n",
        "sequence": (
            "sequence:\n"
            "  by: [source.ip]\n"
            "  max_span: 30m\n"
            "  steps:\n"
            "    - name: first\n"
            "      lucene: 'http.request.method:POST'\n"
            "    - name: then\n"
            "      lucene: 'http.request.method:GET'\n"
        ),
    }
    query = lucene or "iiswatch.url.query:*whoami*"
    query_line = "" if rule_type == "sequence" and not lucene else f"lucene: {_quote(query)}\n"
    return (
        f"id: {uuid.uuid4()}\n"
        f"name: {_quote(name)}\n"
        "description: >-\n"
        "  What this rule finds, and why it matters.\n"
        "author: you@example.org\n"
        "status: experimental\n"
        "severity: medium\n"
        "risk_score: 50\n"
        "tags: []\n"
        "mitre: []\n"
        "references: []\n"
        "false_positives:\n"
        "  - Who could trigger this legitimately, and how to tell.\n"
        "\n"
        "index: iis-access-*\n"
        "schedule:\n"
        "  interval: 5m\n"
        "  lookback: 1m\n"
        "\n"
        f"type: {rule_type}\n"
        f"{query_line}"
        f"{sections[rule_type]}"
        "\n"
        "suppression:\n"
        f"  group_by: [{'url.path' if rule_type == 'new_terms' else 'source.ip'}]\n"
        "  duration: 1h\n"
        "\n"
        "tests:\n"
        "  # replace with log lines the rule must catch (match: true) and must not (false)\n"
        "  - name: an attack it must catch\n"
        "    match: true\n"
        "    log: |\n"
        "      2026-11-25 12:19:23 10.0.0.5 GET /uploads/x.aspx cmd=whoami 443 - 203.0.113.9 "
        "Mozilla/5.0 - 200 0 0 15\n"
        "  - name: benign traffic it must leave alone\n"
        "    match: false\n"
        "    log: |\n"
        "      2026-11-25 12:19:23 10.0.0.5 GET /index.aspx - 443 - 198.51.100.7 "
        "Mozilla/5.0 - 200 0 0 15\n"
    )


def _quote(text: Any) -> str:
    return "'" + str(text).replace("'", "''") + "'"
