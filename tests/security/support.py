"""A collector run for one attack: archive, key, tokens, process; and log lines from 1988."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.ingest.collector.tokens import TokenStore
from iiswatch.ingest.files import fingerprint, iter_lines
from iiswatch.ingest.model import Source
from iiswatch.ingest.parse import LogParser
from tests.integration.collector_proc import CollectorProcess, chunk

PATH = r"C:\inetpub\logs\LogFiles\W3SVC1\u_ex{}.log"


@dataclass
class Running:
    proc: CollectorProcess
    url: str
    archive: Path
    key: Path
    tokens: dict[str, str] = field(default_factory=dict)


@contextmanager
def collector(tmp_path: Path, agents: dict[str, list[str]], *extra: str) -> Iterator[Running]:
    """A collector with an agent per entry of `agents` (name -> hosts it may send for)."""
    archive, key = tmp_path / "archive", tmp_path / "keys" / "archive.key"
    store = TokenStore(archive)
    tokens = {name: store.add(name, hosts=hosts) for name, hosts in agents.items()}
    proc = CollectorProcess(archive, key, *extra)
    url = proc.start()
    try:
        yield Running(proc, url, archive, key, tokens)
    finally:
        assert proc.stop() == 0, proc.stderr()


def log_file(month: date, n: int, seed: int = 7) -> bytes:
    start = datetime(month.year, month.month, month.day, tzinfo=UTC)
    lines = "\r\n".join(generate_w3c_lines(n, seed=seed, start=start))
    return (w3c_header(W3C_DEFAULT_FIELDS, start) + lines + "\r\n").encode()


def whole_file_chunk(data: bytes, host: str, name: str = "880101") -> dict[str, Any]:
    file_id = fingerprint(data[:1024])
    path = PATH.format(name)
    state = LogParser(Source(path, host, file_id)).state()
    return chunk(file_id, path, 0, data, parser_state=state)


def chunk_at(data: bytes, host: str, start: int, end: int, name: str = "880101") -> dict[str, Any]:
    """Bytes [start, end) of the file (whole lines), with the parser state in force there."""
    file_id = fingerprint(data[:1024])
    path = PATH.format(name)
    parser = LogParser(Source(path, host, file_id))
    for line, off in iter_lines(io.BytesIO(data)):
        if off >= start:
            break
        parser.feed(line, off)
    return chunk(file_id, path, start, data[start:end], parser_state=parser.state())


def batch(agent: str, host: str, chunks: list[dict[str, Any]], n: int = 1) -> dict[str, Any]:
    return {"agent": agent, "host": host, "batch_id": f"{agent}-{n:09d}", "chunks": chunks}
