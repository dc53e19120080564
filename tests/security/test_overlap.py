"""Attack 3: spliced overlaps. Before: bytes overlapping archived ones were trimmed, never
compared; a different line at an overlapping offset was spliced in and verify said intact."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from iiswatch.elastic.indices import INTEGRITY_INDEX
from iiswatch.ingest.archive.export import export_file, find_file
from tests.integration.collector_proc import post, send_batch
from tests.security.support import batch, chunk_at, collector, log_file

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("witness_cleanup")]


def test_different_bytes_at_an_archived_offset_are_refused_counted_and_alerted(
    tmp_path: Path, admin_es: Elasticsearch, month_1988: date, host_name: str
) -> None:
    data = log_file(month_1988, 40)
    half = data.index(b"\n", len(data) // 2) + 1
    with collector(tmp_path, {"web01": [host_name]}) as c:
        token = c.tokens["web01"]
        first = batch("web01", host_name, [chunk_at(data, host_name, 0, half)], 1)
        assert send_batch(c.url, token, first)[0] == 200
        # the same lines again, one of them rewritten, plus the rest of the file
        line_start = data.rindex(b"\n", 0, half - 1) + 1
        forged = data[:line_start] + data[line_start:half].replace(b"GET", b"PUT", 1) + data[half:]
        assert forged != data and len(forged) == len(data)
        spliced = batch("web01", host_name, [chunk_at(forged, host_name, line_start, len(data))], 2)
        status, answer = send_batch(c.url, token, spliced)
        assert status == 409, answer
        assert str(line_start) in answer["error"] or "differ" in answer["error"]
        # nothing spliced: the archive still holds only the genuine first half
        buf = io.BytesIO()
        export_file(find_file(c.archive, host_name, "u_ex880101.log"), buf)
        assert buf.getvalue() == data[:half]
        # the genuine rest is still welcome
        rest = batch("web01", host_name, [chunk_at(data, host_name, line_start, len(data))], 3)
        status, answer = send_batch(c.url, token, rest)
        assert status == 200, answer
        _, metrics = post(c.url, "/metrics", method="GET")
        assert 'iiswatch_collector_overlap_mismatches_total{agent="web01"} 1.0' in metrics
    admin_es.indices.refresh(index=INTEGRITY_INDEX)
    alerts = admin_es.search(
        index=INTEGRITY_INDEX,
        query={"bool": {"filter": [{"term": {"kind": "alert"}}, {"term": {"host": host_name}}]}},
    )["hits"]["hits"]
    assert len(alerts) == 1
    assert alerts[0]["_source"]["event"]["action"] == "archive-overlap-mismatch"
