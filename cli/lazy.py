"""Sub-apps and commands loaded only when they run: `iiswatch --help` lists every command
from the short help kept here, and `iiswatch search ...` imports the search module and
nothing else (importing every sub-app, Elasticsearch's client and rich cost seconds).

The short help strings are checked against the real commands by a unit test.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer import _click as click  # Typer vendors its own click
from typer.core import TyperCommand, TyperGroup

# name -> (module, attribute: a Typer sub-app or a command function, short help)
LAZY: dict[str, tuple[str, str, str]] = {
    "setup": (
        "iiswatch.cli.logs",
        "setup",
        "Install or update index templates, roles and least-privilege users (idempotent).",
    ),
    "parse": (
        "iiswatch.cli.logs",
        "parse",
        "Print one ECS document per log event as NDJSON; no Elasticsearch needed.",
    ),
    "ingest": (
        "iiswatch.cli.logs",
        "ingest",
        "Parse log files and index them into Elasticsearch.",
    ),
    "search": (
        "iiswatch.cli.search",
        "search",
        "Search the logs: a table of events, top values, a histogram, a count, or every hit.",
    ),
    "demo": (
        "iiswatch.cli.demo.command",
        "demo",
        "Run the analyst's walk-through on a generated day of IIS logs.",
    ),
    "es": ("iiswatch.cli.es", "app", "Run a local single-node Elasticsearch for iiswatch."),
    "rules": (
        "iiswatch.cli.rules",
        "app",
        "Detection rules as files: list, show, fmt, new, validate, test, backtest, run.",
    ),
    "agent": (
        "iiswatch.cli.agent",
        "app",
        "The agent on an IIS host: find its logs and ship them to a collector.",
    ),
    "collector": (
        "iiswatch.cli.collector",
        "app",
        "The collector: agents send it log lines; it archives and indexes them.",
    ),
    "archive": (
        "iiswatch.cli.archive",
        "app",
        "The forensic archive: verify its hash chains and seals, export original log files.",
    ),
    "alerting": (
        "iiswatch.cli.alerting",
        "app",
        "The alerting service: run it, see its status per rule, replay ingest time.",
    ),
    "incidents": (
        "iiswatch.cli.incidents",
        "app",
        "Incidents (one per attacker): list, show, ack, snooze, resolve.",
    ),
    "silence": (
        "iiswatch.cli.incidents",
        "silence_app",
        "Silences: keep matching alerts out of incidents and tickets until a time.",
    ),
    "respond": (
        "iiswatch.cli.respond",
        "app",
        "Response on the IIS host: block-ip, quarantine, unblock, list, show, sync.",
    ),
    "kibana": (
        "iiswatch.cli.kibana",
        "app",
        "Kibana content: data views, a saved search per rule, dashboards.",
    ),
    "retention": (
        "iiswatch.cli.retention",
        "retention",
        "Delete log indices, dead letters and alerting state older than the configured ages.",
    ),
    "crawlers": (
        "iiswatch.cli.crawlers",
        "app",
        "Verified crawler networks: show them, update them.",
    ),
    "alerts": (
        "iiswatch.cli.alerts",
        "app",
        "Alerts and their delivery: list, show, retry, resolve, test-destination, render.",
    ),
}


def load_command(name: str) -> click.Command:
    """The real click command for `name` (imports its module)."""
    module, attr, _help = LAZY[name]
    obj: Any = getattr(importlib.import_module(module), attr)
    if isinstance(obj, typer.Typer):
        obj.rich_markup_mode = None  # plain click help: rich would be imported for every --help
        # a group even with one command (`kibana export`): get_command would collapse it
        cmd: click.Command = typer.main.get_group(obj)
    else:
        sub = typer.Typer(rich_markup_mode=None)
        sub.command(name=name)(obj)
        cmd = typer.main.get_command(sub)
    cmd.name = name
    return cmd


class _Listed(TyperCommand):
    """Stands in for a command in the root's help listing, without importing it."""

    def __init__(self, name: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help, help=short_help)


class LazyGroup(TyperGroup):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        # Typer coerces an option's value through a pydantic adapter unless it is already a
        # bool; the help and completion flags are None when not given, so every command
        # would import pydantic (~0.1 s) just to read "not given" as False. Say False.
        params = super().get_params(ctx)
        for p in params:
            if getattr(p, "is_flag", False) and p.default is None:
                p.default = False
        return params

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in LAZY:
            return found
        return _Listed(cmd_name, LAZY[cmd_name][2])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if isinstance(cmd, _Listed) and name is not None:
            cmd = load_command(name)
            self.commands[name] = cmd
        return name, cmd, rest
