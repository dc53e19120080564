"""Checking the forensic archive: recompute every chunk's chain hash from the bytes on disk,
check every seal with the collector's key, and name what is wrong by segment and by the byte
range of the original log file it concerns.

Caught: a changed byte (the chunk's hash), a truncated or extended segment (sizes against the
sealed records), a deleted, moved or reordered segment (numbering and each manifest's link to
the previous head), records or manifests edited together with their hashes (their HMAC cannot
be recomputed without the key), and chunks cut off the end (the sealed head file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from iiswatch.ingest.archive.keys import ArchiveKey
from iiswatch.ingest.archive.layout import (
    HEAD,
    NO_SITE,
    Record,
    chain_hash,
    file_dirs,
    genesis,
    parse_journal,
    segment_name,
    segment_numbers,
)

MAX_PROBLEMS_PER_SEGMENT = 20


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong, where: `where` is relative to the archive (a segment or head.json);
    `start`-`end` is the byte range of the original file concerned, when known."""

    where: str
    message: str
    start: int | None = None
    end: int | None = None

    def __str__(self) -> str:
        if self.start is None:
            return f"{self.where}: {self.message}"
        end = "end" if self.end is None else str(self.end)
        return f"{self.where}: file bytes {self.start}-{end}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "start": self.start, "end": self.end, "message": self.message}


@dataclass
class VerifyReport:
    files: int = 0
    segments: int = 0
    sealed: int = 0
    chunks: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": self.files,
            "segments": self.segments,
            "sealed": self.sealed,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "problems": [p.as_dict() for p in self.problems],
        }


def verify_archive(root: Path, key: ArchiveKey) -> VerifyReport:
    """Check every file archive under `root`."""
    report = VerifyReport()
    for d in file_dirs(root):
        report.files += 1
        _FileCheck(root, d, key, report).run()
    return report


def _span(recs: list[Record]) -> tuple[int | None, int | None]:
    if not recs:
        return None, None
    return min(r.offset for r in recs), max(r.end for r in recs)


class _FileCheck:
    def __init__(self, root: Path, d: Path, key: ArchiveKey, report: VerifyReport) -> None:
        self.d = d
        self.rel = d.relative_to(root).as_posix()
        self.key = key
        self.report = report
        self.host = d.parent.parent.name
        self.site = "" if d.parent.name == NO_SITE else d.parent.name
        self.file_id = d.name

    def problem(
        self, where: str, message: str, start: int | None = None, end: int | None = None
    ) -> None:
        self.report.problems.append(Problem(f"{self.rel}/{where}", message, start, end))

    def run(self) -> None:
        claimed = self._head()
        numbers = segment_numbers(self.d)
        last = max([*numbers, int(claimed["segment"]) if claimed else 0])
        prev = genesis(self.host, self.file_id)
        seq, prev_end = 0, 0
        missing: list[int] = []
        for n in range(1, last + 1):
            name = segment_name(n)
            if n not in numbers:
                missing.append(n)
                continue
            self.report.segments += 1
            recs, link = self._segment(n, last, None if missing else prev)
            first, end = _span(recs)
            gap = bool(missing)
            if missing:
                self._missing(missing, prev_end, first)
                missing = []
            elif link is not None and link != prev:
                self.problem(
                    name,
                    "does not follow the previous segment (its chain link differs): a "
                    "segment before it was removed, replaced or reordered",
                    first,
                    end,
                )
            if recs and recs[0].seq != seq and not gap:
                self.problem(name, f"starts at chunk {recs[0].seq}, expected {seq}", first, end)
            if recs:
                prev, seq = bytes.fromhex(recs[-1].chain), recs[-1].seq + 1
                prev_end = end if end is not None else prev_end
            elif link is not None:
                prev = link
        if missing:
            self._missing(missing, prev_end, None)
        if claimed is not None and (claimed["seq"] != seq or claimed["head"] != prev.hex()):
            self.problem(
                HEAD,
                f"the sealed head says {claimed['seq']} chunks, the segments hold {seq}: "
                "chunks or segments were removed or added at the end",
                prev_end,
                None,
            )

    def _head(self) -> dict[str, Any] | None:
        path = self.d / HEAD
        if not path.exists():
            self.problem(HEAD, "missing: the end of this file's archive cannot be checked")
            return None
        try:
            obj = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as e:
            self.problem(HEAD, f"not JSON ({e})")
            return None
        if not isinstance(obj, dict) or not self.key.check(obj):
            self.problem(HEAD, self._seal_message(obj))
            return None
        return obj

    def _seal_message(self, obj: Any) -> str:
        key_id = obj.get("key_id") if isinstance(obj, dict) else None
        if key_id and key_id != self.key.key_id:
            return f"sealed with another key ({key_id}, this key is {self.key.key_id})"
        return "its seal does not match: edited or forged without the key"

    def _missing(self, numbers: list[int], start: int, end: int | None) -> None:
        names = ", ".join(segment_name(n) for n in numbers)
        self.problem(segment_name(numbers[0]), f"missing ({names}): deleted or moved", start, end)

    def _segment(
        self, n: int, last: int, running: bytes | None
    ) -> tuple[list[Record], bytes | None]:
        """Check segment `n`; return its records (as sealed, when the seal holds) and the
        chain head its manifest says precedes it (None for the open segment). `running` is
        the head after the previous segment (None when that one is missing)."""
        name = segment_name(n)
        manifest_path = self.d / f"{name}.manifest.json"
        jsonl_path = self.d / f"{name}.jsonl"
        journal: list[Record] | None = None
        if jsonl_path.exists():
            try:
                journal, ends = parse_journal(jsonl_path.read_bytes())
                if (ends[-1] if ends else 0) != jsonl_path.stat().st_size:
                    self.problem(f"{name}.jsonl", "its last line is cut off")
            except ValueError as e:
                self.problem(f"{name}.jsonl", f"unreadable record: {e}")
        if not manifest_path.exists():
            if n != last:
                self.problem(name, "is not sealed, but later segments exist")
            recs = journal or []
            for r in recs:
                if not self.key.check_mac(b"iiswatch-record\0" + bytes.fromhex(r.chain), r.mac):
                    self.problem(
                        f"{name}.jsonl",
                        f"chunk {r.seq}: its seal does not match: the record was edited or "
                        "forged without the key",
                        r.offset,
                        r.end,
                    )
            self._data(name, recs, running)
            return recs, None
        self.report.sealed += 1
        try:
            manifest = orjson.loads(manifest_path.read_bytes())
            sealed = [Record.from_json(c) for c in manifest["chunks"]]
        except (ValueError, KeyError, TypeError) as e:
            self.problem(f"{name}.manifest.json", f"unreadable ({e})", *_span(journal or []))
            self._data(name, journal or [], running)
            return journal or [], None
        if not self.key.check(manifest):
            self.problem(f"{name}.manifest.json", self._seal_message(manifest), *_span(sealed))
            self._data(name, journal or sealed, running)
            return journal or sealed, None
        if (manifest.get("segment"), manifest.get("file_id"), manifest.get("host")) != (
            n,
            self.file_id,
            self.host,
        ):
            self.problem(
                name,
                f"its manifest is that of segment {manifest.get('segment')} of "
                f"{manifest.get('host')}/{manifest.get('file_id')}: segments reordered or moved",
                *_span(sealed),
            )
        if journal is not None and journal != sealed:
            bad = next(
                (a for a, b in zip(journal, sealed, strict=False) if a != b),
                journal[min(len(journal), len(sealed)) - 1] if journal else sealed[0],
            )
            self.problem(
                f"{name}.jsonl", "differs from the sealed manifest (edited)", bad.offset, bad.end
            )
        link = bytes.fromhex(manifest["prev_head"])
        self._data(name, sealed, link)
        if sealed and manifest.get("head") != sealed[-1].chain:
            self.problem(name, "the manifest's head is not its last chunk's", *_span(sealed))
        return sealed, link

    def _data(self, name: str, recs: list[Record], prev: bytes | None) -> None:
        """Recompute each chunk's hash from the data file; problems name the file bytes.
        `prev` links the first chunk (None: unknown, its hash is not checked)."""
        path = self.d / f"{name}.data"
        if not path.exists():
            if recs:
                self.problem(f"{name}.data", "missing", *_span(recs))
            return
        size = path.stat().st_size
        found = 0
        pos = 0
        truncated: Record | None = None
        with path.open("rb") as f:
            for r in recs:
                self.report.chunks += 1
                if r.pos != pos:
                    self.problem(name, f"chunk {r.seq} is not where it should be", r.offset, r.end)
                pos = r.pos + r.length
                if pos > size:
                    truncated = truncated or r
                    continue
                f.seek(r.pos)
                data = f.read(r.length)
                self.report.bytes += r.length
                link, prev = prev, bytes.fromhex(r.chain)  # a bad chunk does not taint the next
                if link is not None and chain_hash(link, r.meta(), data).hex() != r.chain:
                    found += 1
                    if found <= MAX_PROBLEMS_PER_SEGMENT:
                        self.problem(
                            f"{name}.data",
                            f"bytes differ from what was archived (chunk {r.seq})",
                            r.offset,
                            r.end,
                        )
        if truncated is not None:
            cut = truncated.offset + max(0, size - truncated.pos)
            self.problem(
                f"{name}.data",
                f"truncated: {pos - size} bytes missing",
                cut,
                max(r.end for r in recs),
            )
        elif size > pos:
            self.problem(
                f"{name}.data", f"{size - pos} bytes after the last chunk (appended later)"
            )
