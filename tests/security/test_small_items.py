"""Attack 8, the smaller items: each a way the old code leaked or misled."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from iiswatch.alerting.config import CommandDestination
from iiswatch.alerting.destinations.command import Command
from iiswatch.alerting.templates import sample_alert


def test_a_command_destination_does_not_inherit_other_destinations_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IISWATCH_JIRA_TOKEN", "secret-of-another-destination")
    printer = (
        "import os, sys; "
        "sys.stdout.write(repr((os.environ.get('IISWATCH_JIRA_TOKEN'), os.environ['QUEUE'])))"
    )
    cfg = CommandDestination.model_validate(
        {"type": "command", "argv": [sys.executable, "-c", printer], "env": {"QUEUE": "web"}}
    )
    result = Command("script", cfg).deliver(sample_alert())
    assert result.ticket_id == "(None, 'web')"  # its own env, not the service's secrets
