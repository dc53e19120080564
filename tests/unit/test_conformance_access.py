"""Our access events against the documents Elastic's own IIS parsers produce for the same lines
(the third-party corpus in /work/shared/conformance/iis, see its README).

Each expected event is paired with ours (integrations: by `event.original`; Beats: by
`log.offset`) and compared field by field on every flattened key Elastic emits (one we leave
out is a miss). The per-file
table is printed, and written into docs/conformance.md between its table markers when
IISWATCH_REGEN_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from iiswatch.ingest.model import DeadLetter, Source
from iiswatch.ingest.parse import LogParser
from tests.unit.conformance import CORPUS, WRITE_DOC

ACCESS_DIRS = ("beats-access", "integrations-access")
DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
START, END = "<!-- conformance-table:start -->", "<!-- conformance-table:end -->"
THRESHOLD = 98.0

# Fields we do not produce by design (enrichment done elsewhere, or test-harness fields).
IGNORED_PREFIXES = ("source.geo.", "source.as.")
IGNORED = {"input.type", "fileset.name", "service.type", "tags", "ecs.version", "log.offset"}
# Values older Elastic parsers keep that mean "nothing": IIS's `-` placeholder for an empty
# field, and ua-parser's `Other` for an unknown agent. We leave such fields out on purpose.
NOTHING = "-"
UNKNOWN_AGENT = {"user_agent.name": "Other", "user_agent.device.name": "Other"}


def deliberately_absent(name: str, value: Any) -> bool:
    return value == NOTHING or UNKNOWN_AGENT.get(name) == value


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def same(name: str, expected: Any, ours: Any) -> bool:
    if isinstance(expected, list) and isinstance(ours, list):
        return {json.dumps(x) for x in expected} == {json.dumps(x) for x in ours}
    if name == "user_agent.version" and isinstance(expected, str) and isinstance(ours, str):
        # Elasticsearch's user_agent processor leaves a trailing dot ("57.0."), and its
        # bundled rules are older than ua-parser's: accept the same version to its precision.
        a, b = expected.rstrip("."), ours.rstrip(".")
        return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")
    return bool(expected == ours)


@dataclass
class FileScore:
    name: str
    events: int = 0
    unpaired: int = 0
    shared: int = 0
    matched: int = 0
    only_expected: set[str] = field(default_factory=set)
    mismatches: list[tuple[str, str, Any, Any]] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return 100.0 * self.matched / self.shared if self.shared else 100.0


def parse_file(path: Path) -> tuple[dict[int, Any], dict[str, Any]]:
    """Our results for a log, keyed by byte offset and by event.original."""
    source = Source(path=str(path), host_name="conformance", file_id="conformance")
    parser = LogParser(source, "w3c")
    by_offset: dict[int, Any] = {}
    by_original: dict[str, Any] = {}
    offset = 0
    for line in path.read_bytes().splitlines(keepends=True):
        result = parser.feed(line.rstrip(b"\r\n"), offset)
        if result is not None:
            by_offset[offset] = result
            if not isinstance(result, DeadLetter):
                by_original[result["event"]["original"]] = result
        offset += len(line)
    return by_offset, by_original


def expected_events(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        return [flatten(e) for e in data["expected"]]
    return [flatten(e) for e in data]


def score_file(expected_path: Path) -> FileScore:
    log = expected_path.with_name(expected_path.name.removesuffix("-expected.json"))
    score = FileScore(name=f"{expected_path.parent.name}/{log.name}")
    by_offset, by_original = parse_file(log)
    beats = expected_path.parent.name.startswith("beats")
    for want in expected_events(expected_path):
        score.events += 1
        key = "log.offset" if beats else "event.original"
        got_raw = by_offset.get(want["log.offset"]) if beats else by_original.get(want[key])
        comparable = {
            k: v
            for k, v in want.items()
            if k not in IGNORED and not k.startswith(IGNORED_PREFIXES) and k != key
        }
        if got_raw is None or isinstance(got_raw, DeadLetter):
            score.unpaired += 1
            score.shared += len(comparable)
            score.mismatches.extend((k, "(no event)", v, None) for k, v in comparable.items())
            continue
        got = flatten(got_raw)
        line = want.get("event.original", f"offset {want.get('log.offset')}")
        for name, value in comparable.items():
            # every field Elastic emits counts: one we leave out is a miss, as in the error test
            if name not in got and deliberately_absent(name, value):
                continue
            score.shared += 1
            if name not in got:
                score.only_expected.add(name)
                score.mismatches.append((name, str(line)[:60], value, "(left out)"))
            elif same(name, value, got[name]):
                score.matched += 1
            else:
                score.mismatches.append((name, str(line)[:60], value, got[name]))
    return score


def render(scores: list[FileScore]) -> str:
    shared = sum(s.shared for s in scores)
    matched = sum(s.matched for s in scores)
    rows = [
        "| File | Events | Unpaired | Fields | Matched | Match % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        rows.append(
            f"| `{s.name}` | {s.events} | {s.unpaired} | {s.shared} | {s.matched} "
            f"| {s.percent:.1f} |"
        )
    total = 100.0 * matched / shared if shared else 100.0
    rows.append(
        f"| **all** | {sum(s.events for s in scores)} | {sum(s.unpaired for s in scores)} "
        f"| {shared} | {matched} | **{total:.1f}** |"
    )
    rows += ["", "Mismatching values (expected → ours):", ""]
    seen: set[tuple[str, str, str]] = set()
    for s in scores:
        for name, _line, want, got in s.mismatches:
            item = (name, json.dumps(want, ensure_ascii=False), json.dumps(got, ensure_ascii=False))
            if item in seen:
                continue
            seen.add(item)
            rows.append(f"- `{s.name}` `{name}`: `{item[1][:90]}` → `{item[2][:90]}`")
    only = sorted({n for s in scores for n in s.only_expected})
    rows += ["", "Fields Elastic emits that we leave out: " + ", ".join(f"`{n}`" for n in only)]
    return "\n".join(rows)


def write_doc(table: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"# Conformance\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")


def test_access_events_match_elastics_on_shared_fields() -> None:
    if not CORPUS.is_dir():
        reason = f"conformance corpus not found at {CORPUS} (set IISWATCH_CONFORMANCE_DIR)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    expected_files = sorted(p for d in ACCESS_DIRS for p in (CORPUS / d).glob("*-expected.json"))
    assert expected_files, f"no *-expected.json files under {CORPUS}"
    scores = [score_file(p) for p in expected_files]
    table = render(scores)
    print(table)
    if WRITE_DOC:
        write_doc(table)
    shared = sum(s.shared for s in scores)
    matched = sum(s.matched for s in scores)
    overall = 100.0 * matched / shared
    assert overall >= THRESHOLD, f"{overall:.1f}% of shared fields match (< {THRESHOLD}%)"
