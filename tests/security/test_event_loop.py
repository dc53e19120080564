"""Attack 5: one gzip bomb stalled /healthz and every agent, because decompression and JSON
parsing ran on the event loop. Now they run in a small pool of worker threads: the app is
called directly (ASGI), with decompression held until /healthz has answered."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from iiswatch.ingest.archive.keys import ArchiveKey
from iiswatch.ingest.archive.writer import ArchiveWriter
from iiswatch.ingest.collector import app as app_module
from iiswatch.ingest.collector.app import create_app
from iiswatch.ingest.collector.metrics import Metrics
from iiswatch.ingest.collector.service import Collector
from iiswatch.ingest.collector.tokens import TokenStore


async def call(app: Any, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "scheme": "http",
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no disconnect while the answer is computed
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def test_decompression_runs_off_the_event_loop_and_healthz_answers_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    token = TokenStore(archive).add("web01")
    writer = ArchiveWriter(archive, ArchiveKey(bytes(32)))
    es = Elasticsearch("http://127.0.0.1:9")  # never reached: the batch is refused before
    app = create_app(Collector(writer, es, Metrics()), TokenStore(archive), Metrics())
    entered, release = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}
    real = app_module.decompress

    def held_decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
        seen["thread"] = threading.current_thread()
        entered.set()
        release.wait(10)
        seen["released_by_test"] = release.is_set()
        return real(body, encoding, limit)

    monkeypatch.setattr(app_module, "decompress", held_decompress)

    async def scenario() -> tuple[int, int]:
        auth = {"Authorization": f"Bearer {token}"}
        bomb = asyncio.create_task(call(app, "POST", "/v1/batch", auth, b"not json"))
        await asyncio.to_thread(entered.wait, 60)
        health = await call(app, "GET", "/healthz", {}, b"")  # while decompression is held
        release.set()
        return health, await bomb

    try:
        health, batch = asyncio.run(scenario())
    finally:
        release.set()
        writer.close()
    assert seen["thread"] is not threading.main_thread()
    assert seen["released_by_test"], "decompression blocked the event loop until it gave up"
    assert (health, batch) == (200, 400)
