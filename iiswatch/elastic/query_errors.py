"""Elasticsearch's refusal of a search (HTTP 400), told as what it is: a problem with the
query or the options (exit 2), with ES's root cause and the column it points at, rather than
`all shards failed` and the exit code of an unreachable backend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import BadRequestError

from iiswatch.errors import UsageError

_COLUMN = re.compile(r"line \d+, column (\d+)")


class QueryError(UsageError):
    """Elasticsearch could not run the query as given (exit 2)."""

    def __init__(self, message: str, hint: str | None = None, column: int | None = None) -> None:
        super().__init__(message, hint)
        self.column = column


def _deepest_reasons(err: dict[str, Any]) -> list[str]:
    """The reasons along the caused_by chain, outermost first."""
    reasons: list[str] = []
    cur: Any = err
    while isinstance(cur, dict):
        if cur.get("reason"):
            reasons.append(str(cur["reason"]))
        cur = cur.get("caused_by")
    return reasons


def root_cause(body: Any) -> tuple[str, str]:
    """(type, reason) of the failure that matters in a 400 body: the first failed shard's
    deepest cause (where the parser's line and column are), else the first root cause."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "", str(body)
    candidates: list[dict[str, Any]] = []
    for shard in err.get("failed_shards") or []:
        if isinstance(shard.get("reason"), dict):
            candidates.append(shard["reason"])
    candidates += [c for c in err.get("root_cause") or [] if isinstance(c, dict)]
    candidates.append(err)
    for c in candidates:
        reasons = _deepest_reasons(c)
        if reasons:
            # the outer reason says what failed, the inner one why (and where)
            inner = reasons[-1]
            outer = reasons[0]
            text = inner if outer == inner or outer in inner else f"{outer}: {inner}"
            return str(c.get("type", "")), text
    return str(err.get("type", "")), str(err.get("reason", ""))


def _hint(kind: str, reason: str, query: str, column: int | None) -> str:
    low = reason.lower()
    if column is not None and query:
        return f"check the query near the caret:\n{query}\n{' ' * (column - 1)}^"
    if "result window is too large" in low:
        return "show fewer events (-n), or export every hit with `iiswatch search --all`"
    if "fielddata is disabled" in low or "text fields are not optimised" in low:
        return "--top needs a keyword field, e.g. url.path or source.ip (not a text field)"
    if "parse" in kind or "parse" in low:
        return "check the query syntax (Lucene); for Kibana's query language pass --kql"
    return "check the query and the options"


def _raise(kind: str, reason: str, query: str, cause: Exception | None = None) -> None:
    # the Lucene parser appends a long "Was expecting one of:" list; the first line says it
    reason = reason.strip().splitlines()[0] if reason.strip() else "no reason given"
    m = _COLUMN.search(reason)
    column = int(m.group(1)) if m else None
    where = f" at column {column}" if column else ""
    raise QueryError(
        f"Elasticsearch cannot run the search{where}: {reason}",
        _hint(kind, reason, query, column),
        column,
    ) from cause


def check_shards(resp: dict[str, Any], query: str = "") -> None:
    """A search that failed on some shards answers 200 with fewer hits (with several
    indices, a query Lucene cannot parse comes back as 0 hits this way). Never pass that
    off as the answer: raise with the first shard's reason."""
    shards = resp.get("_shards") or {}
    if not shards.get("failed"):
        return
    failures = shards.get("failures") or [{}]
    kind, reason = root_cause({"error": {"failed_shards": failures}})
    _raise(kind, reason or f"{shards['failed']} of {shards.get('total')} shards failed", query)


@contextmanager
def query_errors(query: str = "") -> Iterator[None]:
    """Turn a 400 from Elasticsearch inside the block into a QueryError (exit 2)."""
    try:
        yield
    except BadRequestError as e:
        kind, reason = root_cause(e.body)
        _raise(kind, reason or str(e.message), query, e)
