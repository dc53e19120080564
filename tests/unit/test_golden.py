"""Golden files for every format: `tests/golden/*.log` beside the documents the parser must
produce, one JSON document per result line (events, and dead letters as the indexer stores
them). Each log is read the way `iiswatch parse` reads it: format detected from the file.
Regenerate after a deliberate change with `IISWATCH_REGEN_GOLDEN=1` and review the diff.

TZ is pinned to Europe/Paris: W3C and HTTPERR times are UTC, the IIS format's are local, and
the samples sit on the 2024 spring-forward change, so a time-zone bug shows up as a diff.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from iiswatch.ingest.model import DeadLetter, Source
from iiswatch.ingest.parse import LogParser

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
LOGS = sorted(GOLDEN.glob("*.log"))


@pytest.fixture(autouse=True)
def paris_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def golden_docs(log: Path) -> list[dict[str, object]]:
    source = Source(path=f"tests/golden/{log.name}", host_name="golden-host", file_id="golden")
    parser = LogParser(source)
    docs: list[dict[str, object]] = []
    offset = 0
    for line in log.read_bytes().splitlines(keepends=True):
        result = parser.feed(line.rstrip(b"\r\n"), offset)
        if isinstance(result, DeadLetter):
            docs.append(result.to_doc(source))
        elif result is not None:
            docs.append(result)
        offset += len(line)
    return docs


def test_there_are_golden_files_for_every_format() -> None:
    names = {p.name.split("-")[0] for p in LOGS}
    assert {"w3c", "httperr", "iisnative", "ncsa"} <= names, names


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_golden_file_parses_to_its_expected_documents(log: Path) -> None:
    expected_path = log.with_suffix(".expected.ndjson")
    docs = golden_docs(log)
    if os.environ.get("IISWATCH_REGEN_GOLDEN") == "1":
        expected_path.write_bytes(
            b"".join(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) + b"\n" for d in docs)
        )
    expected = [orjson.loads(x) for x in expected_path.read_bytes().splitlines() if x.strip()]
    assert len(docs) == len(expected)
    for got, want in zip(docs, expected, strict=True):
        assert orjson.loads(orjson.dumps(got)) == want
