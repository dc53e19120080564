"""Credentials from the environment count without IISWATCH_ES_URL (they are for the local
node), and a URL without a scheme is a ConfigError naming the variable, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iiswatch.config import Purpose, connection_for
from iiswatch.errors import ConfigError
from tests.unit.test_config import _local_node, home  # noqa: F401 - the fixture


def test_env_credentials_are_used_for_the_local_node(
    home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _local_node(home)
    monkeypatch.setenv("IISWATCH_ES_USERNAME", "analyst")
    monkeypatch.setenv("IISWATCH_ES_PASSWORD", "s3cret")
    conn = connection_for(Purpose.READER)
    assert conn.url == "http://127.0.0.1:9250"
    assert (conn.credentials.username, conn.credentials.password) == ("analyst", "s3cret")


def test_a_url_without_a_scheme_names_the_variable_and_the_fix(
    home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IISWATCH_ES_URL", "es.example.org:9200")
    monkeypatch.setenv("IISWATCH_ES_API_KEY", "k")
    with pytest.raises(ConfigError) as e:
        connection_for(Purpose.READER)
    assert e.value.message.startswith("IISWATCH_ES_URL: 'es.example.org:9200' has no scheme")
    assert "https://es.example.org:9200" in e.value.message


def test_the_cli_says_it_in_two_lines_without_a_traceback(home: Path) -> None:  # noqa: F811
    env = dict(os.environ, IISWATCH_ES_URL="es.example.org:9200", IISWATCH_ES_API_KEY="k")
    p = subprocess.run(
        [sys.executable, "-m", "iiswatch.cli.main", "search", "*", "--count"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "has no scheme" in p.stderr
