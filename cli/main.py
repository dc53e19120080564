"""The `iiswatch` command: one Typer app, one sub-app per noun, thin commands that call the
library and print. Errors become two lines (what went wrong, what to do) and an exit code:
0 ok, 1 findings, 2 usage, 3 a backend could not be reached."""

from __future__ import annotations

import os
import sys

import typer

from iiswatch import __version__
from iiswatch.cli.lazy import LazyGroup
from iiswatch.environment import env
from iiswatch.errors import EXIT_BACKEND, IiswatchError

# Sub-apps and commands are listed in cli/lazy.py and imported only when they run, so
# `--help` answers at once.
app = typer.Typer(
    name="iiswatch",
    cls=LazyGroup,
    help=(
        "Detection pipeline for Microsoft IIS logs on Elasticsearch.\n\n"
        "Start here: `iiswatch es up` (a local Elasticsearch), `iiswatch setup`, then "
        "`iiswatch ingest LOGS... --host-name HOST` and `iiswatch search 'url.extension:aspx'`."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: rich costs more to import than the whole answer
    pretty_exceptions_enable=False,  # we print our own one-line errors; never locals
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
        sys.stderr.write("interrupted\n")
        sys.exit(130)


def _report(e: IiswatchError, code: int) -> None:
    from iiswatch.cli.output import print_message

    if env("IISWATCH_DEBUG"):
        import traceback

        traceback.print_exc()
    print_message("error", e.message, style="bold red")
    if e.hint:
        print_message("hint", e.hint)
    sys.exit(code if code else EXIT_BACKEND)


if __name__ == "__main__":
    main()
