"""Commands of the agent that runs on an IIS host: `discover` its logs, `run` the shipper."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The agent on an IIS host: find its logs and ship them to a collector.",
    no_args_is_help=True,
)
