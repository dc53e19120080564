"""Building Elasticsearch clients from a Connection, and turning the client's exceptions
into errors a person can act on (exit code 3: the backend could not be used)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    TransportError,
)
from elasticsearch.serializer import OrjsonSerializer

from iiswatch.config import Connection, Purpose, Settings, connection_for, split_urls
from iiswatch.errors import BackendUnavailable


def make_client(conn: Connection) -> Elasticsearch:
    creds = conn.credentials
    kwargs: dict[str, object] = {
        "request_timeout": conn.request_timeout,
        "retry_on_timeout": True,
        "max_retries": 3,
        # orjson is several times faster than the stdlib encoder on bulk bodies
        "serializers": {"application/json": OrjsonSerializer()},
    }
    if conn.ca_certs:
        kwargs["ca_certs"] = str(conn.ca_certs)
    if creds.api_key:
        kwargs["api_key"] = creds.api_key
    elif creds.username:
        kwargs["basic_auth"] = (creds.username, creds.resolved_password() or "")
    # several nodes: the client round-robins over them, and a request that fails to connect
    # (a node stopped) is retried on the next one, which is dead-marked for a while
    return Elasticsearch(conn.urls, **kwargs)  # type: ignore[arg-type]


def client_for(purpose: Purpose, settings: Settings | None = None) -> Elasticsearch:
    conn = connection_for(purpose, settings)
    client = make_client(conn)
    # remembered for error messages; never the secret itself
    client._iiswatch_conn = conn  # type: ignore[attr-defined]
    return client


def describe(client: Elasticsearch) -> str:
    conn: Connection | None = getattr(client, "_iiswatch_conn", None)
    if conn is None:
        return "Elasticsearch"
    return (
        f"Elasticsearch at {without_userinfo(conn.url)} ({conn.source}, {conn.credentials.label})"
    )


def without_userinfo(url: str) -> str:
    """`url` (or comma-separated URLs) without a `user:password@` part: error messages must
    never show a secret."""
    return ",".join(_one_without_userinfo(u) for u in split_urls(url)) or url


def _one_without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


@contextmanager
def backend_errors(client: Elasticsearch | None = None) -> Iterator[None]:
    """Translate the client's exceptions raised inside the block into BackendUnavailable."""
    what = describe(client) if client is not None else "Elasticsearch"
    try:
        yield
    except AuthenticationException as e:
        raise BackendUnavailable(
            f"{what} rejected the credentials (401)",
            "check the password or API key; for the local node run `iiswatch setup` again",
        ) from e
    except AuthorizationException as e:
        reason = _reason(e)
        raise BackendUnavailable(
            f"{what} refused the request (403): {reason}",
            "these credentials lack the privilege; `iiswatch setup` defines the roles",
        ) from e
    except ApiError as e:
        raise BackendUnavailable(
            f"{what} answered {e.meta.status}: {_reason(e)}", "see the Elasticsearch log"
        ) from e
    except TransportError as e:
        raise BackendUnavailable(
            f"cannot reach {what}: {e.message}",
            "is it running? `iiswatch es status` for the local node",
        ) from e


def _reason(e: ApiError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("reason") or err.get("type") or e.message)
    return str(e.message)


def search_versioned(
    es: Elasticsearch, index: str, query: dict[str, Any], limit: int, sort: list[Any]
) -> list[tuple[dict[str, Any], int, int]]:
    """A search's hits with what a conditional write back needs: (source, seq_no, primary
    term). A missing index is no hits."""
    with backend_errors(es):
        r = es.search(
            index=index,
            query=query,
            size=limit,
            sort=sort,
            seq_no_primary_term=True,
            ignore_unavailable=True,
        )
    return [
        (dict(h["_source"]), int(h["_seq_no"]), int(h["_primary_term"])) for h in r["hits"]["hits"]
    ]
