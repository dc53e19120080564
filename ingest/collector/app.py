"""The collector's HTTP face (Starlette): `POST /v1/batch`, `GET /healthz`, `GET /metrics`.

The order of checks is the order of cost: the token (401) before reading a byte of the body,
a slot for the agent (429, or 503 when all agents together are at the limit), the declared and
the actual size (413) and pace (408) while reading, the decompressed size (413) while
gunzipping, the batch's shape (400), its agent and host against the token's (403); only then
is anything stored. Gunzipping and parsing run in a small pool of their own (one gzip bomb
must not stall the event loop, and many must not take every thread); storing runs in the
default pool: it waits on fsync and Elasticsearch. See `limits.py` for the lock-out defences.
"""

from __future__ import annotations

import hmac
import logging
import time

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from iiswatch.ingest.collector.limits import BodyTooSlow, InFlight, Limits, read_body
from iiswatch.ingest.collector.metrics import Metrics
from iiswatch.ingest.collector.protocol import (
    Batch,
    BatchError,
    TooLarge,
    decompress,
    parse_batch,
)
from iiswatch.ingest.collector.service import Collector, OverlapMismatch, Unavailable
from iiswatch.ingest.collector.tokens import AgentIdentity, TokenStore

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 16 << 20
DECOMPRESSED_RATIO = 8  # a gzip body may expand to 8x the body limit, no more
RETRY_AFTER_SECONDS = 5


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


async def _read_body(request: Request, limits: Limits, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BatchError("Content-Length is not a number")
        if int(declared) > limit:
            raise TooLarge()
    try:  # chunked bodies have no Content-Length: counted as they are read
        return await read_body(request.stream(), limits, limit)
    except OverflowError as e:
        raise TooLarge() from e


def create_app(
    collector: Collector,
    tokens: TokenStore,
    metrics: Metrics,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_decompressed: int | None = None,
    limits: Limits | None = None,
    metrics_token: str | None = None,
) -> Starlette:
    max_plain = max_decompressed or max_body * DECOMPRESSED_RATIO
    limits = limits or Limits()
    inflight = InFlight(limits)
    parse_pool = anyio.CapacityLimiter(limits.parse_workers)

    def decode(body: bytes, encoding: str | None) -> Batch:
        return parse_batch(decompress(body, encoding, max_plain))

    async def batch(request: Request) -> Response:
        identity = tokens.authenticate(_bearer(request))
        if identity is None:
            metrics.batches.labels("", "unauthorized").inc()
            return _error(401, "missing or invalid agent token", **{"WWW-Authenticate": "Bearer"})
        with inflight.slot(identity.name) as refused:
            if refused is not None:
                busy = "busy" if inflight.total >= limits.max_inflight else "throttled"
                metrics.batches.labels(identity.name, busy).inc()
                status = 503 if busy == "busy" else 429
                return _error(status, refused, **{"Retry-After": str(RETRY_AFTER_SECONDS)})
            return await _batch(request, identity)

    async def _batch(request: Request, identity: AgentIdentity) -> Response:
        started = time.perf_counter()
        agent = identity.name
        try:
            body = await _read_body(request, limits, max_body)
            encoding = request.headers.get("content-encoding")
            parsed = await anyio.to_thread.run_sync(decode, body, encoding, limiter=parse_pool)
        except BodyTooSlow as e:
            metrics.batches.labels(agent, "too_slow").inc()
            return _error(408, f"{e}: send the body at a steady pace", Connection="close")
        except TooLarge:
            metrics.batches.labels(agent, "too_large").inc()
            return _error(
                413,
                f"body larger than {max_body} bytes (or {max_plain} decompressed): "
                "send smaller batches",
            )
        except BatchError as e:
            metrics.batches.labels(agent, "malformed").inc()
            return _error(400, e.reason)
        if parsed.model.agent != agent:
            metrics.batches.labels(agent, "forbidden").inc()
            return _error(403, f"this token is for agent {agent!r}, not {parsed.model.agent!r}")
        if not identity.may_send_for(parsed.model.host):
            metrics.batches.labels(agent, "forbidden").inc()
            allowed = ", ".join(sorted(identity.hosts))
            return _error(
                403,
                f"agent {agent!r} may send logs of {allowed}, not of {parsed.model.host!r}: "
                f"`iiswatch collector add-agent {agent} --replace --host ...` binds more hosts",
            )
        try:
            result = await run_in_threadpool(collector.ingest, identity, parsed)
        except BatchError as e:
            metrics.batches.labels(agent, "malformed").inc()
            return _error(400, e.reason)
        except OverlapMismatch as e:
            metrics.batches.labels(agent, "overlap_mismatch").inc()
            return _error(409, str(e))
        except Unavailable as e:
            metrics.batches.labels(agent, f"{e.where}_unavailable").inc()
            return _error(503, e.reason, **{"Retry-After": str(RETRY_AFTER_SECONDS)})
        metrics.batches.labels(agent, "acked").inc()
        metrics.last_batch.labels(agent).set(time.time())
        metrics.duration.observe(time.perf_counter() - started)
        return JSONResponse({"acked": parsed.model.batch_id, **result.as_dict()})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def prometheus(request: Request) -> Response:
        presented = _bearer(request) or ""
        if metrics_token and not hmac.compare_digest(presented.encode(), metrics_token.encode()):
            return _error(401, "/metrics needs the metrics token", **{"WWW-Authenticate": "Bearer"})
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    from iiswatch.respond.collector_routes import action_routes

    return Starlette(
        routes=[
            Route("/v1/batch", batch, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
            *action_routes(collector, tokens),  # response: /v1/actions, /v1/evidence
        ]
    )
