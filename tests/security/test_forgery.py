"""Attack 1: agent web02's token sends web01's logs. Before: archived and indexed as web01,
and web01's real bytes were then skipped as "resent"."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch

from iiswatch.ingest.archive.export import list_files
from iiswatch.ingest.archive.layout import parse_journal
from tests.integration.collector_proc import CLI, send_batch
from tests.security.support import batch, collector, log_file, whole_file_chunk

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("witness_cleanup")]


def test_a_token_cannot_send_logs_of_a_host_it_is_not_bound_to(
    tmp_path: Path, admin_es: Elasticsearch, month_1988: date, host_name: str
) -> None:
    victim, forger = host_name, f"{host_name}-b"
    with collector(tmp_path, {"web01": [victim], "web02": [forger]}) as c:
        data = log_file(month_1988, 20)
        forged = batch("web02", victim, [whole_file_chunk(data, victim)])
        status, answer = send_batch(c.url, c.tokens["web02"], forged)
        assert status == 403, answer
        assert "web02" in answer["error"] and victim in answer["error"]
        assert list_files(c.archive) == []  # nothing archived: web01's bytes are still welcome
        status, answer = send_batch(
            c.url, c.tokens["web01"], batch("web01", victim, [whole_file_chunk(data, victim)])
        )
        assert status == 200 and answer["archived_bytes"] == len(data), answer


def test_every_document_names_the_agent_that_sent_it_and_so_does_the_archive(
    tmp_path: Path, admin_es: Elasticsearch, month_1988: date, host_name: str
) -> None:
    bad = b"this is not a log line\r\n"
    with collector(tmp_path, {"web01": [host_name]}) as c:
        data = log_file(month_1988, 5) + bad
        status, answer = send_batch(
            c.url, c.tokens["web01"], batch("web01", host_name, [whole_file_chunk(data, host_name)])
        )
        assert status == 200 and answer["dead_letters"] == 1, answer
        admin_es.indices.refresh(index="iis-access-*,iiswatch-deadletter*")
        hits = admin_es.search(
            index=f"iis-access-1988.{month_1988.month:02d},iiswatch-deadletter*",
            query={"term": {"host.name": host_name}},
            size=100,
        )["hits"]["hits"]
        assert len(hits) == 6
        agent_id = orjson.loads((c.archive / "agents.json").read_bytes())["agents"]["web01"]["id"]
        assert {(h["_source"]["agent"]["name"], h["_source"]["agent"]["id"]) for h in hits} == {
            ("web01", agent_id)
        }
        journal = next((c.archive / "hosts" / host_name).rglob("seg-*.jsonl"))
        assert {r.agent for r in parse_journal(journal.read_bytes())[0]} == {"web01"}


def test_a_removed_agent_is_refused_at_once(
    tmp_path: Path, month_1988: date, host_name: str
) -> None:
    with collector(tmp_path, {"web01": [host_name]}) as c:
        removed = subprocess.run(
            [*CLI, "collector", "remove-agent", "web01", "--archive", str(c.archive)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert removed.returncode == 0, removed.stderr
        data = log_file(month_1988, 3)
        status, _ = send_batch(
            c.url, c.tokens["web01"], batch("web01", host_name, [whole_file_chunk(data, host_name)])
        )
        assert status == 401


def test_add_agent_binds_the_hosts_given(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    added = subprocess.run(
        [*CLI, "collector", "add-agent", "iis-farm", "--archive", str(archive),
         "--host", "web01", "--host", "WEB02"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    entry = orjson.loads((archive / "agents.json").read_bytes())["agents"]["iis-farm"]
    assert entry["hosts"] == ["web01", "web02"]


def test_a_corrupt_agents_file_keeps_the_agents_read_before(
    tmp_path: Path, month_1988: date, host_name: str
) -> None:
    with collector(tmp_path, {"web01": [host_name]}) as c:
        data = log_file(month_1988, 3)
        b = batch("web01", host_name, [whole_file_chunk(data, host_name)])
        assert send_batch(c.url, c.tokens["web01"], b)[0] == 200
        (c.archive / "agents.json").write_text('{"agents": {"web01": ')  # torn by an editor
        status, answer = send_batch(c.url, c.tokens["web01"], {**b, "batch_id": "web01-2"})
        assert status == 200, answer  # was: 500 on every request
