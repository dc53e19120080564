"""`iiswatch respond …`: block an attacker's address in IIS and quarantine a web shell, on the
hosts whose agents allow it. A dry run by default (prints exactly what will change); `--yes`
records the action in `iiswatch-actions` with the responder credentials."""

from __future__ import annotations

import getpass
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from iiswatch.cli.output import err, out, print_json

app = typer.Typer(
    help="Response on the IIS host: block-ip, quarantine, unblock, list, show, sync.",
    no_args_is_help=True,
)

HOSTS = typer.Option(None, "--host", help="IIS host (repeat for several); default: the incident's.")
SITE = typer.Option(None, "--site", help="IIS site name; default: the agent's ([actions] site).")
REASON = typer.Option(..., "--reason", help="Why (recorded, and told to the ticket).")
YES = typer.Option(False, "--yes", help="Do it. Without --yes: print what would change.")
JSON = typer.Option(False, "--json", help="Print JSON.")
TICKET = typer.Option(None, "--ticket", help="RT ticket to tell (default: the incident's).")
RT_DEST = typer.Option(
    None,
    "--ticket-destination",
    help="Request Tracker destination of the alerting config that holds the tickets "
    "(default: the only request_tracker destination there, if any).",
)
ALERTING_CONFIG = typer.Option(None, "--config", "-c", help="Alerting config (for RT).")


def _es() -> Any:
    from iiswatch.config import Purpose
    from iiswatch.elastic.client import client_for

    return client_for(Purpose.RESPONDER)


def _who(es: Any) -> str:
    try:
        user = str(es.security.authenticate()["username"])
    except Exception:
        user = "?"
    return f"{getpass.getuser()} (as {user})"


def _rt(name: str | None, config: Path | None) -> Any:
    """The Request Tracker destination for ticket comments, or None when there is none."""
    from iiswatch.alerting.config import RequestTrackerDestination, load_config
    from iiswatch.errors import ConfigError

    try:
        cfg = load_config(config)
    except ConfigError:
        if name or config:
            raise
        return None
    if name:
        dest = cfg.destination(name)
        if not isinstance(dest, RequestTrackerDestination):
            raise ConfigError(f"destination {name!r} is not a request_tracker", None)
        return dest
    found = [d for d in cfg.destinations.values() if isinstance(d, RequestTrackerDestination)]
    return found[0] if len(found) == 1 else None


def _target(es: Any, target: str | None) -> tuple[str | None, Any]:
    """(an IP given directly, or None; the incident or None)."""
    import ipaddress

    from iiswatch.respond.incidents import read_incident

    if target is None:
        return None, None
    try:
        return str(ipaddress.ip_address(target)), None
    except ValueError:
        return None, read_incident(es, target)


def _show_plan(plan: Any, yes: bool, json_out: bool) -> None:
    from iiswatch.respond.plan import describe

    if json_out:
        return
    for why in plan.refused:
        err.print(f"[yellow]not done:[/] {escape(why)}")
    for a in plan.actions:
        for line in describe(a):
            out.print(escape(line), soft_wrap=True)  # commands stay one line, to copy
    if not yes and plan.actions:
        err.print("dry run: nothing recorded. Add --yes to record these actions.")


def _finish(es: Any, plan: Any, yes: bool, json_out: bool, rt: Any) -> None:
    from iiswatch.errors import UsageError
    from iiswatch.respond.plan import submit

    _show_plan(plan, yes, json_out)
    if not plan.actions:
        raise UsageError("nothing to do", plan.refused[0] if plan.refused else None)
    notes: list[str] = []
    if yes:
        notes = submit(es, plan, rt)
        for a in plan.actions:
            err.print(f"recorded {a.id} for {a.host}: the agent applies it on its next poll")
    for n in notes:
        err.print(f"[yellow]note:[/] {escape(n)}")
    if json_out:
        print_json(
            {
                "recorded": yes,
                "actions": [a.to_doc() for a in plan.actions],
                "refused": plan.refused,
                "notes": notes,
            }
        )


@app.command("block-ip")
def block_ip(
    target: str = typer.Argument(..., help="An IP address, or an incident id."),
    hosts: list[str] = HOSTS,
    duration: str = typer.Option("24h", "--for", help="How long (e.g. 30m, 24h, 7d)."),
    reason: str = REASON,
    site: str | None = SITE,
    force: bool = typer.Option(
        False, "--force", help="Allow a private/local address (never an allow-listed one)."
    ),
    policy_file: Path | None = typer.Option(None, "--policy", help="Respond policy TOML."),
    ticket: str | None = TICKET,
    yes: bool = YES,
    json_out: bool = JSON,
    rt_dest: str | None = RT_DEST,
    config: Path | None = ALERTING_CONFIG,
) -> None:
    """Deny an address in IIS's IP restrictions (ipSecurity) of the site, until --for ends.

    Examples: `iiswatch respond block-ip 203.0.113.9 --host web01 --for 24h --reason "web
    shell"`; `iiswatch respond block-ip INC-42 --reason "incident 42" --yes`.
    """
    from iiswatch.errors import UsageError
    from iiswatch.respond.plan import plan_block
    from iiswatch.respond.policy import load_policy
    from iiswatch.times import parse_duration

    try:
        span: timedelta = parse_duration(duration)
    except ValueError as e:
        raise UsageError(f"--for {duration!r}: {e}", "e.g. --for 24h") from None
    if span <= timedelta(0):
        raise UsageError("--for must be positive", "e.g. --for 24h")
    es = _es()
    ip, incident = _target(es, target)
    ips = [ip] if ip else list(incident.ips)
    if not ips:
        raise UsageError(f"incident {target} names no source.ip", "give the IP address instead")
    plan = plan_block(
        ips,
        list(hosts or (incident.hosts if incident else [])),
        duration=span,
        reason=reason,
        requested_by=_who(es),
        policy=load_policy(policy_file),
        site=site,
        force=force,
        incident=incident.id if incident else None,
        ticket=ticket or (incident.ticket if incident else None),
    )
    _finish(es, plan, yes, json_out, _rt(rt_dest, config) if yes else None)


@app.command()
def quarantine(
    incident_id: str | None = typer.Argument(None, help="The incident id (optional)."),
    path: str = typer.Option(..., "--path", help="The file's URL path, e.g. /uploads/x.aspx."),
    hosts: list[str] = HOSTS,
    reason: str = REASON,
    site: str | None = SITE,
    ticket: str | None = TICKET,
    yes: bool = YES,
    json_out: bool = JSON,
    rt_dest: str | None = RT_DEST,
    config: Path | None = ALERTING_CONFIG,
) -> None:
    """Move a file out of the site's web root into the agent's quarantine folder, after its
    hash is recorded and its bytes are archived as evidence.

    Example: `iiswatch respond quarantine INC-42 --path /uploads/x.aspx --reason "web shell"`.
    """
    from iiswatch.respond.incidents import read_incident
    from iiswatch.respond.plan import plan_quarantine

    es = _es()
    incident = read_incident(es, incident_id) if incident_id else None
    plan = plan_quarantine(
        path,
        list(hosts or (incident.hosts if incident else [])),
        reason=reason,
        requested_by=_who(es),
        site=site,
        incident=incident.id if incident else None,
        ticket=ticket or (incident.ticket if incident else None),
    )
    _finish(es, plan, yes, json_out, _rt(rt_dest, config) if yes else None)


@app.command()
def unblock(
    ip: str = typer.Argument(..., help="The blocked address."),
    hosts: list[str] = typer.Option(None, "--host", help="Only on these hosts (default: all)."),
    reason: str = REASON,
    yes: bool = YES,
    json_out: bool = JSON,
    rt_dest: str | None = RT_DEST,
    config: Path | None = ALERTING_CONFIG,
) -> None:
    """Lift iiswatch's blocks of an address before they expire."""
    from iiswatch.respond.plan import plan_unblock

    es = _es()
    plan = plan_unblock(es, ip, list(hosts or []), reason=reason, requested_by=_who(es))
    _finish(es, plan, yes, json_out, _rt(rt_dest, config) if yes else None)


@app.command("list")
def list_actions(
    host: str | None = typer.Option(None, "--host", help="Only this host."),
    state: str | None = typer.Option(None, "--state", help="Only this state (e.g. applied)."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    json_out: bool = JSON,
) -> None:
    """Recorded actions, newest first."""
    from iiswatch.respond import store
    from iiswatch.respond.model import State

    states = [State(state)] if state else None
    actions = store.search(_es(), host=host, states=states, size=limit)
    if json_out:
        print_json([a.to_doc() for a in actions])
        return
    table = Table("id", "host", "kind", "target", "state", "expires", "by")
    for a in actions:
        t = a.target.ip or a.target.url_path or ""
        exp = a.expires_at.isoformat(timespec="minutes") if a.expires_at else ""
        table.add_row(*(escape(x) for x in (a.id, a.host, a.kind, t, a.state, exp, a.requested_by)))
    out.print(table)


@app.command()
def show(action_id: str = typer.Argument(...)) -> None:
    """One action with every result the agent reported."""
    from iiswatch.errors import UsageError
    from iiswatch.respond import store

    action = store.get(_es(), action_id)
    if action is None:
        raise UsageError(f"no action {action_id!r}", "`iiswatch respond list` shows them")
    print_json(action.to_doc())


@app.command()
def sync(rt_dest: str | None = RT_DEST, config: Path | None = ALERTING_CONFIG) -> None:
    """Comment in each action's ticket what its agent reported (applied, failed, refused,
    expired) since the last sync. Run it on a schedule, or after an action."""
    from iiswatch.errors import EXIT_FINDINGS, ConfigError
    from iiswatch.respond.plan import sync_tickets

    rt = _rt(rt_dest, config)
    if rt is None:
        raise ConfigError(
            "no Request Tracker destination to comment in",
            "configure one in the alerting config, or pass --ticket-destination",
        )
    posted, problems = sync_tickets(_es(), rt)
    err.print(f"{posted} comment(s) posted")
    for p in problems:
        err.print(f"[red]problem:[/] {escape(p)}")
    if problems:
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def auto(
    since: str = typer.Option("1h", "--since", help="Alerts of this recent past (e.g. 1h)."),
    policy_file: Path | None = typer.Option(None, "--policy", help="Respond policy TOML."),
    yes: bool = YES,
    json_out: bool = JSON,
) -> None:
    """Run the policy's optional automatic blocks ([auto] rules, hosts): alerts of the named
    rules block their source addresses. Off unless the policy names rules; each (alert,
    host, address) is acted on once, so a schedule (cron, a timer) may run it often."""
    from iiswatch.errors import UsageError
    from iiswatch.respond.auto import run_auto
    from iiswatch.respond.plan import describe
    from iiswatch.respond.policy import load_policy
    from iiswatch.times import parse_duration

    try:
        span = parse_duration(since)
    except ValueError as e:
        raise UsageError(f"--since {since!r}: {e}", "e.g. --since 1h") from None
    policy = load_policy(policy_file)
    if not policy.auto.rules or not policy.auto.hosts:
        err.print("the automatic policy is off: the policy names no [auto] rules and hosts")
        return
    result = run_auto(_es(), policy, span, yes=yes)
    if json_out:
        print_json(
            {
                "recorded": yes,
                "actions": [a.to_doc() for a in result.recorded],
                "already": result.already,
                "refused": result.refused,
            }
        )
        return
    for why in result.refused:
        err.print(f"[yellow]not done:[/] {escape(why)}")
    for a in result.recorded:
        for line in describe(a):
            out.print(escape(line), soft_wrap=True)
    verb = "recorded" if yes else "would record (dry run; add --yes)"
    err.print(f"{verb} {len(result.recorded)} action(s); {result.already} done before")
