"""`rules run --since` and `rules run --all` skipping rules with `enabled: false`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from iiswatch.rules.fmt import scaffold

pytestmark = pytest.mark.integration


def test_run_all_since_skips_disabled_rules(tmp_path: Path, admin_es: Elasticsearch) -> None:
    (tmp_path / "on.yaml").write_text(scaffold("Lifecycle on", "match", None))
    off = scaffold("Lifecycle off", "match", None).replace(
        "risk_score: 50\n", "risk_score: 50\nenabled: false\n"
    )
    (tmp_path / "off.yaml").write_text(off)
    cli = [sys.executable, "-m", "iiswatch.cli.main", "rules", "run"]
    p = subprocess.run(
        [*cli, "--since", "1h", "--all", "--rules-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "skipping 1 disabled rule(s): Lifecycle off" in p.stderr
    assert "from 1 rule(s)" in p.stdout
    p = subprocess.run(
        [*cli, "--since", "1h", "--from", "2026-01-01", "--all", "--rules-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "--since cannot be combined" in p.stderr
