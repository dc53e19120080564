"""What several commands share: the common options, the progress bar, the time span.

Defaults are not resolved here: an option left out is None, and the config loader
(iiswatch.settings) or the rule loader decides, so environment variables are read in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer

from iiswatch.errors import UsageError

if TYPE_CHECKING:  # imported when used: `--help` of every command loads this module
    from rich.progress import Progress, ProgressColumn

ALERTING_CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="Alerting config (default: $IISWATCH_ALERTING_CONFIG or "
    "~/.config/iiswatch/alerting.toml).",
)
RULES_DIR = typer.Option(
    None,
    "--rules-dir",
    help="Folder of rule files (default: $IISWATCH_RULES_DIR, else the searches/ installed "
    "with iiswatch).",
)
RULE_REFS = typer.Option(None, "--rule", "-r", help="Rule id, id prefix or name; repeatable.")
JSON = typer.Option(False, "--json", help="Print JSON.")


def progress_bar(show: bool, *columns: ProgressColumn | str) -> Progress:
    """A bar on stderr that disappears when done; `columns` go between the bar and the
    elapsed time (default: `done/total`)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from iiswatch.cli.output import err

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *(columns or (TextColumn("{task.completed}/{task.total}"),)),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
        transient=True,
    )


def time_span(since: str | None, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """`--since`, or `--from` [`--to`, default now], as a start and an end."""
    from iiswatch.elastic.search import TimeRange

    rng = TimeRange.from_options(since, start, end)
    if rng.start is None:
        raise UsageError("a start time is needed", "use --since 30d or --from ISO [--to ISO]")
    return rng.start, rng.end or datetime.now(UTC)


def duration_arg(text: str) -> timedelta:
    """A duration typed on the command line, or a usage error saying how to write one."""
    from iiswatch.times import DURATION_HINT, parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise UsageError(f"cannot read the duration {text!r}: {e}", DURATION_HINT) from None


def time_arg(text: str) -> datetime:
    """A time typed on the command line, or a usage error saying how to write one."""
    from iiswatch.times import TIME_HINT, parse_time

    try:
        return parse_time(text)
    except ValueError as e:
        raise UsageError(f"cannot read the time {text!r}: {e}", TIME_HINT) from None
