"""Our HTTPERR parser against the documents Elastic's own IIS error pipelines produce
(Beats module and Fleet integration), field by field on the fields they emit."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from iiswatch.ingest.formats.httperr import HttpErrParser
from iiswatch.ingest.model import DeadLetter, Event, Source
from tests.unit.conformance import CORPUS

FOLDERS = ("beats-error", "integrations-error")
THRESHOLD = 98.0

# Enrichment and shipper metadata that is not the parser's job.
IGNORED_PREFIXES = ("source.geo.", "source.as.", "destination.geo.", "destination.as.")
IGNORED_KEYS = {"input.type", "fileset.name", "service.type", "tags", "ecs.version"}


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _same(key: str, ours: Any, theirs: Any) -> bool:
    if key == "@timestamp":
        return bool(_instant(ours) == _instant(theirs))
    if isinstance(theirs, list) and isinstance(ours, list):
        # Array order differs between the two Elastic pipelines (event.category), and we
        # de-duplicate related.ip: compare arrays as sets of values.
        return set(map(str, ours)) == set(map(str, theirs))
    return bool(ours == theirs)


def _instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _expected_events(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    events = data["expected"] if isinstance(data, dict) else data
    return [flatten(e) for e in events]


def _parse_file(log: Path) -> list[tuple[int, bytes, Event | DeadLetter | None]]:
    parser = HttpErrParser(Source(path=str(log), host_name="test-host", file_id="conformance"))
    out = []
    offset = 0
    for line in log.read_bytes().splitlines(keepends=True):
        body = line.rstrip(b"\n").rstrip(b"\r")
        out.append((offset, body, parser.feed(body, offset)))
        offset += len(line)
    return out


# Fields we add on purpose that Elastic's pipelines do not produce (reported, not scored).
OUR_OWN = ("iiswatch.", "log.file.path", "host.name", "event.module", "event.dataset")


def compare_file(expected_path: Path) -> tuple[int, int, list[str], set[str]]:
    """(matched, compared, mismatch descriptions, fields only we emit) for one expected file."""
    log = expected_path.with_name(expected_path.name.removesuffix("-expected.json"))
    integrations = expected_path.parent.name.startswith("integrations")
    parsed = _parse_file(log)
    by_offset = {off: result for off, _, result in parsed}
    by_original = {body.decode("utf-8", "replace"): result for _, body, result in parsed}

    matched = compared = 0
    problems: list[str] = []
    extra: set[str] = set()
    for index, expected in enumerate(_expected_events(expected_path)):
        if "event.original" in expected:
            result = by_original.get(expected["event.original"])
        else:
            result = by_offset.get(expected.get("log.offset", -1))
        where = f"{log.parent.name}/{log.name} event {index}"
        if not isinstance(result, dict):
            problems.append(f"{where}: no event ({result!r})")
            compared += len(expected)
            continue
        ours = flatten(result)
        extra |= {
            k
            for k in ours
            if k not in expected
            and not k.startswith(OUR_OWN)
            and k not in IGNORED_KEYS
            and k != "log.offset"
        }
        for key, theirs in sorted(expected.items()):
            if key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES):
                continue
            if integrations and key == "log.offset":
                continue
            compared += 1
            if key in ours and _same(key, ours[key], theirs):
                matched += 1
            else:
                problems.append(f"{where}: {key}: ours={ours.get(key)!r} elastic={theirs!r}")
    return matched, compared, problems, extra


def _expected_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (CORPUS / folder).glob("*-expected.json"))


@pytest.fixture(scope="module")
def corpus_present() -> None:
    if all((CORPUS / f).is_dir() for f in FOLDERS):
        return
    if os.environ.get("CI"):
        pytest.fail(f"conformance corpus missing under {CORPUS} (required in CI)")
    pytest.skip(f"conformance corpus not found under {CORPUS}")


def test_httperr_matches_elastic_on_at_least_98_percent_of_shared_fields(
    corpus_present: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = []
    all_problems: list[str] = []
    total_matched = total_compared = 0
    for path in _expected_files():
        matched, compared, problems, extra = compare_file(path)
        rows.append((f"{path.parent.name}/{path.name}", matched, compared, extra))
        all_problems += problems
        total_matched += matched
        total_compared += compared
    overall = 100.0 * total_matched / total_compared if total_compared else 0.0
    with capsys.disabled():
        print("\n| File | Fields matched | Match | Only ours |\n|---|---|---|---|")
        for name, matched, compared, extra in rows:
            pct = 100.0 * matched / compared
            only = ", ".join(f"`{k}`" for k in sorted(extra)) or "-"
            print(f"| `{name}` | {matched}/{compared} | {pct:.1f} % | {only} |")
        print(f"| **overall** | {total_matched}/{total_compared} | {overall:.1f} % | |")
        for problem in all_problems:
            print(f"  differs: {problem}")
    assert rows, "no expected files found"
    assert overall >= THRESHOLD, "\n".join(all_problems)


def test_every_line_of_the_error_corpus_becomes_an_event(corpus_present: None) -> None:
    # Including lines that have no expected output upstream (e.g. the M-POST line).
    for folder in FOLDERS:
        for log in sorted((CORPUS / folder).glob("*.log")):
            for _, body, result in _parse_file(log):
                if body.strip() and not body.startswith(b"#"):
                    assert isinstance(result, dict), f"{log.name}: {body!r} -> {result!r}"
