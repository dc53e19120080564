"""What `iiswatch respond` asks for, before and after `--yes`: build the actions (refusing
addresses the policy protects), describe exactly what each will change on the host, record
them, and keep the incident's ticket told."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass, field
from datetime import timedelta

from elasticsearch import Elasticsearch

from iiswatch.alerting.config import RequestTrackerDestination
from iiswatch.errors import DeliveryError, UsageError
from iiswatch.respond import store
from iiswatch.respond.ipsecurity import appcmd_block_args, appcmd_display, appcmd_unblock_args
from iiswatch.respond.model import Action, Kind, State, Target, new_action_id, now
from iiswatch.respond.policy import Policy, parse_ip, refusal
from iiswatch.respond.ticket import comment_on_ticket, requested_text, result_text

log = logging.getLogger(__name__)
SITE_UNNAMED = "SITE"  # shown in previews when the agent's default site will be used


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why some targets are left out


def _need_hosts(hosts: list[str]) -> list[str]:
    if not hosts:
        raise UsageError("no host to act on", "name the IIS host(s) with --host")
    return list(dict.fromkeys(hosts))


def plan_block(
    ips: list[str],
    hosts: list[str],
    *,
    duration: timedelta,
    reason: str,
    requested_by: str,
    policy: Policy,
    site: str | None = None,
    force: bool = False,
    incident: str | None = None,
    ticket: str | None = None,
    auto_rule: str | None = None,
) -> Plan:
    plan = Plan()
    when = now()
    for text in ips:
        ip = parse_ip(text)
        why = refusal(ip, policy, force=force)
        if why:
            plan.refused.append(why)
            continue
        for host in _need_hosts(hosts):
            plan.actions.append(
                Action(
                    id=new_action_id(Kind.BLOCK_IP, when),
                    kind=Kind.BLOCK_IP,
                    host=host,
                    target=Target(ip=str(ip), site=site),
                    reason=reason,
                    requested_by=requested_by,
                    requested_at=when,
                    expires_at=when + duration,
                    incident=incident,
                    ticket=ticket,
                    auto_rule=auto_rule,
                )
            )
    return plan


def plan_quarantine(
    url_path: str,
    hosts: list[str],
    *,
    reason: str,
    requested_by: str,
    site: str | None = None,
    incident: str | None = None,
    ticket: str | None = None,
) -> Plan:
    from iiswatch.respond.sites import SiteError, url_parts

    try:
        url_parts(url_path)  # refuse `..` and friends here already, not only on the host
    except SiteError as e:
        raise UsageError(e.message, e.hint) from e
    when = now()
    return Plan(
        [
            Action(
                id=new_action_id(Kind.QUARANTINE, when),
                kind=Kind.QUARANTINE,
                host=host,
                target=Target(url_path=url_path, site=site),
                reason=reason,
                requested_by=requested_by,
                requested_at=when,
                incident=incident,
                ticket=ticket,
            )
            for host in _need_hosts(hosts)
        ]
    )


def plan_unblock(
    es: Elasticsearch, ip: str, hosts: list[str], *, reason: str, requested_by: str
) -> Plan:
    """An unblock for every block of `ip` that is applied (or still on its way)."""
    addr = str(parse_ip(ip))
    live = (State.PENDING, State.DELIVERED, State.APPLIED)
    blocks = [
        a
        for a in store.search(es, ip=addr, states=live)
        if a.kind is Kind.BLOCK_IP and (not hosts or a.host in hosts)
    ]
    plan = Plan()
    if not blocks:
        plan.refused.append(
            f"no block of {addr} is in force{' on ' + ', '.join(hosts) if hosts else ''}"
        )
    when = now()
    for b in blocks:
        plan.actions.append(
            Action(
                id=new_action_id(Kind.UNBLOCK_IP, when),
                kind=Kind.UNBLOCK_IP,
                host=b.host,
                target=b.target,
                reason=reason,
                requested_by=requested_by,
                requested_at=when,
                incident=b.incident,
                ticket=b.ticket,
                lifts=b.id,
            )
        )
    return plan


def describe(action: Action) -> list[str]:
    """Exactly what the agent will change, for the dry run."""
    t = action.target
    site = t.site or SITE_UNNAMED
    if action.kind is Kind.BLOCK_IP and t.ip:
        until = action.expires_at.isoformat(timespec="seconds") if action.expires_at else "-"
        return [
            f"{action.host}: deny {t.ip} on site {site} until {until} (then removed)",
            f"  Windows:  {appcmd_display(appcmd_block_args(site, t.ip))}",
            f'  XML:      <location path="{site}"> system.webServer/security/ipSecurity: '
            f'<add ipAddress="{t.ip}" allowed="false" />',
        ]
    if action.kind is Kind.UNBLOCK_IP and t.ip:
        return [
            f"{action.host}: lift block {action.lifts} of {t.ip} on site {site}",
            f"  Windows:  {appcmd_display(appcmd_unblock_args(site, t.ip))}",
        ]
    return [
        f"{action.host}: quarantine {t.url_path} of site {site}",
        "  the file is located under the site's physical path (applicationHost.config),",
        "  hashed (SHA-256), its bytes archived by the collector as evidence, then moved to",
        "  the agent's quarantine folder (not served by IIS); nothing happens outside the root",
    ]


def submit(es: Elasticsearch, plan: Plan, rt: RequestTrackerDestination | None = None) -> list[str]:
    """Record the actions; tell their ticket. Returns notes (e.g. a ticket not reached)."""
    notes = []
    for action in plan.actions:
        store.record(es, action)
        if rt is not None and action.ticket:
            try:
                comment_on_ticket(rt, action.ticket, *requested_text(action))
            except DeliveryError as e:
                notes.append(f"ticket {action.ticket} not told about {action.id}: {e.message}")
    return notes


def sync_tickets(es: Elasticsearch, rt: RequestTrackerDestination) -> tuple[int, list[str]]:
    """Comment every result no ticket has been told about yet; (comments posted, problems)."""
    posted, problems = 0, []
    for action, told in store.untold(es):
        assert action.ticket is not None
        for i, result in enumerate(action.results[len(told) :], start=len(told)):
            try:
                comment_on_ticket(rt, action.ticket, *result_text(action, result))
            except DeliveryError as e:
                problems.append(f"ticket {action.ticket}: {action.id}: {e.message}")
                break
            told = [*told, f"{i}:{result.state.value}"]
            store.mark_told(es, action.id, told)
            posted += 1
    return posted, problems


def ready_commands(incident: str, url_paths: tuple[str, ...] = ()) -> list[str]:
    """The `iiswatch respond` commands a ticket body offers for an incident (dry runs:
    each prints what it would change; add --yes to do it)."""
    q = shlex.quote
    why = q(f"incident {incident}")
    cmds = [f"iiswatch respond block-ip {q(incident)} --for 24h --reason {why}"]
    cmds += [
        f"iiswatch respond quarantine {q(incident)} --path {q(p)} --reason {why}" for p in url_paths
    ]
    return cmds
