"""The collector's side of response: an agent polls for its host's pending actions, reports
what it did, and uploads a quarantined file's bytes as evidence into the archive (same hash
chain and seals as the logs, so `iiswatch archive verify` covers it and `archive export`
gives it back). Every route takes the agent's bearer token, like `/v1/batch`."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
from elasticsearch import ApiError, TransportError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from iiswatch.ingest.archive.layout import ArchiveError, valid_name
from iiswatch.ingest.archive.writer import Chunk
from iiswatch.ingest.collector.service import Collector
from iiswatch.ingest.collector.tokens import AgentIdentity, TokenStore
from iiswatch.respond import store
from iiswatch.respond.model import Result
from iiswatch.respond.quarantine import MAX_EVIDENCE_BYTES

log = logging.getLogger(__name__)
EVIDENCE_SITE = "quarantine"  # the archive folder evidence goes to, beside the sites' logs


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def agent_may_act_for(agent: AgentIdentity, host: str) -> bool:
    """Whether `agent`'s token may fetch, report and send evidence for `host`'s actions: the
    hosts its token is bound to (`collector add-agent NAME --host H`), the same binding that
    decides whose logs it may send, so one host's token cannot pull another's actions."""
    return valid_name(host) and agent.may_send_for(host)


def action_routes(collector: Collector, tokens: TokenStore) -> list[Route]:
    es = collector.es

    def _agent(request: Request) -> AgentIdentity | None:
        value = request.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return tokens.authenticate(token.strip() if scheme.lower() == "bearer" else None)

    async def poll(request: Request) -> Response:
        agent = _agent(request)
        if agent is None:
            return _error(401, "missing or invalid agent token")
        host = request.query_params.get("host", "")
        if not agent_may_act_for(agent, host):
            return _error(403, f"agent {agent.name!r} may not fetch actions of host {host!r}")
        try:
            actions = await run_in_threadpool(store.claim_pending, es, host)
        except (ApiError, TransportError) as e:
            return _error(503, f"Elasticsearch is unavailable: {e}")
        for a in actions:
            log.info("action %s (%s) handed to agent %s for %s", a.id, a.kind, agent.name, host)
        return JSONResponse({"actions": [a.for_agent() for a in actions]})

    async def result(request: Request) -> Response:
        agent = _agent(request)
        if agent is None:
            return _error(401, "missing or invalid agent token")
        body = await request.body()
        if len(body) > 1 << 20:
            return _error(413, "a result is at most 1 MiB")
        try:
            obj: Any = orjson.loads(body)
            action_id, host = str(obj["id"]), str(obj["host"])
            res = Result.model_validate(obj["result"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError) as e:
            return _error(400, f"not a result: {e}"[:500])
        if not agent_may_act_for(agent, host):
            return _error(403, f"agent {agent.name!r} may not report for host {host!r}")
        try:
            done = await run_in_threadpool(store.add_result, es, action_id, host, res)
        except (ApiError, TransportError) as e:
            return _error(503, f"Elasticsearch is unavailable: {e}")
        if done is None:
            return _error(404, f"no action {action_id!r} for host {host!r}")
        log.info("action %s on %s: %s (%s)", action_id, host, res.state, res.message)
        return JSONResponse({"id": action_id, "state": done.state.value})

    async def evidence(request: Request) -> Response:
        agent = _agent(request)
        if agent is None:
            return _error(401, "missing or invalid agent token")
        q = request.query_params
        host, action_id, sha256 = q.get("host", ""), q.get("action", ""), q.get("sha256", "")
        path = q.get("path", "")
        if not agent_may_act_for(agent, host):
            return _error(403, f"agent {agent.name!r} may not send evidence for host {host!r}")
        if len(sha256) != 64 or not action_id or not path:
            return _error(400, "evidence needs host, action, path and sha256 (64 hex digits)")
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_EVIDENCE_BYTES:
                return _error(413, f"evidence is at most {MAX_EVIDENCE_BYTES} bytes")
        if hashlib.sha256(body).hexdigest() != sha256:
            return _error(400, "the bytes do not match the sha256 given")
        chunk = Chunk(host, EVIDENCE_SITE, sha256, path, 0, bytes(body), agent.name, action_id)
        try:
            stored = await run_in_threadpool(collector.archive.append, [chunk])
        except (ArchiveError, OSError) as e:
            return _error(503, f"the archive could not store the evidence: {e}")
        log.info(
            "evidence %s of %s (%d bytes) archived for action %s",
            sha256,
            host,
            len(body),
            action_id,
        )
        return JSONResponse({"sha256": sha256, "archived": stored.archived, "held": stored.skipped})

    return [
        Route("/v1/actions", poll, methods=["GET"]),
        Route("/v1/actions/result", result, methods=["POST"]),
        Route("/v1/evidence", evidence, methods=["POST"]),
    ]
