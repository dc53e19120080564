"""`iiswatch archive`: check the collector's forensic archive and get original files back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from iiswatch.cli.output import err, out, print_json, visible
from iiswatch.errors import EXIT_FINDINGS

app = typer.Typer(
    help="The forensic archive: verify its hash chains and seals, export original log files.",
    no_args_is_help=True,
)

KEY_HELP = "The collector's archive key (default: the iiswatch state dir)."


def _key_path(key: Path | None) -> Path:
    from iiswatch.ingest.archive.keys import default_key_path

    return key or default_key_path()


@app.command()
def verify(
    archive: Path = typer.Argument(..., help="The archive directory."),
    key: Path | None = typer.Option(None, "--key", help=KEY_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    offline: bool = typer.Option(
        False,
        "--offline",
        help="Skip the check against the witness in Elasticsearch (then a rolled-back or "
        "deleted folder goes unnoticed).",
    ),
) -> None:
    """Recompute every chunk's hash chain and check every seal; then compare the archive
    with what the collector witnessed in Elasticsearch (reader credentials).

    Exit 0 when intact; 1 naming each segment and byte range of the original file that was
    changed, cut, removed, reordered or re-sealed without the key, and each file folder that
    was rolled back or deleted; 3 when Elasticsearch cannot be asked (see --offline).
    """
    from iiswatch.ingest.archive.keys import load_key
    from iiswatch.ingest.archive.verify import verify_archive

    if not archive.is_dir():
        from iiswatch.errors import UsageError

        raise UsageError(f"no archive at {archive}", "give the collector's --archive directory")
    archive_key = load_key(_key_path(key), archive=archive)
    report = verify_archive(archive, archive_key)
    if offline:
        err.print(
            "[yellow]offline:[/] not compared with the witness in Elasticsearch; a rolled-back "
            "or deleted file or host folder would pass"
        )
    else:
        from iiswatch.config import Purpose
        from iiswatch.elastic.client import backend_errors, client_for
        from iiswatch.ingest.archive.witness import check_witness, witnessed_files

        es = client_for(Purpose.READER)
        with backend_errors(es):
            witnessed = witnessed_files(es, archive_key.key_id)
        report.problems += check_witness(archive, witnessed)
    if json_out:
        print_json(report.as_dict())
    else:
        for p in report.problems:
            out.print(f"[bold red]FAIL[/] {escape(str(p))}")
        verdict = (
            "[green]intact[/]" if report.ok else f"[bold red]{len(report.problems)} problems[/]"
        )
        err.print(
            f"{report.files} files, {report.segments} segments ({report.sealed} sealed), "
            f"{report.chunks:,} chunks, {report.bytes:,} bytes: {verdict}"
        )
    if not report.ok:
        raise typer.Exit(EXIT_FINDINGS)


@app.command("ls")
def list_cmd(
    archive: Path = typer.Argument(..., help="The archive directory."),
    host: str | None = typer.Option(None, "--host", help="Only this host."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List the archived files: host, site, file id, the paths seen, the byte ranges held."""
    from iiswatch.ingest.archive.export import list_files

    files = list_files(archive, host)
    if json_out:
        print_json(
            [
                {
                    "host": f.host,
                    "site": f.site,
                    "file_id": f.file_id,
                    "paths": list(f.paths),
                    "ranges": [list(r) for r in f.ranges],
                }
                for f in files
            ]
        )
        return
    table = Table("host", "site", "file id", "path", "bytes held")
    for f in files:
        ranges = ", ".join(f"{a}-{b}" for a, b in f.ranges)
        paths = "\n".join(visible(p) for p in f.paths)  # agent-supplied: no terminal escapes
        table.add_row(f.host, f.site, f.file_id, escape(paths), ranges)
    out.print(table)


@app.command()
def export(
    archive: Path = typer.Argument(..., help="The archive directory."),
    host: str = typer.Option(..., "--host", help="The host the file comes from."),
    file: str = typer.Option(..., "--file", help="File name (u_ex240514.log), path or file id."),
    site: str | None = typer.Option(None, "--site", help="Site folder, when names repeat."),
    start: int = typer.Option(0, "--from", min=0, help="First byte offset (default 0)."),
    end: int | None = typer.Option(None, "--to", min=0, help="End offset, exclusive."),
    out_file: Path | None = typer.Option(None, "--out", help="Write here (default stdout)."),
) -> None:
    """Write the original file's bytes, exactly as IIS wrote them.

    Each chunk is checked against its hash on the way out; a byte range the archive does not
    hold is an error naming it (nothing is written to --out then).
    """
    from iiswatch.ingest.archive.export import export_file, find_file

    f = find_file(archive, host, file, site)
    if out_file is None:
        n = export_file(f, sys.stdout.buffer, start, end)
        sys.stdout.flush()
    else:
        tmp = out_file.with_name(out_file.name + ".partial")
        try:
            with tmp.open("wb") as fh:
                n = export_file(f, fh, start, end)
            os.replace(tmp, out_file)
        finally:
            tmp.unlink(missing_ok=True)
    err.print(
        f"exported {n:,} bytes of {escape(f.host)}/{escape(f.file_id)} "
        f"({escape(', '.join(f.paths))})"
    )
