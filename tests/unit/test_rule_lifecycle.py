"""Rule lifecycle: `enabled: false` in the file, `rules show` by a unique part of the name
or id, and the service and `rules run --all` skipping disabled rules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iiswatch.alerting.service import enabled
from iiswatch.alerting.service_config import ServiceSettings
from iiswatch.errors import RuleError
from iiswatch.rules.fmt import scaffold
from iiswatch.rules.loader import load_rules, select


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "webshell.yaml").write_text(scaffold("Web shell command in query", "match", None))
    (d / "scanner.yaml").write_text(scaffold("Scanner user agent", "match", None))
    off = scaffold("Noisy old web shell probe", "match", None).replace(
        "risk_score: 50\n", "risk_score: 50\nenabled: false\n"
    )
    (d / "old.yaml").write_text(off)
    return d


def test_enabled_false_is_read_and_the_service_skips_the_rule(rules_dir: Path) -> None:
    rules = [lr.rule for lr in load_rules(rules_dir)]
    assert {r.name: r.enabled for r in rules} == {
        "Web shell command in query": True,
        "Scanner user agent": True,
        "Noisy old web shell probe": False,
    }
    running = enabled(rules, ServiceSettings())
    assert sorted(r.name for r in running) == ["Scanner user agent", "Web shell command in query"]


def test_select_by_a_unique_part_of_the_name_or_an_id_prefix(rules_dir: Path) -> None:
    loaded = load_rules(rules_dir)
    assert [lr.rule.name for lr in select(loaded, ["scanner"])] == ["Scanner user agent"]
    target = next(lr for lr in loaded if lr.rule.name == "Scanner user agent")
    assert (
        select(loaded, [target.rule.rule_id[:5]]) == [target]
        or len([lr for lr in loaded if lr.rule.rule_id.startswith(target.rule.rule_id[:5])]) > 1
    )
    with pytest.raises(RuleError, match="matches 2 rules") as e:
        select(loaded, ["web shell"])
    assert len(e.value.problems) == 2
    with pytest.raises(RuleError, match="no rule"):
        select(loaded, ["nothing like it"])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iiswatch.cli.main", "rules", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, COLUMNS="250"),
    )


def test_rules_list_shows_disabled_and_show_takes_a_partial_name(rules_dir: Path) -> None:
    p = _cli("list", "--rules-dir", str(rules_dir), "--json")
    assert p.returncode == 0, p.stderr
    assert '"enabled": false' in p.stdout
    p = _cli("list", "--rules-dir", str(rules_dir))
    assert "(disabled)" in p.stdout
    p = _cli("show", "scanner", "--rules-dir", str(rules_dir))
    assert p.returncode == 0, p.stderr
    assert "Scanner user agent" in p.stdout
    p = _cli("show", "web shell", "--rules-dir", str(rules_dir))
    assert p.returncode == 1 and "matches 2 rules" in p.stderr
