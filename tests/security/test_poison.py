"""Attack 4: poison batches. Before: offsets in [2^63, 2^64) and a 10 MiB line were archived,
then answered 503 on every retry, forever; the agent stalled."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from iiswatch.ingest.archive.export import export_file, find_file, list_files
from iiswatch.ingest.collector.service import ORIGINAL_KEPT
from iiswatch.ingest.files import fingerprint
from tests.integration.collector_proc import chunk, send_batch
from tests.security.support import PATH, batch, chunk_at, collector, log_file

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("witness_cleanup")]


@pytest.mark.parametrize("offset", [2**63, 2**64 - 100, 2**63 - 10])
def test_impossible_offsets_are_400_and_nothing_is_archived(
    tmp_path: Path, host_name: str, offset: int
) -> None:
    with collector(tmp_path, {"web01": [host_name]}) as c:
        line = b"1988-01-01 00:00:00 GET / - 80 - 192.0.2.1 - 200 0 0 1\r\n"
        poison = chunk("ab" * 8, PATH.format("880101"), offset, line * 20)
        status, answer = send_batch(c.url, c.tokens["web01"], batch("web01", host_name, [poison]))
        assert status == 400, answer
        assert list_files(c.archive) == []


def test_an_overlong_line_is_archived_raw_and_dead_lettered_truncated(
    tmp_path: Path, admin_es: Elasticsearch, month_1988: date, host_name: str
) -> None:
    data = log_file(month_1988, 5)
    long_line = b"1988-01-01 00:00:01 GET /" + b"A" * (10 << 20) + b" - 80 - 192.0.2.1\r\n"
    data = data + long_line
    with collector(tmp_path, {"web01": [host_name]}, "--max-body", str(32 << 20)) as c:
        b = batch("web01", host_name, [chunk_at(data, host_name, 0, len(data))])
        status, answer = send_batch(c.url, c.tokens["web01"], b)
        assert status == 200, answer
        assert (answer["events"], answer["dead_letters"]) == (5, 1)
        buf = io.BytesIO()
        export_file(find_file(c.archive, host_name, "u_ex880101.log"), buf)
        assert buf.getvalue() == data  # every byte archived
    admin_es.indices.refresh(index="iiswatch-deadletter*")
    hits = admin_es.search(
        index="iiswatch-deadletter*",
        query={"term": {"iiswatch.file_id": fingerprint(data[:1024])}},
    )["hits"]["hits"]
    assert len(hits) == 1
    assert len(hits[0]["_source"]["event"]["original"]) == ORIGINAL_KEPT
    assert "longer than" in hits[0]["_source"]["error"]["message"]
