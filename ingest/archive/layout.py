"""Where the forensic archive keeps things and how a chunk is recorded and chained.

    ARCHIVE/
      agents.json                          token hashes (collector auth), 0600
      hosts/<host>/<site>/<file_id>/
        seg-000001.data                    raw log bytes, chunks appended in arrival order
        seg-000001.jsonl                   one record per chunk: where its bytes are, its chain hash
        seg-000001.manifest.json           written when the segment is sealed (HMAC)
        seg-000002.data ...                the open segment has no manifest yet
        head.json                          chunk count and chain head after the last ack (HMAC)

Every chunk extends one SHA-256 chain per (host, file_id):
``h_n = SHA256(h_{n-1} || len(meta) || meta || bytes)``, where meta is the record's canonical
JSON (sorted keys) without its `chain` and `mac`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from iiswatch.durable import fsync_dir
from iiswatch.errors import EXIT_FINDINGS, IiswatchError

FORMAT_VERSION = 1
HOSTS = "hosts"
HEAD = "head.json"
NO_SITE = "_"  # directory for chunks whose site is "" (unknown)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_FILE_ID = re.compile(r"[0-9a-f]{16,64}")
_SEGMENT = re.compile(r"seg-(\d{6,})\.(data|jsonl|manifest\.json)")

# Record fields that go into the chain (everything but `chain` and `mac`).
META_FIELDS = ("seq", "offset", "length", "pos", "path", "agent", "batch", "received")


class ArchiveError(IiswatchError):
    """The archive cannot be written or read as asked (corrupted state, gaps in an export)."""

    exit_code = EXIT_FINDINGS


def valid_name(name: str) -> bool:
    """A host or site name that is safe as one directory name (no `..`, no separators)."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def valid_file_id(file_id: str) -> bool:
    return bool(_FILE_ID.fullmatch(file_id))


def site_dir_name(site: str) -> str:
    return site or NO_SITE


def segment_name(n: int) -> str:
    return f"seg-{n:06d}"


def segment_numbers(file_dir: Path) -> list[int]:
    """Numbers of every segment that has at least one of its files in `file_dir`."""
    found = set()
    for entry in os.listdir(file_dir):
        m = _SEGMENT.fullmatch(entry)
        if m:
            found.add(int(m.group(1)))
    return sorted(found)


def file_dirs(root: Path, host: str | None = None) -> list[Path]:
    """Every file directory (hosts/<host>/<site>/<file_id>) in the archive, sorted."""
    base = root / HOSTS
    pattern = f"{host}/*/*" if host else "*/*/*"
    return sorted(p for p in base.glob(pattern) if p.is_dir())


def genesis(host: str, file_id: str) -> bytes:
    seed = f"iiswatch-archive-v{FORMAT_VERSION}\0{host}\0{file_id}"
    return hashlib.sha256(seed.encode()).digest()


def canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev: bytes, meta: dict[str, Any], data: bytes | memoryview) -> bytes:
    m = canonical({k: meta[k] for k in META_FIELDS})
    h = hashlib.sha256(prev)
    h.update(len(m).to_bytes(4, "big"))
    h.update(m)
    h.update(data)
    return h.digest()


@dataclass(frozen=True, slots=True)
class Record:
    """One archived chunk: `length` bytes of the file at `offset`, at `pos` in its segment."""

    seq: int
    offset: int
    length: int
    pos: int
    path: str
    agent: str
    batch: str
    received: str
    chain: str  # hex h_n
    mac: str  # hex HMAC(key, h_n): each record is sealed, the open segment too

    @property
    def end(self) -> int:
        return self.offset + self.length

    def meta(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in META_FIELDS}

    def to_json(self) -> dict[str, Any]:
        return {**self.meta(), "chain": self.chain, "mac": self.mac}

    @classmethod
    def from_json(cls, obj: Any) -> Record:
        if not isinstance(obj, dict):
            raise ValueError("record is not an object")
        try:
            rec = cls(**{k: obj[k] for k in (*META_FIELDS, "chain", "mac")})
        except KeyError as e:
            raise ValueError(f"record lacks {e.args[0]!r}") from e
        ints = (rec.seq, rec.offset, rec.length, rec.pos)
        if not all(type(v) is int and v >= 0 for v in ints):
            raise ValueError("record has a negative or non-integer position")
        return rec


def parse_journal(raw: bytes) -> tuple[list[Record], list[int]]:
    """Records of a `.jsonl` journal and where each record's line ends; a torn last line (a
    crash mid-write) is left out. Raises ValueError on a bad complete line."""
    records, ends = [], []
    pos = 0
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        records.append(Record.from_json(orjson.loads(line)))
        pos += len(line)
        ends.append(pos)
    return records, ends


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def uncovered(start: int, end: int, have: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [start, end) not in the sorted, merged ranges `have`."""
    out = []
    cur = start
    for a, b in have:
        if b <= cur:
            continue
        if a >= end:
            break
        if a > cur:
            out.append((cur, a))
        cur = max(cur, b)
        if cur >= end:
            break
    if cur < end:
        out.append((cur, end))
    return out


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
