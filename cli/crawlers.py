"""`iiswatch crawlers …`: the published networks of search-engine and SEO crawlers, which the
not-found rules leave out (a user agent alone proves nothing; the address does)."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from iiswatch.cli.output import out, print_json

app = typer.Typer(help="Verified crawler networks: show them, update them.", no_args_is_help=True)


@app.command("list")
def list_sources(
    json_out: bool = typer.Option(False, "--json", help="Print the sources as JSON."),
) -> None:
    """Each publisher, how many networks it has, and the file they are read from."""
    import json

    from iiswatch.crawlers import ranges_file

    path = ranges_file()
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = {n: len(s.get("prefixes", [])) for n, s in data["sources"].items()}
    if json_out:
        print_json({"file": str(path), "updated": data.get("updated"), "sources": rows})
        return
    table = Table("source", "networks")
    for name, count in rows.items():
        table.add_row(escape(name), str(count))
    out.print(table)
    out.print(f"from {escape(str(path))} (updated {escape(str(data.get('updated')))})")


@app.command()
def update() -> None:
    """Fetch every publisher's current list (Google, Bing, Apple, Ahrefs) into the state
    directory. A source that cannot be fetched keeps its previous networks."""
    from iiswatch.crawlers import STATE_FILE
    from iiswatch.crawlers import update as do_update
    from iiswatch.paths import state_dir

    for name, result in do_update().items():
        out.print(f"{escape(name)}: {escape(str(result))}")
    out.print(f"written to {escape(str(state_dir() / STATE_FILE))}")
