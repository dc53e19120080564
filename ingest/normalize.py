"""URL decoding for the detection fields (`iiswatch.url.*`).

Attackers hide paths behind escapes: `%2e%2e%2f`, double-encoded `%252e`, IIS's own `%u002e`,
`+` for a space in the query. These pure functions decode once and twice so a rule can match
the decoded form; the raw `url.*` fields are left as logged. Case is kept: the index lowercases
through a normalizer. Nothing here raises on bad input: invalid escapes stay as they are and
invalid UTF-8 becomes U+FFFD.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final
from urllib.parse import unquote

# IIS (and only IIS, among common servers) decodes `%uXXXX`; attackers use it to smuggle dots.
_PERCENT_U: Final = re.compile(r"%[uU]([0-9A-Fa-f]{4})")


def _percent_u(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate cannot be encoded: keep the escape
        return match.group(0)
    return chr(code)


def decode_once(value: str, *, plus_as_space: bool = False) -> str:
    """Percent-decode `value` one time (`%XX` as UTF-8 bytes, and IIS's `%uXXXX`).

    With `plus_as_space` (query strings), `+` becomes a space first, as a form decoder does.
    """
    if plus_as_space and "+" in value:
        value = value.replace("+", " ")
    if "%" not in value:
        return value
    if "%u" in value or "%U" in value:
        value = _PERCENT_U.sub(_percent_u, value)
    return unquote(value, encoding="utf-8", errors="replace")


@lru_cache(maxsize=16_384)
def decode_path(path: str) -> tuple[str, str]:
    """The path decoded once and twice (`+` is a literal plus in a path)."""
    once = decode_once(path)
    return once, decode_once(once)


@lru_cache(maxsize=16_384)
def decode_query(query: str) -> tuple[str, str]:
    """The query decoded once and twice, `+` read as a space each time."""
    once = decode_once(query, plus_as_space=True)
    return once, decode_once(once, plus_as_space=True)


# The keyword fields keep terms up to `ignore_above` (8191) characters; a longer value is not
# indexed at all, so padding a query past it would hide `cmd=whoami` from every rule. A longer
# value is indexed as overlapping windows instead: any run of up to WINDOW - STEP characters
# lies whole inside one of them, so a rule's pattern still finds the command in its window.
MAX_TERM = 8191
WINDOW = 4096
STEP = 2048


def term_windows(value: str) -> str | list[str]:
    """`value` itself when Elasticsearch indexes it whole, else its overlapping windows."""
    if len(value) <= MAX_TERM:
        return value
    starts = list(range(0, len(value) - WINDOW, STEP))
    return [value[i : i + WINDOW] for i in starts] + [value[-WINDOW:]]


def detection_url(path: str | None, query: str | None) -> dict[str, str | list[str]]:
    """The `iiswatch.url` object for a raw path and query (either may be missing).

    `uri` is the once-decoded path, then `?` and the once-decoded query when there is one.
    A value too long to be indexed as one term is a list of windows (`term_windows`).
    """
    out: dict[str, str] = {}
    uri = ""
    if path:
        out["path"], out["path_twice"] = decode_path(path)
        uri = out["path"]
    if query:
        out["query"], out["query_twice"] = decode_query(query)
        uri = f"{uri}?{out['query']}"
    if uri:
        out["uri"] = uri
    return {k: term_windows(v) for k, v in out.items()}
