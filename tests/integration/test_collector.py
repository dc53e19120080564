"""The collector as a real process on loopback, in front of the real Elasticsearch: what it
acknowledges is archived and indexed; what it refuses leaves no trace anywhere."""

from __future__ import annotations

import gzip
import http.client
import io
import random
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.ingest.archive.export import export_file, find_file, list_files
from iiswatch.ingest.collector.tokens import TokenStore
from iiswatch.ingest.files import fingerprint, iter_lines
from iiswatch.ingest.model import Source
from iiswatch.ingest.parse import LogParser
from tests.integration.collector_proc import CLI, CollectorProcess, chunk, post, send_batch

pytestmark = pytest.mark.integration

PATH = r"C:\inetpub\logs\LogFiles\W3SVC1\u_ex{}.log"
MAX_BODY = 200_000


@dataclass
class Running:
    proc: CollectorProcess
    url: str
    token: str
    archive: Path
    key: Path


@pytest.fixture
def collector(tmp_path: Path, host_name: str) -> Iterator[Running]:
    archive, key = tmp_path / "archive", tmp_path / "keys" / "archive.key"
    token = TokenStore(archive).add("web01", hosts=[host_name])
    proc = CollectorProcess(archive, key, "--max-body", str(MAX_BODY))
    url = proc.start()
    yield Running(proc, url, token, archive, key)
    assert proc.stop() == 0, proc.stderr()  # SIGTERM: a clean exit


def log_file(month: date, n: int) -> bytes:
    start = datetime(month.year, month.month, month.day, tzinfo=UTC)
    lines = "\r\n".join(generate_w3c_lines(n, seed=7, start=start))
    return (w3c_header(W3C_DEFAULT_FIELDS, start) + lines + "\r\n").encode()


def split_chunks(data: bytes, host: str, parts: int) -> list[dict[str, Any]]:
    """The file as an agent sends it: whole lines, each chunk with the parser state in force
    at its offset (after the header block, that is the #Fields)."""
    file_id = fingerprint(data[:1024])
    path = PATH.format("030105")
    parser = LogParser(Source(path, host, file_id))
    lines = list(iter_lines(io.BytesIO(data)))
    size = len(lines) // parts + 1
    out = []
    for i in range(0, len(lines), size):
        group = lines[i : i + size]
        start = group[0][1]
        end = lines[i + size][1] if i + size < len(lines) else len(data)
        state = parser.state()
        for line, off in group:
            parser.feed(line, off)
        out.append(chunk(file_id, path, start, data[start:end], parser_state=state, size=len(data)))
    return out


def batch(host: str, chunks: list[dict[str, Any]], n: int = 1, agent: str = "web01") -> dict:
    return {"agent": agent, "host": host, "batch_id": f"{agent}-{n:09d}", "chunks": chunks}


def indexed(es: Elasticsearch, month: date, host: str) -> int:
    es.indices.refresh(index="iis-*,iiswatch-deadletter*", ignore_unavailable=True)
    return int(
        es.count(
            index=f"iis-access-{month.year}.{month.month:02d},iiswatch-deadletter*",
            query={"term": {"host.name": host}},
            ignore_unavailable=True,
        )["count"]
    )


def archived_files(archive: Path) -> list[Any]:
    return list_files(archive)


def test_a_valid_batch_is_archived_then_indexed_and_acknowledged(
    collector: Running, admin_es: Elasticsearch, test_month: date, host_name: str
) -> None:
    data = log_file(test_month, 300)
    chunks = split_chunks(data, host_name, 3)
    status, body = send_batch(collector.url, collector.token, batch(host_name, chunks))
    assert status == 200, body
    assert body["acked"] == "web01-000000001"
    assert (body["chunks"], body["events"], body["dead_letters"]) == (3, 300, 0)
    assert body["archived_bytes"] == len(data)
    assert indexed(admin_es, test_month, host_name) == 300
    buf = io.BytesIO()
    export_file(find_file(collector.archive, host_name, "u_ex030105.log"), buf)
    assert buf.getvalue() == data
    verify = subprocess.run(
        [*CLI, "archive", "verify", str(collector.archive), "--key", str(collector.key)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_resending_a_batch_adds_no_duplicates(
    collector: Running, admin_es: Elasticsearch, test_month: date, host_name: str
) -> None:
    data = log_file(test_month, 120)
    chunks = split_chunks(data, host_name, 2)
    assert send_batch(collector.url, collector.token, batch(host_name, chunks))[0] == 200
    # the agent did not see the 200 and sends it again, then more with an overlap
    status, again = send_batch(collector.url, collector.token, batch(host_name, chunks))
    assert status == 200, again
    assert (again["indexed"], again["already_present"]) == (0, 120)
    assert (again["archived_bytes"], again["resent_bytes"]) == (0, len(data))
    assert indexed(admin_es, test_month, host_name) == 120
    (f,) = archived_files(collector.archive)
    assert f.ranges == ((0, len(data)),)


@pytest.mark.parametrize(
    "auth", [None, "Bearer wrong-token", "Basic d2ViMDE6eA==", "Bearer "], ids=str
)
def test_a_wrong_or_missing_token_is_401_and_nothing_is_stored(
    collector: Running, admin_es: Elasticsearch, test_month: date, auth: str | None
) -> None:
    host = f"test-unauth-{abs(hash(auth)) % 10**6}"
    data = log_file(test_month, 20)
    body = gzip.compress(orjson.dumps(batch(host, split_chunks(data, host, 1))))
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    status, answer = post(collector.url, body=body, headers=headers)
    assert status == 401 and "token" in answer["error"]
    assert archived_files(collector.archive) == []
    assert indexed(admin_es, test_month, host) == 0


def test_a_token_cannot_write_for_another_agent(
    collector: Running, test_month: date, host_name: str
) -> None:
    data = log_file(test_month, 5)
    b = batch(host_name, split_chunks(data, host_name, 1), agent="web02")
    status, answer = send_batch(collector.url, collector.token, b)
    assert status == 403 and "web02" in answer["error"]
    assert archived_files(collector.archive) == []


def test_oversized_bodies_are_413_however_they_come(
    collector: Running, test_month: date, host_name: str
) -> None:
    auth = {"Authorization": f"Bearer {collector.token}", "Content-Type": "application/json"}
    big = b"x" * (MAX_BODY + 1)
    assert post(collector.url, body=big, headers=auth)[0] == 413
    assert post(collector.url, body=big, headers=auth, chunked=True)[0] == 413
    bomb = gzip.compress(b" " * (MAX_BODY * 9))  # small on the wire, huge inflated
    assert len(bomb) < MAX_BODY
    status, answer = post(collector.url, body=bomb, headers={**auth, "Content-Encoding": "gzip"})
    assert status == 413 and "decompressed" in answer["error"]
    assert archived_files(collector.archive) == []


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda b: b["chunks"][0].update(data="%%%"), "chunks[0].data: not base64"),
        (lambda b: b["chunks"][0].update(file_id="../../x"), "chunks[0].file_id"),
        (lambda b: b.pop("host"), "host: Field required"),
        (lambda b: b["chunks"][0].update(data="cGFydGlhbA=="), "must be whole lines"),
    ],
    ids=["base64", "file_id", "no-host", "partial-line"],
)
def test_a_malformed_batch_is_400_with_the_reason_and_nothing_is_stored(
    collector: Running, admin_es: Elasticsearch, test_month: date, host_name: str, edit, reason
) -> None:
    data = log_file(test_month, 10)
    b = batch(host_name, split_chunks(data, host_name, 1))
    edit(b)
    status, answer = send_batch(collector.url, collector.token, b)
    assert status == 400, answer
    assert reason in answer["error"]
    assert archived_files(collector.archive) == []
    assert indexed(admin_es, test_month, host_name) == 0


def test_not_json_is_400(collector: Running) -> None:
    auth = {"Authorization": f"Bearer {collector.token}"}
    status, answer = post(collector.url, body=b"{nope", headers=auth)
    assert status == 400 and "not JSON" in answer["error"]


def test_healthz_and_metrics_show_lag_lines_and_archive(
    collector: Running, test_month: date, host_name: str
) -> None:
    assert post(collector.url, "/healthz", method="GET") == (200, {"status": "ok"})
    data = log_file(test_month, 40)
    (c,) = split_chunks(data, host_name, 1)
    c["size"] = len(data) + 1000  # the agent saw more than it sent yet
    assert send_batch(collector.url, collector.token, batch(host_name, [c]))[0] == 200
    status, text = post(collector.url, "/metrics", method="GET")
    assert status == 200
    metrics = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    labels = f'agent="web01",file="u_ex030105.log",file_id="{c["file_id"]}",host="{host_name}"'
    assert float(metrics[f"iiswatch_collector_file_lag_bytes{{{labels}}}"]) == 1000
    assert float(metrics['iiswatch_collector_lines_total{agent="web01"}']) == 44
    assert float(metrics['iiswatch_collector_archived_bytes_total{agent="web01"}']) == len(data)
    assert float(metrics['iiswatch_collector_batches_total{agent="web01",outcome="acked"}']) == 1
    assert "iiswatch_collector_es_errors_total" in text or "iiswatch_collector_es_errors" in text


def test_elasticsearch_down_is_503_then_the_same_batch_is_accepted(
    tmp_path: Path, admin_es: Elasticsearch, test_month: date, host_name: str
) -> None:
    archive, key = tmp_path / "archive", tmp_path / "keys" / "archive.key"
    token = TokenStore(archive).add("web01", hosts=[host_name])
    down = CollectorProcess(
        archive,
        key,
        env={
            "IISWATCH_ES_URL": "http://127.0.0.1:9",  # nothing listens on the discard port
            "IISWATCH_ES_USERNAME": "nobody",
            "IISWATCH_ES_PASSWORD": "x",
        },
    )
    url = down.start()
    data = log_file(test_month, 50)
    b = batch(host_name, split_chunks(data, host_name, 2))
    try:
        status, answer = send_batch(url, token, b)
        assert status == 503 and "Elasticsearch" in answer["error"], answer
    finally:
        assert down.stop() == 0, down.stderr()
    # archived before indexing: the bytes are safe already; indexing is what is retried
    assert [f.ranges for f in list_files(archive)] == [((0, len(data)),)]
    up = CollectorProcess(archive, key)
    url = up.start()
    try:
        status, answer = send_batch(url, token, b)
        assert status == 200, answer
        assert (answer["archived_bytes"], answer["indexed"]) == (0, 50)
    finally:
        assert up.stop() == 0, up.stderr()
    assert indexed(admin_es, test_month, host_name) == 50


def test_add_agent_prints_the_token_once_and_it_works(
    tmp_path: Path, test_month: date, host_name: str
) -> None:
    archive, key = tmp_path / "archive", tmp_path / "archive.key"
    proc = CollectorProcess(archive, key)
    url = proc.start()  # agents added while it runs are seen at once
    try:
        args = ["add-agent", "web01", "--archive", str(archive), "--host", host_name]
        added = subprocess.run(
            [*CLI, "collector", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        token = added.stdout.strip()
        assert token not in (archive / "agents.json").read_text()
        data = log_file(test_month, 3)
        status, _ = send_batch(url, token, batch(host_name, split_chunks(data, host_name, 1)))
        assert status == 200
    finally:
        assert proc.stop() == 0, proc.stderr()


def test_tls(tmp_path: Path, test_month: date, host_name: str) -> None:
    cert, tls_key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            *("-keyout", str(tls_key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    archive = tmp_path / "archive"
    token = TokenStore(archive).add("web01", hosts=[host_name])
    proc = CollectorProcess(
        archive, tmp_path / "k", "--tls-cert", str(cert), "--tls-key", str(tls_key)
    )
    url = proc.start()
    try:
        assert url.startswith("https://")
        data = log_file(test_month, 5)
        b = batch(host_name, split_chunks(data, host_name, 1))
        status, answer = send_batch(url, token, b, ca=cert)
        assert status == 200, answer
    finally:
        assert proc.stop() == 0, proc.stderr()


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, admin_es: Elasticsearch, test_month: date, host_name: str
) -> None:
    data = log_file(test_month, 12_000)  # ~2.4 MB: segments of 1 MiB get sealed on the way
    chunks = split_chunks(data, host_name, 120)
    archive, key = tmp_path / "archive", tmp_path / "archive.key"
    token = TokenStore(archive).add("web01", hosts=[host_name])
    rng = random.Random(3)
    acked, n, interrupted = 0, 0, 0
    fired: list[int] = []  # the batch number each kill landed at
    while acked < len(chunks):
        proc = CollectorProcess(archive, key, "--segment-mb", "1")
        url = proc.start()
        # the next kill: a few batches into this process, a random moment within that request
        # or just after it (never a wall-clock guess at how long the whole run takes)
        kill_at = acked + rng.randint(2, 20) if len(fired) < 4 else None
        try:
            while acked < len(chunks):
                n += 1  # as the agent: the first batch not acknowledged, until a 200
                if acked == kill_at:
                    timer = threading.Timer(
                        rng.uniform(0, 0.05), lambda p=proc, at=n: (fired.append(at), p.kill())
                    )
                    timer.start()
                status, answer = send_batch(url, token, batch(host_name, [chunks[acked]], n))
                assert status == 200, answer
                acked += 1
        except (ConnectionError, http.client.HTTPException):
            interrupted += 1  # killed mid-request or before the next: start again and resend
        finally:
            if kill_at is not None:
                timer.join()
            proc.kill()
    # every kill stopped the collector with batches left to send, and cost one restart
    assert len(fired) == 4 and interrupted == 4, (fired, interrupted)
    assert len(list((archive / "hosts").rglob("seg-*.manifest.json"))) >= 2
    verify = subprocess.run(
        [*CLI, "archive", "verify", str(archive), "--key", str(key)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    buf = io.BytesIO()
    export_file(find_file(archive, host_name, "u_ex030105.log"), buf)
    assert buf.getvalue() == data
    assert indexed(admin_es, test_month, host_name) == 12_000
