"""What `iiswatch respond` plans before anything is recorded, the agent's `[actions]` table
(nothing allowed by default), and the ready commands a ticket offers."""

from __future__ import annotations

import shlex
from datetime import timedelta
from pathlib import Path

import pytest

from iiswatch.alerting.templates import Templates, sample_alert
from iiswatch.errors import ConfigError, UsageError
from iiswatch.ingest.agent.config import load_agent_config
from iiswatch.respond.model import Kind
from iiswatch.respond.plan import describe, plan_block, plan_quarantine, ready_commands
from iiswatch.respond.policy import Policy

AGENT = """[agent]
name = "web01"
collector = "https://collector.example:8443"
token_file = "agent.token"
state = "state"

[[inputs]]
path = "logs/*.log"
"""


def test_an_agent_without_an_actions_table_runs_no_actions(tmp_path: Path) -> None:
    f = tmp_path / "agent.toml"
    f.write_text(AGENT)
    assert load_agent_config(f, {}).actions is None
    f.write_text(AGENT + "\n[actions]\n")
    actions = load_agent_config(f, {}).actions
    assert actions is not None and actions.allow == ()


def test_an_unknown_action_kind_in_allow_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "agent.toml"
    f.write_text(AGENT + '\n[actions]\nallow = ["block_ip", "format_c"]\n')
    with pytest.raises(ConfigError, match=r"actions\.allow\.1"):
        load_agent_config(f, {})


def test_a_block_plan_skips_protected_addresses_and_names_every_host() -> None:
    plan = plan_block(
        ["203.0.113.9", "192.168.1.20", "198.51.100.7"],
        ["web01", "web02"],
        duration=timedelta(hours=24),
        reason="web shell",
        requested_by="me",
        policy=Policy(never_block=("198.51.100.0/24",)),
    )
    assert [(a.host, a.target.ip) for a in plan.actions] == [
        ("web01", "203.0.113.9"),
        ("web02", "203.0.113.9"),
    ]
    assert len(plan.refused) == 2
    a = plan.actions[0]
    assert a.kind is Kind.BLOCK_IP and a.expires_at == a.requested_at + timedelta(hours=24)
    lines = "\n".join(describe(a))
    assert "appcmd.exe set config SITE" in lines  # the agent's default site
    assert '<add ipAddress="203.0.113.9" allowed="false" />' in lines


def test_a_plan_needs_a_host() -> None:
    with pytest.raises(UsageError, match="no host"):
        plan_quarantine("/uploads/x.aspx", [], reason="r", requested_by="me")


def test_ready_commands_are_quoted_for_the_shell() -> None:
    cmds = ready_commands("INC 7; touch MARKER", ("/uploads/a b.aspx",))
    assert shlex.split(cmds[0])[:4] == ["iiswatch", "respond", "block-ip", "INC 7; touch MARKER"]
    assert shlex.split(cmds[1])[5] == "/uploads/a b.aspx"


def test_the_default_ticket_body_offers_the_block_command(tmp_path: Path) -> None:
    _, body = Templates(None).render_message(sample_alert())
    assert "iiswatch respond block-ip 203.0.113.9 --host IIS-HOST --for 24h" in body
