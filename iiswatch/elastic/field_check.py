"""Fields a search names that no index has: Elasticsearch answers 0 hits (or an empty top
table) for them without a word, so ask the field-capabilities API first and warn."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from elasticsearch import Elasticsearch

from iiswatch.elastic.query_lint import QueryWarning


def unknown_fields(es: Elasticsearch, index: str, names: Iterable[str]) -> list[QueryWarning]:
    """One warning per named field that is in no index of `index`, with the nearest known
    names as a suggestion. Wildcard names (`url.*`) are left alone."""
    wanted = [n for n in dict.fromkeys(names) if n and "*" not in n]
    if not wanted:
        return []
    caps = es.field_caps(
        index=index, fields=wanted, ignore_unavailable=True, allow_no_indices=True
    ).body
    if not caps.get("indices"):
        return []  # nothing to search yet: every field is unknown, and that is not the news
    missing = [n for n in wanted if n not in caps.get("fields", {})]
    if not missing:
        return []
    every = es.field_caps(
        index=index, fields="*", ignore_unavailable=True, allow_no_indices=True
    ).body.get("fields", {})
    # suggest fields that hold values, not the objects around them (`url`)
    known = [name for name, types in every.items() if set(types) - {"object", "nested"}]
    warnings = []
    for name in missing:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else "see the field list in README"
        warnings.append(
            QueryWarning(f"no index in {index} has the field {name!r}: it matches nothing", hint)
        )
    return warnings
