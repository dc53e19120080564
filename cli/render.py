"""Rich renderings of search results, shared by `iiswatch search` and the demo."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from iiswatch.cli.output import out
from iiswatch.elastic.search import SearchResult
from iiswatch.fields import get_field

_MIN_WIDTH = {"@timestamp": 24, "source.ip": 15}
_HEADER = {
    "http.request.method": "method",
    "http.response.status_code": "status",
    "iiswatch.url.uri": "uri (decoded)",
}
_MAX_WIDTH = {"iiswatch.url.uri": 72}


def events_table(hits: list[dict[str, Any]], fields: list[str], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for f in fields:
        # one line per event: long values (URLs, user agents) are cut, not wrapped
        table.add_column(
            _HEADER.get(f, f),
            no_wrap=True,
            overflow="ellipsis",
            min_width=_MIN_WIDTH.get(f),
            max_width=_MAX_WIDTH.get(f, 48),
        )
    for hit in hits:
        # log content is attacker-controlled: never let it be read as rich markup
        table.add_row(*(escape(_fmt(get_field(hit, f))) for f in fields))
    return table


def top_table(field: str, buckets: list[tuple[Any, int]]) -> Table:
    t = Table(field, "events", title=f"top {field}", title_justify="left")
    for key, n in buckets:
        t.add_row(escape(str(key)), f"{n:,}")
    return t


def histogram_table(interval: str, buckets: list[tuple[str, int]]) -> Table:
    peak = max((n for _, n in buckets), default=0) or 1
    t = Table("time", "events", "", title=f"histogram ({interval})", title_justify="left")
    for key, n in buckets:
        t.add_row(key, f"{n:,}", "█" * max(1, round(30 * n / peak)))
    return t


def print_search_result(
    result: SearchResult,
    fields: list[str] | None,
    *,
    top: str | None = None,
    histogram: str | None = None,
) -> None:
    if fields:
        title = f"{result.total:,} events" + ("" if result.total_exact else "+")
        out.print(events_table(result.hits, fields, title))
    if result.top is not None and top:
        out.print(top_table(top, result.top))
    if result.histogram is not None and histogram:
        out.print(histogram_table(histogram, result.histogram))


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return str(v)
