"""Padding a query past the keyword limit (8191 characters, `ignore_above`) used to leave the
URL fields unindexed, so the critical web-shell rule never saw `cmd=Cmd.ExE+/c+whoami`. Long
values are now indexed as overlapping windows; the pack's own rule must still match."""

from __future__ import annotations

import dataclasses

import pytest
from elasticsearch import Elasticsearch

from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.rules.loader import default_rules_dir, scan_rules
from iiswatch.rules.testing import run_rule_tests

WEB_SHELL = "command_execution_parameters.yaml"
LINE = (
    "2026-11-25 12:19:23 10.0.1.20 GET /uploads/x7k2q.aspx {query} 443 - 203.0.113.9 "
    "Mozilla/5.0 - 200 0 0 15\n"
)


@pytest.mark.parametrize(
    "query",
    [
        "pad=" + "A" * 9000 + "&cmd=Cmd.ExE+/c+whoami",  # the command after the padding
        "cmd=Cmd.ExE+/c+whoami&pad=" + "A" * 9000,  # before it
        "pad=" + "A" * 5000 + "&cmd=Cmd.ExE+/c+whoami&more=" + "B" * 5000,  # in the middle
        "pad=" + "%41" * 9000 + "&cmd=%43md.exe%20%2Fc%20dir",  # encoded padding and command
    ],
    ids=["after", "before", "middle", "encoded"],
)
def test_the_web_shell_rule_sees_a_command_behind_padding(
    admin_es: Elasticsearch, query: str
) -> None:
    (loaded,) = [r for r in scan_rules(default_rules_dir())[0] if r.path.name == WEB_SHELL]
    case = type(loaded.rule.tests[0]).model_validate(
        {"name": "padded", "match": True, "log": LINE.format(query=query)}
    )
    padded = dataclasses.replace(loaded, rule=loaded.rule.model_copy(update={"tests": [case]}))
    (result,) = run_rule_tests(client_for(Purpose.ALERTING), padded)
    assert result.passed, result.describe()
