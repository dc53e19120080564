"""The collector's HTTP face (Starlette): `POST /v1/batch`, `GET /healthz`, `GET /metrics`.

The order of checks is the order of cost: the token (401) before reading a byte of the body,
the declared and the actual size (413) while reading, the decompressed size (413) while
gunzipping, the batch's shape (400), its agent name against the token's (403); only then is
anything stored. Storing runs in a worker thread: it waits on fsync and Elasticsearch.
"""

from __future__ import annotations

import logging
import time

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from iiswatch.ingest.collector.metrics import Metrics
from iiswatch.ingest.collector.protocol import BatchError, TooLarge, decompress, parse_batch
from iiswatch.ingest.collector.service import Collector, Unavailable
from iiswatch.ingest.collector.tokens import TokenStore

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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BatchError("Content-Length is not a number")
        if int(declared) > limit:
            raise TooLarge()
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:  # chunked bodies have no Content-Length: count as we read
            raise TooLarge()
    return bytes(body)


def create_app(
    collector: Collector,
    tokens: TokenStore,
    metrics: Metrics,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_decompressed: int | None = None,
) -> Starlette:
    max_plain = max_decompressed or max_body * DECOMPRESSED_RATIO

    async def batch(request: Request) -> Response:
        started = time.perf_counter()
        agent = tokens.authenticate(_bearer(request))
        if agent is None:
            metrics.batches.labels("", "unauthorized").inc()
            return _error(401, "missing or invalid agent token", **{"WWW-Authenticate": "Bearer"})
        try:
            body = await _read_body(request, max_body)
            parsed = parse_batch(
                decompress(body, request.headers.get("content-encoding"), max_plain)
            )
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
        try:
            result = await run_in_threadpool(collector.ingest, agent, parsed)
        except BatchError as e:
            metrics.batches.labels(agent, "malformed").inc()
            return _error(400, e.reason)
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
