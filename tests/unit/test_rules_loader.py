"""The loader reports every problem of every file with its line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from iiswatch.errors import RuleError
from iiswatch.rules.fmt import format_text, scaffold
from iiswatch.rules.loader import (
    expired_exception_warnings,
    load_rules,
    parse_rule,
    scan_rules,
    select,
)

GOOD = textwrap.dedent(
    """\
    # the incident's web shell
    id: 3f0c6a52-8d0e-4d8e-9a51-2f1c4b7e9d10   # UUID
    name: Web shell command execution
    description: >-
      A script under an upload folder receives command-interpreter parameters.
    author: iiswatch
    status: stable
    severity: critical
    risk_score: 95
    type: match
    lucene: 'iiswatch.url.query:*whoami*'
    group_by: [source.ip]
    exceptions:
      - field: source.ip
        cidrs: [10.20.0.0/16]
        owner: soc@example.org
        reason: internal vulnerability scanner
        expires: 2020-06-30
    tests:
      - name: the incident's whoami
        match: true
        log: |
          2026-11-25 12:19:23 10.0.0.5 GET /up/x.aspx cmd=whoami 443 - 203.0.113.9 UA - 200 0 0 1
    """
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_good_file_loads(tmp_path: Path) -> None:
    loaded, problems = parse_rule(GOOD, tmp_path / "good.yaml")
    assert problems == []
    assert loaded is not None
    assert loaded.rule.name == "Web shell command execution"


def test_every_problem_is_reported_with_line_and_column(tmp_path: Path) -> None:
    bad = textwrap.dedent(
        """\
        id: not-a-uuid
        name: Bad
        description: x
        author: me
        status: stabel
        severity: critical
        risk_score: 195
        schedule:
          interval: 1 minute
          lookbak: 5m
        type: threshold
        lucene: 'a:b'
        threshold:
          value: 0
        exceptions:
          - field: source.ip
            cidrs: [10.20.0.0/33]
            owner: soc
            reason: x
            expires: 2027-13-40
        """
    )
    path = tmp_path / "bad.yaml"
    _, problems = parse_rule(bad, path)
    where = {(p.field, p.line, p.col) for p in problems}
    assert ("id", 1, 5) in where
    assert ("status", 5, 9) in where
    assert ("risk_score", 7, 13) in where
    assert ("schedule.interval", 9, 13) in where
    assert ("schedule.lookbak", 10, 3) in where  # the unknown key itself
    assert ("threshold.value", 14, 10) in where
    assert ("exceptions[0].cidrs[0]", 17, 13) in where
    assert ("exceptions[0].expires", 20, 14) in where
    assert len(problems) == 8
    text = {p.field: str(p) for p in problems}
    assert text["schedule.lookbak"].endswith("unknown key (did you mean `lookback`?)")
    assert text["schedule.interval"].startswith(f"{path}:9:13: schedule.interval: ")
    assert "30s, 5m, 2h, 7d" in text["schedule.interval"]
    assert "got 0" in text["threshold.value"]


def test_unknown_top_level_keys_are_errors(tmp_path: Path) -> None:
    _, problems = parse_rule(GOOD + "enabeld: true\n", tmp_path / "r.yaml")
    (p,) = problems
    assert (p.field, p.message) == ("enabeld", "unknown key")
    assert p.line == GOOD.count("\n") + 1


def test_query_and_lucene_together_point_at_lucene(tmp_path: Path) -> None:
    text = GOOD.replace("group_by:", "query: {term: {url.path: x}}\ngroup_by:")
    _, problems = parse_rule(text, tmp_path / "r.yaml")
    (p,) = problems
    assert p.field == "lucene" and "both" in p.message
    assert p.line == 11


def test_a_missing_query_is_named(tmp_path: Path) -> None:
    text = GOOD.replace("lucene: 'iiswatch.url.query:*whoami*'\n", "")
    _, problems = parse_rule(text, tmp_path / "r.yaml")
    assert [p.field for p in problems] == ["type"]
    assert "lucene" in problems[0].message


def test_yaml_syntax_errors_have_a_location(tmp_path: Path) -> None:
    _, problems = parse_rule("id: x\nname: [unclosed\n", tmp_path / "r.yaml")
    (p,) = problems
    assert p.message.startswith("YAML:") and p.line >= 2


def test_duplicate_keys_are_reported(tmp_path: Path) -> None:
    _, problems = parse_rule(GOOD + "name: again\n", tmp_path / "r.yaml")
    assert problems and "duplicate" in problems[0].message.lower()


def test_text_with_a_colon_gets_a_hint(tmp_path: Path) -> None:
    text = GOOD.replace("group_by:", "false_positives:\n  - A scan: add an exception\ngroup_by:")
    _, problems = parse_rule(text, tmp_path / "r.yaml")
    (p,) = problems
    assert p.field == "false_positives[0]" and "quotes" in (p.hint or "")


def test_duplicate_ids_across_files_name_both(tmp_path: Path) -> None:
    write(tmp_path, "a/one.yaml", GOOD)
    write(tmp_path, "b/two.yaml", GOOD.replace("name: Web shell", "name: Another"))
    loaded, problems = scan_rules(tmp_path)
    assert len(loaded) == 2
    (p,) = problems
    assert p.field == "id" and "one.yaml:2:5" in p.message
    with pytest.raises(RuleError) as e:
        load_rules(tmp_path)
    assert len(e.value.problems) == 1


def test_an_empty_folder_has_no_rules(tmp_path: Path) -> None:
    assert load_rules(tmp_path) == []


def test_rules_are_selected_by_id_prefix_or_name(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", GOOD)
    loaded = load_rules(tmp_path)
    assert select(loaded, ["3f0c6a52"]) == loaded
    assert select(loaded, ["web shell command execution"]) == loaded
    with pytest.raises(RuleError):
        select(loaded, ["nope"])


def test_expired_exceptions_are_warned_about_at_their_line(tmp_path: Path) -> None:
    from datetime import date

    write(tmp_path, "one.yaml", GOOD)
    (w,) = expired_exception_warnings(load_rules(tmp_path), date(2026, 1, 1))
    assert w.severity == "warning" and w.line == 18 and "expired on 2020-06-30" in w.message


def test_fmt_is_idempotent_and_keeps_comments() -> None:
    messy = GOOD.replace("  - field: source.ip\n    cidrs", "  -   field: source.ip\n      cidrs")
    for key in ("owner: soc", "reason: int", "expires:"):
        messy = messy.replace(f"    {key}", f"      {key}")
    messy = messy.replace("log: |\n      2026", 'log: "2026').replace("0 0 1\n", '0 0 1"\n')
    once = format_text(messy)
    assert format_text(once) == once
    assert once == GOOD
    assert "# the incident's web shell" in once and "# UUID" in once


@pytest.mark.parametrize(
    "rule_type", ["match", "threshold", "cardinality", "new_terms", "sequence"]
)
def test_new_scaffolds_a_valid_rule(rule_type: str, tmp_path: Path) -> None:
    loaded, problems = parse_rule(scaffold("My rule", rule_type, None), tmp_path / "new.yaml")
    assert problems == []
    assert loaded is not None and loaded.rule.type == rule_type and len(loaded.rule.tests) == 2
