"""The `iiswatch` command: one Typer app, one sub-app per noun, thin commands that call the
library and print. Errors become two lines (what went wrong, what to do) and an exit code:
0 ok, 1 findings, 2 usage, 3 a backend could not be reached."""

from __future__ import annotations

import os
import sys
import traceback

import typer
from rich.markup import escape

from iiswatch import __version__
from iiswatch.cli import agent as agent_cli
from iiswatch.cli import alerting as alerting_cli
from iiswatch.cli import alerts as alerts_cli
from iiswatch.cli import archive as archive_cli
from iiswatch.cli import collector as collector_cli
from iiswatch.cli import demo as demo_cli
from iiswatch.cli import es as es_cli
from iiswatch.cli import kibana as kibana_cli
from iiswatch.cli import logs as logs_cli
from iiswatch.cli import retention as retention_cli
from iiswatch.cli import rules as rules_cli
from iiswatch.cli.output import err
from iiswatch.errors import EXIT_BACKEND, IiswatchError

app = typer.Typer(
    name="iiswatch",
    help=(
        "Detection pipeline for Microsoft IIS logs on Elasticsearch.\n\n"
        "Start here: `iiswatch es up` (a local Elasticsearch), `iiswatch setup`, then "
        "`iiswatch ingest LOGS...` and `iiswatch search 'url.extension:aspx'`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # we print our own one-line errors; never locals
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(es_cli.app, name="es")
app.add_typer(rules_cli.app, name="rules")
app.add_typer(agent_cli.app, name="agent")
app.add_typer(collector_cli.app, name="collector")
app.add_typer(archive_cli.app, name="archive")
app.add_typer(alerting_cli.app, name="alerting")
app.add_typer(alerts_cli.app, name="alerts")
app.add_typer(kibana_cli.app, name="kibana")
logs_cli.register(app)
app.command()(demo_cli.demo)
app.command()(retention_cli.retention)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"iiswatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    if debug:
        os.environ["IISWATCH_DEBUG"] = "1"


def main() -> None:
    try:
        app(standalone_mode=True)
    except IiswatchError as e:
        _report(e, e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def _report(e: IiswatchError, code: int) -> None:
    if os.environ.get("IISWATCH_DEBUG"):
        traceback.print_exc()
    err.print(f"[bold red]error:[/] {escape(e.message)}")
    if e.hint:
        err.print(f"[bold]hint:[/] {escape(e.hint)}")
    sys.exit(code if code else EXIT_BACKEND)


if __name__ == "__main__":
    main()
