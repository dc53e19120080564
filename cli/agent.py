"""Commands of the agent that runs on an IIS host: `discover` its logs, `run` the shipper.

`python -m iiswatch.cli.agent` runs these commands without loading the rest of the CLI (the
Elasticsearch client above all), which is how a Windows service should start the agent: it
keeps the agent's memory well under its 60 MB budget.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import traceback
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from iiswatch.cli.output import err, out, print_json
from iiswatch.environment import env
from iiswatch.errors import IiswatchError
from iiswatch.ingest.agent.config import InputConfig, load_agent_config
from iiswatch.ingest.agent.discover import Discovery, agent_config, discover, render_agent_config

app = typer.Typer(
    help="The agent on an IIS host: find its logs and ship them to a collector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("discover")
def discover_cmd(
    config_file: Path | None = typer.Option(
        None,
        "--config-file",
        help=r"IIS's applicationHost.config (default: %windir%\System32\inetsrv\config\...).",
    ),
    httperr_dir: str | None = typer.Option(
        None,
        "--httperr-dir",
        help="HTTP.sys ErrorLoggingDir when it is not the default (read from the registry on "
        "Windows).",
    ),
    write_config: Path | None = typer.Option(
        None, "--write-config", help="Write an agent config (TOML) that follows these logs."
    ),
    collector: str | None = typer.Option(None, "--collector", help="Collector URL to write."),
    name: str | None = typer.Option(None, "--name", help="Agent name to write."),
    json_out: bool = typer.Option(False, "--json", help="Print what was found as JSON."),
) -> None:
    """Find where IIS writes its logs: sites, folders, formats, custom fields.

    Reads applicationHost.config (site defaults, each site's overrides, central logging) and
    adds HTTP.sys's HTTPERR folder. Works on any OS with --config-file.
    """
    found = discover(config_file, httperr_parent=httperr_dir)
    if json_out:
        print_json(
            {
                "config_file": found.config_file,
                "central_mode": found.central_mode,
                "sites": [{"id": i, "name": n} for i, n in found.sites],
                "sources": [
                    dataclasses.asdict(s) | {"glob": s.glob, "followable": s.followable}
                    for s in found.sources
                ],
                "unresolved": list(found.unresolved),
            }
        )
    else:
        _print_discovery(found)
    if write_config is not None:
        config = agent_config(found, collector=collector, name=name)
        write_config.write_text(render_agent_config(found, config), encoding="utf-8")
        err.print(f"wrote {escape(str(write_config))} ({len(config['inputs'])} inputs)")


_MODES = {
    "Site": "one log per site",
    "CentralW3C": "one central W3C log for all sites",
    "CentralBinary": "one central binary log for all sites",
}


def _print_discovery(found: Discovery) -> None:
    table = Table(
        "site",
        "name",
        "format",
        "logged",
        "folder",
        "period",
        "custom fields",
        "notes",
        title=f"IIS logs in {escape(found.config_file)}: {_MODES.get(found.central_mode, '?')}",
        title_justify="left",
    )
    for s in found.sources:
        logged = "[green]yes[/]" if s.followable else "[red]no[/]"
        fields = ", ".join(f"{f.name}={f.source_type}:{f.source}" for f in s.custom_fields)
        table.add_row(
            s.label,
            escape(s.site_name or ""),
            s.log_format,
            logged,
            escape(s.glob),
            s.period + (" (local time)" if s.local_time_rollover else ""),
            escape(fields),
            escape("; ".join(s.notes)),
        )
    out.print(table)
    if found.central_mode != "Site":
        names = ", ".join(f"{i} {n}" for i, n in found.sites)
        out.print(f"sites sharing the central log: {escape(names)}")
    if found.unresolved:
        err.print(f"[yellow]unresolved variables:[/] {escape(', '.join(found.unresolved))}")


@app.command("run")
def run_cmd(
    collector: str | None = typer.Option(
        None, "--collector", help="Collector URL, e.g. https://collector:8443."
    ),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="File holding this agent's token (one line)."
    ),
    paths: list[str] | None = typer.Option(
        None, "--path", help="Glob of log files to follow; repeat for more. Replaces the config's."
    ),
    state: Path | None = typer.Option(None, "--state", help="Directory for the checkpoint."),
    ca: Path | None = typer.Option(
        None, "--ca", help="CA certificate(s) to verify the collector with (PEM)."
    ),
    name: str | None = typer.Option(None, "--name", help="Agent name (default: host name)."),
    host_name: str | None = typer.Option(
        None, "--host-name", help="host.name of the events (default: the agent name)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Agent config (TOML); flags override it."
    ),
    flush_logbuffer: float | None = typer.Option(
        None,
        "--flush-logbuffer",
        help="Run `netsh http flush logbuffer` every N seconds (Windows; 0: off).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every batch."),
    insecure: bool | None = typer.Option(
        None, "--insecure", help="Allow plain http to a collector that is not on loopback."
    ),
) -> None:
    """Follow IIS log files and ship every line to a collector, until stopped.

    Resumes where the collector last acknowledged after any stop or crash; while the
    collector is unreachable it waits and retries, and loses nothing.
    """
    from iiswatch.ingest.agent.run import Agent, install_stop_handlers

    overrides = {
        "collector": collector,
        "token_file": token_file,
        "state": state,
        "ca": ca,
        "name": name,
        "host": host_name,
        "flush_logbuffer_seconds": flush_logbuffer,
        "insecure": insecure,
        "inputs": [InputConfig(path=p) for p in paths] if paths else None,
    }
    cfg = load_agent_config(config, overrides)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        logging.getLogger("urllib3").setLevel(logging.WARNING)
    stop = threading.Event()
    install_stop_handlers(stop)
    Agent(cfg, stop=stop).run()


def main() -> None:
    """Entry point of `python -m iiswatch.cli.agent` (errors as in `iiswatch`)."""
    try:
        app(standalone_mode=True)
    except IiswatchError as e:
        if env("IISWATCH_DEBUG"):
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {escape(e.message)}")
        if e.hint:
            err.print(f"[bold]hint:[/] {escape(e.hint)}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
