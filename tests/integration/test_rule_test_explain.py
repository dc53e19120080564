"""A rule test that expected a match and got none says which clause did not match and the
values its events had (before: only `expected match: True, got 0 alert(s)`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from iiswatch.rules.fmt import scaffold
from iiswatch.rules.loader import load_rules
from iiswatch.rules.testing import run_rule_tests

pytestmark = pytest.mark.integration

LINE = (
    "2026-11-25 12:19:23 10.0.0.5 GET /uploads/x.php cmd=whoami 443 - 203.0.113.9 "
    "Mozilla/5.0 - 200 0 0 15"
)


def _rule(tmp_path: Path, lucene: str, extra: str = "") -> Path:
    text = scaffold("Explained miss", "match", lucene)
    # one test: this line must match
    head = text[: text.index("tests:")]
    body = f"tests:\n  - name: must catch\n    match: true\n    log: |\n      {LINE}\n"
    (tmp_path / "r.yaml").write_text(head + extra + body)
    return tmp_path


def test_the_clause_that_did_not_match_and_the_values_seen(
    tmp_path: Path, admin_es: Elasticsearch
) -> None:
    root = _rule(tmp_path, "url.extension:aspx AND iiswatch.url.query:*whoami*")
    (lr,) = load_rules(root)
    (res,) = run_rule_tests(admin_es, lr)
    assert not res.passed
    text = res.describe()
    assert "clause `url.extension:aspx` matched none of the 1 event(s)" in text, text
    assert "url.extension was: php" in text


def test_a_threshold_not_reached_is_named(tmp_path: Path, admin_es: Elasticsearch) -> None:
    text = scaffold("Explained threshold", "threshold", "iiswatch.url.query:*whoami*")
    head = text[: text.index("tests:")]
    body = f"tests:\n  - name: must catch\n    match: true\n    log: |\n      {LINE}\n"
    (tmp_path / "r.yaml").write_text(head + body)
    (lr,) = load_rules(tmp_path)
    (res,) = run_rule_tests(admin_es, lr)
    assert "the query matched 1 event(s); threshold.value is 20" in res.describe()
