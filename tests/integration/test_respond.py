"""Response end to end against the real Elasticsearch, a real collector process and the real
Request Tracker: an action recorded with the responder credentials is handed to the host's
agent, applied to the IIS config / web root of a test site, its result lands in the action
document and as a comment in the ticket, and the block's expiry removes it again. An agent
whose config does not allow a kind refuses it and changes nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch
from lxml import etree

from iiswatch.alerting.config import RequestTrackerDestination
from iiswatch.alerting.incidents import INCIDENTS_INDEX, IncidentStore
from iiswatch.alerting.risk import finding_from_alert
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.errors import UsageError
from iiswatch.ingest.collector.tokens import TokenStore
from iiswatch.respond import store
from iiswatch.respond.agent import ActionRunner, ActionsClient
from iiswatch.respond.agent_config import ActionsConfig
from iiswatch.respond.incidents import read_incident
from iiswatch.respond.model import ACTIONS_INDEX, State
from iiswatch.respond.plan import plan_block, plan_quarantine, submit, sync_tickets
from iiswatch.respond.policy import Policy
from tests.integration.alerting_support import Rt, rt_from_env
from tests.integration.collector_proc import CLI, CollectorProcess
from tests.integration.conftest import delete_matching

pytestmark = pytest.mark.integration

ATTACKER = "203.0.113.9"
SHELL = b'<%@ Page Language="C#" %><% Response.Write(Request["cmd"]); %>\r\n'
APPHOST = """<?xml version="1.0" encoding="UTF-8"?>
<configuration>
    <system.applicationHost>
        <sites>
            <site name="Default Web Site" id="1">
                <application path="/">
                    <virtualDirectory path="/" physicalPath="{root}" />
                </application>
            </site>
        </sites>
    </system.applicationHost>
    <system.webServer>
        <security>
            <ipSecurity allowUnlisted="true" />
        </security>
    </system.webServer>
</configuration>
"""


class Host:
    """A test IIS host: a web root with a web shell, its applicationHost.config, and the
    agent's action runner (the thread's body, driven round by round with a clock we set)."""

    def __init__(self, base: Path, name: str, url: str, token: str, allow: tuple[str, ...]) -> None:
        self.name = name
        self.root = base / name / "wwwroot"
        (self.root / "uploads").mkdir(parents=True)
        self.shell = self.root / "uploads" / "x.aspx"
        self.shell.write_bytes(SHELL)
        self.config = base / name / "applicationHost.config"
        self.config.write_text(APPHOST.format(root=self.root))
        self.now = datetime.now(UTC)
        cfg = ActionsConfig.model_validate(
            {"allow": list(allow), "ip_security": "xml", "application_host": str(self.config)}
        )
        client = ActionsClient(url, lambda: token, ca=None, timeout=60)
        self.runner = ActionRunner(cfg, name, base / name / "state", client, clock=lambda: self.now)

    def denied(self) -> list[str]:
        root = etree.parse(str(self.config)).getroot()
        path = "location[@path='Default Web Site']/system.webServer/security/ipSecurity/add"
        return [a.get("ipAddress") for a in root.findall(path) if a.get("allowed") == "false"]


@pytest.fixture(scope="module")
def rt() -> Rt:
    return rt_from_env()


@pytest.fixture(scope="module")
def responder() -> Elasticsearch:
    return client_for(Purpose.RESPONDER)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[CollectorProcess, TokenStore]]:
    archive = tmp_path / "archive"
    archive.mkdir()
    proc = CollectorProcess(archive, tmp_path / "archive.key")
    proc.start(timeout=120)
    yield proc, TokenStore(archive)
    assert proc.stop() == 0


@pytest.fixture
def names(admin_es: Elasticsearch) -> Iterator[list[str]]:
    """Host names unique to this test run; their actions are deleted afterwards."""
    made: list[str] = []
    yield made
    for n in made:
        delete_matching(admin_es, ACTIONS_INDEX, {"term": {"host": n}})


@pytest.fixture
def ticket(rt: Rt) -> Iterator[str]:
    created = rt.call(
        "POST", "/ticket", {"Queue": "General", "Subject": "web shell on IIS (respond test)"}
    )
    tid = str(created["id"])
    yield tid
    rt.delete(tid)


def host(
    tmp_path: Path, collector: Any, names: list[str], label: str, allow: tuple[str, ...]
) -> Host:
    proc, tokens = collector
    name = f"respond-{label}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    names.append(name)
    return Host(tmp_path, name, proc.url, tokens.add(name), allow)


def action_doc(es: Elasticsearch, action_id: str) -> dict[str, Any]:
    return dict(es.get(index=ACTIONS_INDEX, id=action_id)["_source"])


def test_block_and_quarantine_end_to_end_with_ticket_comments_and_expiry(
    tmp_path: Path, collector: Any, names: list[str], responder: Elasticsearch, rt: Rt, ticket: str
) -> None:
    web = host(tmp_path, collector, names, "web", ("block_ip", "quarantine"))
    rt_dest = RequestTrackerDestination.model_validate(
        {"type": "request_tracker", "url": rt.url, "token": rt.token}
    )
    who = "analyst (as iiswatch_responder)"

    block = plan_block(
        [ATTACKER],
        [web.name],
        duration=timedelta(hours=24),
        reason="web shell",
        requested_by=who,
        policy=Policy(),
        site="Default Web Site",
        ticket=ticket,
    )
    shell = plan_quarantine(
        "/uploads/x.aspx", [web.name], reason="web shell", requested_by=who, ticket=ticket
    )
    assert submit(responder, block, rt_dest) == []
    assert submit(responder, shell, rt_dest) == []
    (b,), (q,) = block.actions, shell.actions
    assert action_doc(responder, b.id)["state"] == "pending"
    assert web.denied() == [] and web.shell.exists()  # nothing happens before the agent asks

    web.runner.round()

    # the block: in the XML IIS reads, and recorded
    assert web.denied() == [ATTACKER]
    doc = action_doc(responder, b.id)
    assert doc["state"] == "applied"
    (change,) = doc["results"][-1]["changes"]
    assert change.startswith(f'added <add ipAddress="{ATTACKER}" allowed="false" /> to ')
    assert change.endswith(f"{web.config} (site Default Web Site)")
    # the quarantine: moved out, hash recorded, evidence in the archive
    digest = hashlib.sha256(SHELL).hexdigest()
    doc = action_doc(responder, q.id)
    assert doc["state"] == "applied"
    assert doc["results"][-1]["sha256"] == digest
    assert not web.shell.exists()
    moved = Path(doc["results"][-1]["quarantined_to"])
    assert moved.read_bytes() == SHELL and web.root not in moved.parents
    archive = collector[0].archive
    verify = subprocess.run(
        [*CLI, "archive", "verify", str(archive), "--key", str(collector[0].key)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    export = subprocess.run(
        [*CLI, "archive", "export", str(archive), "--host", web.name, "--file", digest],
        capture_output=True,
    )
    assert export.returncode == 0, export.stderr
    assert export.stdout == SHELL

    # the ticket: told when requested, and told the results
    posted, problems = sync_tickets(responder, rt_dest)
    assert (posted, problems) == (2, [])
    assert sync_tickets(responder, rt_dest) == (0, [])  # each result told once
    subjects = [c["Subject"] for c in rt.contents(ticket)]
    assert f"Response requested: block {ATTACKER} on {web.name}" in subjects
    assert f"Response applied: block {ATTACKER} on {web.name}" in subjects
    assert f"Response applied: quarantine /uploads/x.aspx on {web.name}" in subjects
    bodies = "\n".join(c["Content"] for c in rt.contents(ticket))
    assert digest in bodies

    # expiry: a day later the agent removes its block, on its own, and says so
    web.runner.round()
    assert web.denied() == [ATTACKER]
    web.now += timedelta(hours=24, seconds=1)
    web.runner.round()
    assert web.denied() == []
    assert action_doc(responder, b.id)["state"] == "expired"
    assert sync_tickets(responder, rt_dest) == (1, [])
    assert f"Response expired: block {ATTACKER} on {web.name}" in [
        c["Subject"] for c in rt.contents(ticket)
    ]


def test_an_agent_that_does_not_allow_a_kind_refuses_it_and_changes_nothing(
    tmp_path: Path, collector: Any, names: list[str], responder: Elasticsearch
) -> None:
    only_blocks = host(tmp_path, collector, names, "blocks", ("block_ip",))
    nothing = host(tmp_path, collector, names, "none", ())
    plans = [
        plan_quarantine("/uploads/x.aspx", [only_blocks.name], reason="r", requested_by="t"),
        plan_block(
            [ATTACKER],
            [nothing.name],
            duration=timedelta(hours=1),
            reason="r",
            requested_by="t",
            policy=Policy(),
        ),
        plan_quarantine("/uploads/x.aspx", [nothing.name], reason="r", requested_by="t"),
    ]
    for p in plans:
        submit(responder, p)
    only_blocks.runner.round()
    nothing.runner.round()
    for p in plans:
        doc = action_doc(responder, p.actions[0].id)
        assert doc["state"] == "refused", doc
        assert "does not allow" in doc["results"][-1]["message"]
    for h in (only_blocks, nothing):
        assert h.shell.read_bytes() == SHELL
        assert h.denied() == []
        assert not (h.runner.quarantine_dir).exists()


def test_an_agent_cannot_fetch_or_report_another_hosts_actions(
    tmp_path: Path, collector: Any, names: list[str], responder: Elasticsearch
) -> None:
    web = host(tmp_path, collector, names, "tok", ("block_ip",))
    p = plan_block(
        [ATTACKER],
        [web.name],
        duration=timedelta(hours=1),
        reason="r",
        requested_by="t",
        policy=Policy(),
    )
    submit(responder, p)
    stranger = ActionsClient(collector[0].url, lambda: "not-a-token", ca=None, timeout=60)
    other = host(tmp_path, collector, names, "other", ("block_ip",))
    from iiswatch.respond.agent import CollectorError

    with pytest.raises(CollectorError, match="401"):
        stranger.poll(web.name)
    with pytest.raises(CollectorError, match="403"):
        other.runner.client.poll(web.name)  # another host's valid token
    with pytest.raises(CollectorError, match="403"):
        other.runner.client.report(web.name, p.actions[0].id, {"state": "applied", "message": "x"})
    assert action_doc(responder, p.actions[0].id)["state"] == "pending"


def test_an_incident_gives_its_addresses_and_hosts_by_id_or_prefix(
    responder: Elasticsearch, admin_es: Elasticsearch
) -> None:
    # an incident written by the alerting service's own store, as the service writes it
    ip = "198.51.100.77"
    alert = {
        "alert_id": f"respond-test-{ip}",
        "rule": {"id": "respond-test", "name": "respond test"},
        "severity": "critical",
        "risk_score": 99,
        "group": {"source.ip": ip},
        "source": {"ip": [ip]},
        "first_event": "1995-03-04T05:06:07Z",
        "last_event": "1995-03-04T05:07:07Z",
        "event_count": 2,
        "samples": [{"host": {"name": "web07"}, "url": {"path": "/uploads/x.aspx"}}],
    }
    alerting = client_for(Purpose.ALERTING)
    store = IncidentStore(alerting)
    store.ensure_index()
    (incident,) = store.add(alert, finding_from_alert(alert), destinations=[])
    admin_es.indices.refresh(index=INCIDENTS_INDEX)  # a prefix is searched, not got
    try:
        for ref in (incident.incident_id, incident.incident_id[:10]):
            found = read_incident(responder, ref)
            assert (found.id, found.ips, found.hosts) == (incident.incident_id, (ip,), ("web07",))
        with pytest.raises(UsageError, match="no incident 'ffffffffffff'"):
            read_incident(responder, "ffffffffffff")
    finally:
        alerting.delete(index=INCIDENTS_INDEX, id=incident.incident_id, refresh=True)


def test_readers_and_the_alerting_service_cannot_record_actions(
    reader_es: Elasticsearch,
) -> None:
    from elasticsearch import AuthorizationException

    alerting = client_for(Purpose.ALERTING)
    p = plan_block(
        [ATTACKER],
        ["nobody"],
        duration=timedelta(hours=1),
        reason="r",
        requested_by="t",
        policy=Policy(),
    )
    for es in (reader_es, alerting):
        with pytest.raises(AuthorizationException):
            submit(es, p)


def test_the_agent_process_polls_applies_what_its_config_allows(
    tmp_path: Path, collector: Any, names: list[str], responder: Elasticsearch
) -> None:
    proc, tokens = collector
    web = host(tmp_path, collector, names, "proc", ("block_ip",))
    token_file = tmp_path / "agent.token"
    token_file.write_text(tokens.add(web.name, replace=True))
    logs = tmp_path / "logs"
    logs.mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""[agent]
name = "{web.name}"
collector = "{proc.url}"
token_file = '{token_file}'
state = '{tmp_path / "agent-state"}'

[[inputs]]
path = '{logs}/*.log'

[actions]
allow = ["block_ip"]
poll_seconds = 0.2
ip_security = "xml"
application_host = '{web.config}'
site = "Default Web Site"
"""
    )
    block = plan_block(
        [ATTACKER],
        [web.name],
        duration=timedelta(hours=1),
        reason="r",
        requested_by="t",
        policy=Policy(),
    )
    shell = plan_quarantine("/uploads/x.aspx", [web.name], reason="r", requested_by="t")
    submit(responder, block)
    submit(responder, shell)
    agent = subprocess.Popen(
        [*CLI[:-1], "iiswatch.cli.agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        states: tuple[str, str] = ("", "")
        while time.monotonic() < deadline:
            states = (
                action_doc(responder, block.actions[0].id)["state"],
                action_doc(responder, shell.actions[0].id)["state"],
            )
            if states == ("applied", "refused"):
                break
            time.sleep(0.5)
        assert states == ("applied", "refused"), agent.stderr
        assert web.denied() == [ATTACKER]
        assert web.shell.read_bytes() == SHELL
    finally:
        agent.terminate()
        assert agent.wait(60) == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "respond", *args], capture_output=True, text=True, timeout=120)


def test_cli_dry_run_prints_the_change_and_records_nothing_then_yes_records(
    names: list[str], responder: Elasticsearch
) -> None:
    name = f"respond-cli-{os.getpid()}"
    names.append(name)
    common = ("--host", name, "--site", "Default Web Site", "--for", "2h", "--reason", "web shell")
    dry = run_cli("block-ip", ATTACKER, *common)
    assert dry.returncode == 0, dry.stderr
    assert (
        r"%windir%\system32\inetsrv\appcmd.exe set config "
        '"Default Web Site" -section:system.webServer/security/ipSecurity '
        f"/+[ipAddress='{ATTACKER}',allowed='false'] /commit:apphost"
    ) in dry.stdout
    assert "dry run" in dry.stderr
    assert store.search(responder, host=name) == []

    done = run_cli("block-ip", ATTACKER, *common, "--yes")
    assert done.returncode == 0, done.stderr
    (action,) = store.search(responder, host=name)
    assert (
        action.target.ip,
        action.state,
        action.requested_by.endswith("(as iiswatch_responder)"),
    ) == (ATTACKER, State.PENDING, True)
    assert action.expires_at is not None
    assert (
        timedelta(hours=1, minutes=59)
        < action.expires_at - action.requested_at
        <= timedelta(hours=2)
    )

    listed = run_cli("list", "--host", name, "--json")
    assert [a["id"] for a in orjson.loads(listed.stdout)] == [action.id]


def test_cli_refuses_private_addresses_and_paths_out_of_the_root(names: list[str]) -> None:
    private = run_cli("block-ip", "10.0.0.5", "--host", "h", "--reason", "r", "--yes")
    assert private.returncode == 2
    assert "private or local range" in private.stderr
    escape = run_cli(
        "quarantine", "--path", "/uploads/../web.config", "--host", "h", "--reason", "r"
    )
    assert escape.returncode == 2
    assert "could leave the web root" in escape.stderr


def test_the_automatic_policy_blocks_sources_of_named_rules_once_and_records_it(
    names: list[str], responder: Elasticsearch, admin_es: Elasticsearch
) -> None:
    from iiswatch.respond.auto import REQUESTED_BY, run_auto
    from iiswatch.respond.policy import AutoPolicy

    name = f"respond-auto-{os.getpid()}"
    names.append(name)
    index = f"iiswatch-alerts-respondtest-{os.getpid()}"
    now = datetime.now(UTC).isoformat()
    docs = [
        ("a1", "webshell_exec", [ATTACKER, "10.0.0.8"]),
        ("a2", "sqli_union", ["198.51.100.99"]),  # not a named rule
    ]
    for alert_id, rule, ips in docs:
        admin_es.index(
            index=index,
            id=alert_id,
            document={
                "@timestamp": now,
                "alert_id": f"{alert_id}-{os.getpid()}",
                "rule": {"id": rule},
                "source": {"ip": ips},
            },
            refresh=True,
        )
    try:
        off = run_auto(responder, Policy(), timedelta(hours=1), yes=True)
        assert off.recorded == []  # off by default
        policy = Policy(auto=AutoPolicy(rules=("webshell_exec",), hosts=(name,)))
        dry = run_auto(responder, policy, timedelta(hours=1), yes=False)
        assert [a.target.ip for a in dry.recorded] == [ATTACKER]
        assert store.search(responder, host=name) == []
        first = run_auto(responder, policy, timedelta(hours=1), yes=True)
        again = run_auto(responder, policy, timedelta(hours=1), yes=True)
        assert len(first.recorded) == 1 and "10.0.0.8" in first.refused[0]
        assert (again.recorded, again.already) == ([], 1)
        (action,) = store.search(responder, host=name)
        assert (action.auto_rule, action.requested_by, action.target.ip) == (
            "webshell_exec",
            REQUESTED_BY,
            ATTACKER,
        )
    finally:
        admin_es.indices.delete(index=index, ignore_unavailable=True)


def test_unblock_lifts_the_agents_block_and_tells_both_documents(
    tmp_path: Path, collector: Any, names: list[str], responder: Elasticsearch
) -> None:
    from iiswatch.respond.plan import plan_unblock

    web = host(tmp_path, collector, names, "lift", ("block_ip",))
    block = plan_block(
        [ATTACKER],
        [web.name],
        duration=timedelta(hours=1),
        reason="r",
        requested_by="t",
        policy=Policy(),
        site="Default Web Site",
    )
    submit(responder, block)
    web.runner.round()
    assert web.denied() == [ATTACKER]
    lift = plan_unblock(responder, ATTACKER, [web.name], reason="false positive", requested_by="t")
    assert [a.lifts for a in lift.actions] == [block.actions[0].id]
    submit(responder, lift)
    web.runner.round()
    assert web.denied() == []
    assert action_doc(responder, block.actions[0].id)["state"] == "lifted"
    assert action_doc(responder, lift.actions[0].id)["state"] == "applied"
    assert plan_unblock(responder, ATTACKER, [web.name], reason="r", requested_by="t").actions == []
