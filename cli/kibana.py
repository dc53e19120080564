"""`iiswatch kibana export [--check]`: Kibana saved objects generated from the mappings and
rules (iiswatch.kibana)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from iiswatch.cli.output import err

app = typer.Typer(
    help="Kibana content: data views, a saved search per rule, dashboards.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def export(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="NDJSON file to write; '-' for stdout.")
    ] = Path("docker/kibana/saved-objects.ndjson"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when --out is out of date.")
    ] = False,
    rules: Annotated[
        Path | None, typer.Option(help="Rules folder (default: the installed searches/).")
    ] = None,
) -> None:
    """Generate the saved objects from the mappings and the rules.

    Import them with Kibana's Saved Objects UI or
    `curl -X POST KIBANA/api/saved_objects/_import?overwrite=true -H 'kbn-xsrf: true'
    --form file=@docker/kibana/saved-objects.ndjson` (docker/compose.yaml does this for you).
    """
    from iiswatch.kibana.export import export_text, stale

    text = export_text(rules)
    if str(out) == "-":
        sys.stdout.write(text)
        return
    if check:
        if stale(out, text):
            err.print(f"{out} is out of date with the mappings and rules")
            err.print("hint: run `iiswatch kibana export` and commit the result")
            raise typer.Exit(1)
        err.print(f"{out} is up to date")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    err.print(f"wrote {text.count(chr(10))} saved objects to {out}")
