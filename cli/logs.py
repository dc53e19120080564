"""Commands on log data: `setup`, `parse`, `ingest`, `search`."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import orjson
import typer
from rich.markup import escape
from rich.progress import TextColumn
from rich.table import Table

from iiswatch.cli.options import progress_bar
from iiswatch.cli.output import err, out, print_json, print_json_line
from iiswatch.config import Purpose
from iiswatch.elastic.client import backend_errors, client_for
from iiswatch.elastic.setup import run_setup
from iiswatch.errors import EXIT_BACKEND, UsageError
from iiswatch.ingest.batch import IngestSummary, ingest_files
from iiswatch.ingest.encoding import check_encoding
from iiswatch.ingest.files import expand_inputs
from iiswatch.ingest.host_path import LAYOUT_HINT, host_from_path, hosts_for
from iiswatch.ingest.model import FORMATS, DeadLetter, ParseStats, Source
from iiswatch.ingest.pipeline import parse_file, parse_stream

FORMAT_HELP = f"Log format: {', '.join(FORMATS)}. Detected from the file when omitted."
ENCODING_HELP = (
    "Character encoding of the logs (utf-16, cp1252, ...). Default: UTF-16 is detected "
    "(byte order mark or NUL pattern), anything else is read as UTF-8."
)
TZ_HELP = "IANA time zone of local-time formats (IIS log format); default: this machine's."


def _check_format(fmt: str | None) -> str | None:
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    return fmt


def _preview_host(path: Path) -> str:
    """`parse` previews documents without ids: the path's host when it names one (as
    `ingest` would take it), else this machine's name, as before."""
    return host_from_path(path.absolute()) or socket.gethostname()


def setup(
    json_out: bool = typer.Option(False, "--json", help="Print changes as JSON."),
    shards: int | None = typer.Option(
        None, "--shards", min=1, help="Primary shards of new iiswatch indices (default 1)."
    ),
    replicas: int | None = typer.Option(
        None, "--replicas", min=0,
        help="Replicas of every iiswatch index, existing ones too (default 0; 1+ on a cluster).",
    ),
) -> None:  # fmt: skip
    """Install or update index templates, roles and least-privilege users (idempotent).

    Writes the generated credentials (0600) to the state dir; later commands pick the
    narrowest that fits: `ingest` can only create documents, `search` can only read.
    """
    from iiswatch.elastic.setup import Layout

    es = client_for(Purpose.ADMIN)
    changes = run_setup(es, Layout(shards, replicas))
    if json_out:
        print_json([c.as_dict() for c in changes])
        return
    table = Table("kind", "name", "action", title="iiswatch setup")
    for c in changes:
        style = {"created": "green", "updated": "yellow"}.get(c.action, "dim")
        table.add_row(c.kind, c.name, f"[{style}]{c.action}[/]")
    out.print(table)
    changed = sum(c.action != "unchanged" for c in changes)
    out.print(f"{changed} changed, {len(changes) - changed} unchanged")


def parse(
    files: list[str] = typer.Argument(
        ..., help="Log files, directories or glob patterns; - reads standard input."
    ),
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    tz: str | None = typer.Option(None, "--tz", help=TZ_HELP),
    encoding: str | None = typer.Option(None, "--encoding", help=ENCODING_HELP),
    host_name: str | None = typer.Option(
        None,
        "--host-name",
        help=f"host.name for events that do not log one (default: from a {LAYOUT_HINT} "
        "folder in the path, else this machine's name).",
    ),
) -> None:
    """Print one ECS document per log event as NDJSON; no Elasticsearch needed.

    Header lines are not events. Lines that cannot be parsed go to stderr as JSON with the
    reason (dead letters), and the exit code is 1 if there were any.
    """
    stats = ParseStats()
    fmt, encoding = _check_format(fmt), check_encoding(encoding)
    if files.count("-") > 1:
        raise UsageError("standard input (-) can be read only once", "give - once")
    for item in files:
        if item == "-":
            source = Source(path="-", host_name=host_name or socket.gethostname(), file_id="stdin")
            results = parse_stream(
                sys.stdin.buffer, source, fmt=fmt, tz=tz, stats=stats, encoding=encoding
            )
        else:
            results = (
                r
                for path in expand_inputs([item])
                for r in parse_file(
                    path,
                    host_name=host_name or _preview_host(path),
                    fmt=fmt,
                    tz=tz,
                    stats=stats,
                    encoding=encoding,
                )
            )
        for source, _offset, result in results:
            if isinstance(result, DeadLetter):
                doc = result.to_doc(source)
                sys.stderr.buffer.write(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
            else:
                print_json_line(result)
    sys.stdout.flush()
    if stats.dead_letters:
        err.print(f"{stats.dead_letters} of {stats.lines} lines could not be parsed (on stderr)")
        raise typer.Exit(1)


def ingest(
    inputs: list[str] = typer.Argument(
        ..., help="Files, directories (searched recursively), globs; .gz is read too."
    ),
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    tz: str | None = typer.Option(None, "--tz", help=TZ_HELP),
    encoding: str | None = typer.Option(None, "--encoding", help=ENCODING_HELP),
    host_name: str | None = typer.Option(
        None,
        "--host-name",
        help="The server that wrote the logs; part of each document id. Default: the "
        f"folder below `hosts` in each path ({LAYOUT_HINT}); required when a path names none.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    chunk_size: int = typer.Option(1000, "--chunk-size", min=1, help="Documents per bulk request."),
) -> None:
    """Parse log files and index them into Elasticsearch.

    Each line gets an id from (host, file identity, byte offset): ingesting the same file
    again adds nothing. Unparseable lines are stored in the dead-letter index with the
    reason. Uses the writer credentials, which can create documents and nothing else.

    The host is never guessed: --host-name, or a path laid out like the archive
    (/cases/0412/hosts/web01/W3SVC1/u_ex240514.log is web01's), else exit 2.
    """
    files = expand_inputs(inputs)
    hosts = hosts_for(files, host_name)
    es = client_for(Purpose.WRITER)
    total = sum(p.stat().st_size for p in files)
    show = not json_out and err.is_terminal
    with progress_bar(
        show,
        TextColumn("{task.percentage:>3.0f}%  {task.fields[lines]:,} lines  {task.fields[rate]}"),
    ) as progress:
        task = progress.add_task("ingest", total=total or None, lines=0, rate="")
        seen = {"lines": 0}

        def on_bytes(n: int) -> None:
            seen["lines"] += 1
            if seen["lines"] % 5000 == 0:
                elapsed = progress.tasks[0].elapsed or 1e-9
                progress.update(
                    task, advance=0, lines=seen["lines"], rate=f"{seen['lines'] / elapsed:,.0f}/s"
                )
            progress.advance(task, n)

        with backend_errors(es):
            summary = ingest_files(
                es,
                files,
                host_name=hosts,
                fmt=_check_format(fmt),
                tz=tz,
                encoding=check_encoding(encoding),
                chunk_size=chunk_size,
                on_bytes=on_bytes if show else None,
            )
    if json_out:
        print_json(summary.as_dict())
    else:
        _print_summary(summary, sorted(set(hosts.values())))
    if summary.failed:
        err.print(
            f"[bold red]error:[/] {summary.failed} documents were not stored: "
            f"{escape(next(iter(summary.errors)))}"
        )
        err.print(
            "[bold]hint:[/] fix the cause and run the same ingest again; "
            "lines already stored are not duplicated"
        )
        raise typer.Exit(EXIT_BACKEND)


def _print_summary(s: IngestSummary, hosts: list[str]) -> None:
    table = Table(show_header=False, title="ingest summary", title_justify="left")
    for label, value in [
        ("files", f"{s.files:,}"),
        ("host.name", escape(", ".join(hosts[:5]) + (" ..." if len(hosts) > 5 else ""))),
        ("lines read", f"{s.lines:,}"),
        ("events indexed", f"{s.indexed:,}"),
        ("already present", f"{s.already_present:,}"),
        ("dead-lettered", f"{s.dead_lettered:,}"),
        ("failed", f"{s.failed:,}"),
        ("seconds", f"{s.seconds:.1f} ({s.lines_per_second:,.0f} lines/s)"),
    ]:
        table.add_row(label, value)
    out.print(table)
    for reason, n in sorted(s.dead_letter_reasons.items(), key=lambda kv: -kv[1])[:5]:
        out.print(f"  dead letter x{n}: {escape(reason)}")
