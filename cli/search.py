"""`iiswatch search`: a table of events, top values, a histogram, a count, or every hit.

Nothing here answers silently wrong: the query is read before it is sent (Lucene traps,
unknown fields), Elasticsearch's refusal comes back with its root cause (exit 2), and flags
that cannot go together are a usage error rather than one of them being ignored.
"""

from __future__ import annotations

import typer

from iiswatch.errors import UsageError

# kept here (not imported from iiswatch.elastic.search) so `search --help` loads no client
DEFAULT_FIELDS = (
    "@timestamp",
    "source.ip",
    "http.request.method",
    "iiswatch.url.uri",
    "http.response.status_code",
    "user_agent.original",
)
DEFAULT_LIMIT = 20


def check_flags(
    *,
    count_only: bool,
    export_all: bool,
    json_out: bool,
    top: str | None,
    histogram: str | None,
    fields: str | None,
    limit: int,
    oldest_first: bool,
) -> None:
    """Usage errors for flags that contradict each other, instead of ignoring one."""
    pairs: list[tuple[str, bool, str, bool]] = [
        ("--count", count_only, "--top", top is not None),
        ("--count", count_only, "--histogram", histogram is not None),
        ("--count", count_only, "--fields", fields is not None),
        ("--count", count_only, "--limit", limit != DEFAULT_LIMIT),
        ("--count", count_only, "--oldest-first", oldest_first),
        ("--count", count_only, "--all", export_all),
        ("--all", export_all, "--top", top is not None),
        ("--all", export_all, "--histogram", histogram is not None),
        ("--all", export_all, "--limit", limit != DEFAULT_LIMIT),
    ]
    for a, has_a, b, has_b in pairs:
        if has_a and has_b:
            raise UsageError(
                f"{a} cannot be combined with {b}",
                {
                    "--count": "--count prints one number; drop the other option",
                    "--all": "--all exports every hit as NDJSON; run --top/--histogram separately",
                }[a],
            )


def _warn(message: str, hint: str) -> None:
    from iiswatch.cli.output import print_message

    print_message("warning", message, style="bold yellow")
    print_message("hint", hint)


def search(
    query: str = typer.Argument(
        "*",
        help="Lucene query string over ECS fields, e.g. "
        "'iiswatch.url.query:*whoami* AND http.response.status_code:200'; with --kql, "
        "Kibana's query language.",
    ),
    kql: bool = typer.Option(
        False, "--kql", help="Read the query as Kibana's KQL (paste from Kibana's search bar)."
    ),
    since: str | None = typer.Option(None, "--since", help="Look back this far: 15m, 2h, 7d."),
    start: str | None = typer.Option(None, "--from", help="Start time, ISO 8601 (inclusive)."),
    end: str | None = typer.Option(None, "--to", help="End time, ISO 8601 (exclusive)."),
    fields: str | None = typer.Option(
        None,
        "--fields",
        help=f"Comma-separated fields to show (default {','.join(DEFAULT_FIELDS)}).",
    ),
    top: str | None = typer.Option(None, "--top", help="Show the top values of this field."),
    histogram: str | None = typer.Option(
        None,
        "--histogram",
        help="Show a time histogram with this bucket size, e.g. 1m, 1h (empty buckets too).",
    ),
    limit: int = typer.Option(
        DEFAULT_LIMIT, "--limit", "-n", min=0, help="Number of events to show (at most 10,000)."
    ),
    oldest_first: bool = typer.Option(
        False, "--oldest-first", help="List events oldest first (default: newest first)."
    ),
    count_only: bool = typer.Option(False, "--count", help="Print only the exact number of hits."),
    export_all: bool = typer.Option(
        False,
        "--all",
        help="Export every hit as NDJSON, oldest first (point-in-time paging, no 10,000 cap); "
        "progress on stderr.",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print hits as NDJSON; with --top/--histogram one JSON object with hits and "
        "aggregations.",
    ),
    index: str = typer.Option("iis-access-*,iis-error-*", "--index", help="Indices to search."),
) -> None:
    """Search the logs: a table of events, top values, a histogram, a count, or every hit.

    Examples:\n
      iiswatch search 'url.extension:aspx AND http.request.method:GET' --top source.ip\n
      iiswatch search 'iiswatch.url.query:*cmd.exe*' --since 1d --histogram 1h\n
      iiswatch search --kql 'url.path: /uploads/* and source.ip: 198.51.100.8' --all\n
      iiswatch search 'http.response.status_code:404' --count
    """
    check_flags(
        count_only=count_only,
        export_all=export_all,
        json_out=json_out,
        top=top,
        histogram=histogram,
        fields=fields,
        limit=limit,
        oldest_first=oldest_first,
    )
    # heavy imports only once a search really runs (`--help` stays fast)
    from iiswatch.cli.output import print_json, print_line
    from iiswatch.config import Purpose
    from iiswatch.elastic.client import client_for
    from iiswatch.elastic.search import Query, TimeRange, count, histogram_interval

    q = Query(query, kql=kql)
    rng = TimeRange.from_options(since, start, end)
    if histogram:
        histogram_interval(histogram)  # a bad interval is a usage error before any request
    field_list = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    named = _read_query(q)
    es = client_for(Purpose.READER)
    _check_fields(es, index, [*named, *([top] if top else []), *(field_list or [])])

    if count_only:
        n = count(es, q, rng, index=index)
        if json_out:
            print_json({"count": n})
        else:
            print_line(str(n))
        return
    if export_all:
        _export(es, q, rng, index, field_list)
        return

    from iiswatch.cli.output import print_json_line
    from iiswatch.cli.render import print_search_result
    from iiswatch.elastic.search import run_search

    shown = field_list or list(DEFAULT_FIELDS)
    result = run_search(
        es,
        q,
        rng,
        index=index,
        fields=field_list if json_out else shown,
        limit=limit,
        top=top,
        histogram=histogram,
        oldest_first=oldest_first,
    )
    if json_out:
        if top or histogram:
            print_json(result.as_dict())
        else:
            for hit in result.hits:
                print_json_line(hit)
        return
    print_search_result(result, shown if limit else None, top=top, histogram=histogram)


def _read_query(q: object) -> list[str]:
    """Warn about the query's traps before it is sent; return the fields it names."""
    from iiswatch.elastic.search import Query

    assert isinstance(q, Query)
    if q.kql:
        from iiswatch.elastic.kql import translate

        return translate(q.text).fields  # a KqlError (exit 2) names the column
    from iiswatch.elastic.query_lint import read_lucene

    reading = read_lucene(q.text)
    for w in reading.warnings:
        _warn(w.message, w.hint)
    return reading.fields


def _check_fields(es: object, index: str, names: list[str]) -> None:
    from elasticsearch import ApiError, TransportError

    from iiswatch.elastic.field_check import unknown_fields

    try:
        warnings = unknown_fields(es, index, names)  # type: ignore[arg-type]
    except (ApiError, TransportError):
        return  # the search itself will report the backend problem, with its exit code
    for w in warnings:
        _warn(w.message, w.hint)


def _export(es: object, q: object, rng: object, index: str, fields: list[str] | None) -> None:
    import sys
    import time

    from iiswatch.cli.output import print_json_line
    from iiswatch.elastic.export import export_hits

    started = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= 1.0:
            last[0] = now
            rate = done / max(now - started, 1e-9)
            sys.stderr.write(f"exported {done:,} of {total:,} events ({rate:,.0f}/s)\n")
            sys.stderr.flush()

    n = 0
    for hit in export_hits(es, q, rng, index=index, fields=fields, on_page=progress):  # type: ignore[arg-type]
        print_json_line(hit)
        n += 1
    sys.stdout.flush()
    if n == 0:
        sys.stderr.write("exported 0 events\n")
