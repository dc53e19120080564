"""The demo's last step: respond to what it found, on a test IIS host made of a web root and
its applicationHost.config beside the demo's logs. A real collector process hands the actions
to the agent's action runner, which edits the XML and moves the web shell out; the ticket
(when it is in Request Tracker) gets the story as comments."""

from __future__ import annotations

import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from rich.markup import escape

from iiswatch.alerting.config import RequestTrackerDestination
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.collector.tokens import TokenStore
from iiswatch.respond.agent import ActionRunner, ActionsClient
from iiswatch.respond.agent_config import ActionsConfig
from iiswatch.respond.ipsecurity import XmlIpSecurity
from iiswatch.respond.plan import describe, plan_block, plan_quarantine, submit, sync_tickets
from iiswatch.respond.policy import Policy

SITE = "Default Web Site"
SHELL = b'<%@ Page Language="C#" %><% Response.Write(Request["cmd"]); %>\r\n'
APPHOST = """<?xml version="1.0" encoding="UTF-8"?>
<configuration>
    <system.applicationHost>
        <sites>
            <site name="{site}" id="1">
                <application path="/">
                    <virtualDirectory path="/" physicalPath="{root}" />
                </application>
            </site>
        </sites>
    </system.applicationHost>
</configuration>
"""


def _start_collector(archive: Path, key: Path) -> tuple[subprocess.Popen[bytes], str]:
    args = [sys.executable, "-m", "iiswatch.cli.main", "collector", "run"]
    args += ["--listen", "127.0.0.1:0", "--archive", str(archive), "--key", str(key)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line, deadline = b"", time.monotonic() + 120
    while not line.endswith(b"\n"):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the demo's collector did not start")
        if sel.select(0.2):
            line += proc.stdout.read(1)
    sel.close()
    return proc, line.decode().split()[-1]


def _ticket_id(refs: list[str]) -> str | None:
    for r in refs:
        if "Display.html?id=" in r:
            return r.rsplit("=", 1)[1]
    return None


def demo_response(
    base: Path,
    host: str,
    attacker: str,
    shell_path: str,
    tickets: list[str],
    say: Callable[[str, str], None],
) -> bool:
    """Dry run, then apply, block and quarantine on the demo host; True when both held."""
    iis = base / "iis"
    shutil.rmtree(iis, ignore_errors=True)
    root = iis / "wwwroot"
    shell = root.joinpath(*shell_path.strip("/").split("/"))
    shell.parent.mkdir(parents=True)
    shell.write_bytes(SHELL)
    config = iis / "applicationHost.config"
    config.write_text(APPHOST.format(site=SITE, root=root))
    archive = iis / "archive"
    archive.mkdir()
    token = TokenStore(archive).add(host)

    rt_url, rt_token = os.environ.get("RT_URL"), os.environ.get("RT_TOKEN")
    rt = None
    if rt_url and rt_token:
        rt = RequestTrackerDestination.model_validate(
            {"type": "request_tracker", "url": rt_url, "token": rt_token}
        )
    ticket = _ticket_id(tickets) if rt else None

    es = client_for(Purpose.RESPONDER)
    who = "demo analyst (as iiswatch_responder)"
    block = plan_block(
        [attacker],
        [host],
        duration=timedelta(hours=24),
        reason="web shell found by the demo",
        requested_by=who,
        policy=Policy(),
        site=SITE,
        ticket=ticket,
    )
    pull = plan_quarantine(
        shell_path,
        [host],
        reason="web shell found by the demo",
        requested_by=who,
        site=SITE,
        ticket=ticket,
    )
    common = f"--host {host} --site {shlex.quote(SITE)} --reason 'web shell'"
    dry = [f"$ iiswatch respond block-ip {attacker} {common} --for 24h"]
    dry += describe(block.actions[0])
    dry += [f"$ iiswatch respond quarantine --path {shlex.quote(shell_path)} {common}"]
    dry += describe(pull.actions[0])
    say("10. Response: the dry run", escape("\n".join(dry)))  # `[ipAddress=...]` is not markup

    proc, url = _start_collector(archive, iis / "archive.key")
    try:
        submit(es, block, rt)
        submit(es, pull, rt)
        cfg = ActionsConfig.model_validate(
            {
                "allow": ["block_ip", "quarantine"],
                "ip_security": "xml",
                "application_host": str(config),
                "site": SITE,
            }
        )
        runner = ActionRunner(
            cfg, host, iis / "agent-state", ActionsClient(url, lambda: token, ca=None, timeout=60)
        )
        runner.round()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    told = sync_tickets(es, rt)[0] if rt else 0
    denied = XmlIpSecurity(config, SITE).denied()
    moved = sorted((iis / "agent-state" / "quarantine").glob("*.quarantined"))
    ok = denied == [attacker] and not shell.exists() and len(moved) == 1
    told_line = f"  ticket {ticket}: {told} result comment(s) after the request comments\n"
    text = (
        f"recorded {block.actions[0].id} and {pull.actions[0].id}; the agent of {host} applied "
        f"them:\n  {config}: {attacker} denied for site {SITE!r}: {denied == [attacker]}\n"
        f"  {shell_path}: moved out of {root} to {moved[0] if moved else '-'} "
        f"(bytes archived as evidence in {archive})\n"
        + (told_line if ticket else "")
        + f"$ iiswatch respond list --host {host}"
    )
    say("10. Response: applied with --yes", escape(text))
    return ok
