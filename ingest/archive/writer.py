"""Appending chunks to the forensic archive, durably, once each.

A chunk's bytes go to the open segment's `.data` file and its record to the `.jsonl` journal,
each fsynced (and the directory when a file is created), then `head.json` is replaced
atomically: only then is the append done and may the collector acknowledge. A crash before
that leaves a torn journal line or bytes past the last record, which the next open cuts off
(that append was never acknowledged, so the agent sends it again).

Byte ranges already held for a (host, file_id) are skipped and a partly overlapping chunk is
trimmed to the new bytes, so re-sent batches are harmless; but the overlapping bytes are first
compared, byte for byte, with those held: a difference (a rewritten log, or a forger racing the
real agent) refuses the whole append (`OverlapMismatch`) and nothing is spliced in. Segments
are sealed (manifest with HMAC) when they reach `segment_bytes`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from iiswatch.durable import fsync_dir
from iiswatch.ingest.archive.keys import ArchiveKey
from iiswatch.ingest.archive.layout import (
    FORMAT_VERSION,
    HEAD,
    HOSTS,
    NO_SITE,
    ArchiveError,
    Record,
    canonical,
    chain_hash,
    genesis,
    merge_ranges,
    parse_journal,
    segment_name,
    segment_numbers,
    site_dir_name,
    uncovered,
    valid_file_id,
    valid_name,
    write_atomic,
)

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes of one file as received: `data` starts at byte `offset` of the file."""

    host: str
    site: str
    file_id: str
    path: str
    offset: int
    data: bytes
    agent: str = ""
    batch: str = ""


@dataclass(frozen=True, slots=True)
class HeadState:
    """Where a file's chain stands after an append: what the external witness records."""

    host: str
    site: str
    file_id: str
    seq: int  # records held
    head: str  # hex chain hash after the last record
    segment: int


class OverlapMismatch(ArchiveError):
    """Bytes sent for a range already archived differ from the archived ones (409)."""

    def __init__(self, host: str, file_id: str, offset: int, held_by: str, path: str) -> None:
        super().__init__(
            f"{host}/{file_id} ({path}): the bytes at offset {offset} differ from those "
            f"archived (sent by agent {held_by or '?'}); nothing of this batch was archived",
            "the log was rewritten after it was shipped, or another agent forged it",
        )
        self.host, self.file_id, self.offset, self.held_by, self.path = (
            host,
            file_id,
            offset,
            held_by,
            path,
        )


@dataclass(slots=True)
class AppendResult:
    archived: int = 0  # new bytes written
    skipped: int = 0  # bytes already held (a re-send), each compared with what is held
    records: int = 0
    heads: list[HeadState] = field(default_factory=list)  # every file the append touched


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def record_mac(key: ArchiveKey, chain: bytes) -> str:
    return key.mac(b"iiswatch-record\0" + chain)


def _mkdirs(path: Path, stop: Path) -> None:
    """Create `path` and its missing parents up to `stop`, making each new entry durable."""
    missing = []
    p = path
    while not p.exists() and p != stop:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        fsync_dir(d.parent)


@dataclass
class FileArchive:
    """The archive of one (host, file_id): its segments, chain head and byte ranges held."""

    dir: Path
    host: str
    site: str
    file_id: str
    key: ArchiveKey
    segment_bytes: int
    seq: int = 0
    head: bytes = b""
    segment: int = 1  # the last segment (open, or sealed when `sealed`)
    sealed: bool = False
    seg_size: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)
    # every record's (offset, end, segment, pos, agent): where held bytes are, for comparing
    index: list[tuple[int, int, int, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self) -> HeadState:
        return HeadState(
            self.host, self.site, self.file_id, self.seq, self.head.hex(), self.segment
        )

    def _seg(self, n: int, kind: str) -> Path:
        return self.dir / f"{segment_name(n)}.{kind}"

    # -- opening and recovery -------------------------------------------------------------

    @classmethod
    def open(
        cls, root: Path, host: str, site: str, file_id: str, key: ArchiveKey, segment_bytes: int
    ) -> FileArchive:
        base = root / HOSTS / host
        existing = sorted(base.glob(f"*/{file_id}")) if base.is_dir() else []
        if existing:  # the first site seen names the directory; (host, file_id) is the identity
            d = existing[0]
            site = d.parent.name if d.parent.name != NO_SITE else ""
        else:
            d = base / site_dir_name(site) / file_id
        fa = cls(d, host, site, file_id, key, segment_bytes, head=genesis(host, file_id))
        if existing:
            fa._recover()
        return fa

    def _read_records(self, n: int) -> list[Record]:
        manifest = self._seg(n, "manifest.json")
        if manifest.exists():
            obj = orjson.loads(manifest.read_bytes())
            return [Record.from_json(c) for c in obj["chunks"]]
        jsonl = self._seg(n, "jsonl")
        return parse_journal(jsonl.read_bytes())[0] if jsonl.exists() else []

    def _recover(self) -> None:
        """Load the state of an existing file archive and cut what a crash left behind."""
        numbers = segment_numbers(self.dir)
        head_file = self.dir / HEAD
        claimed: dict[str, Any] | None = None
        if head_file.exists():
            claimed = orjson.loads(head_file.read_bytes())
            if not self.key.check(claimed):
                raise ArchiveError(
                    f"{head_file}: its seal does not match this collector's key",
                    "run `iiswatch archive verify` on the archive; is this the right --key?",
                )
        elif len(numbers) > 1:
            raise ArchiveError(f"{head_file} is missing", "run `iiswatch archive verify`")
        acked = int(claimed["seq"]) if claimed else 0
        try:
            ranges: list[tuple[int, int]] = []
            recs: list[Record] = []
            for n in numbers:
                self.segment = n
                self.sealed = self._seg(n, "manifest.json").exists()
                if self.sealed:
                    recs = self._read_records(n)
                elif n != numbers[-1]:
                    raise ArchiveError(f"segment {n} of {self.dir} is not sealed", None)
                else:
                    recs = self._repair_open_segment(n, acked, claimed)
                if recs and recs[0].seq != self.seq:
                    raise ArchiveError(f"segment {n} of {self.dir} starts at a wrong seq", None)
                ranges.extend((r.offset, r.end) for r in recs)
                self.index.extend((r.offset, r.end, n, r.pos, r.agent) for r in recs)
                self.seg_size = recs[-1].pos + recs[-1].length if recs else 0
                if recs:
                    self.seq, self.head = recs[-1].seq + 1, bytes.fromhex(recs[-1].chain)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ArchiveError(
                f"cannot read the archive of {self.host}/{self.file_id} at {self.dir}: {e}",
                "run `iiswatch archive verify` on the archive",
            ) from e
        if self.seq < acked:
            raise ArchiveError(
                f"{self.dir} holds {self.seq} chunks but {acked} were acknowledged",
                "run `iiswatch archive verify` on the archive",
            )
        self.ranges = merge_ranges(ranges)
        if claimed is None or claimed.get("seq") != self.seq:
            self._write_head()

    def _repair_open_segment(
        self, n: int, acked: int, claimed: dict[str, Any] | None
    ) -> list[Record]:
        """Cut what a crash left behind in the open segment: a torn journal line, records
        after the acknowledged head that do not check out, bytes after the last record."""
        jsonl, data = self._seg(n, "jsonl"), self._seg(n, "data")
        raw = jsonl.read_bytes() if jsonl.exists() else b""
        recs, ends = parse_journal(raw)
        size = data.stat().st_size if data.exists() else 0
        keep: list[Record] = []
        prev = self._prev_head(n)
        for r in recs:
            if r.seq < acked:  # acknowledged: kept as is (`archive verify` checks deeply)
                keep.append(r)
                prev = bytes.fromhex(r.chain)
                continue
            if r.pos + r.length > size:  # written but not acknowledged: keep it if intact
                break
            with data.open("rb") as f:
                f.seek(r.pos)
                chunk = f.read(r.length)
            h = chain_hash(prev, r.meta(), chunk)
            if h.hex() != r.chain or not self.key.check_mac(b"iiswatch-record\0" + h, r.mac):
                break
            keep.append(r)
            prev = h
        in_segment = bool(keep) and keep[-1].seq >= acked - 1 >= keep[0].seq
        if (
            claimed is not None
            and in_segment
            and keep[acked - 1 - keep[0].seq].chain != claimed["head"]
        ):
            raise ArchiveError(f"{jsonl} does not lead to the acknowledged head", None)
        if len(keep) != len(recs) or (ends[-1] if ends else 0) != len(raw):
            log.warning("archive %s: cutting an unacknowledged journal tail", jsonl)
            with jsonl.open("r+b") as f:
                f.truncate(ends[len(keep) - 1] if keep else 0)
                os.fsync(f.fileno())
        end = keep[-1].pos + keep[-1].length if keep else 0
        if size > end:
            log.warning("archive %s: cutting %d unacknowledged bytes", data, size - end)
            with data.open("r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        return keep

    def _prev_head(self, n: int) -> bytes:
        """The chain head before segment `n`: the previous manifest's head, or genesis."""
        if n <= 1:
            return genesis(self.host, self.file_id)
        prev = self._seg(n - 1, "manifest.json")
        if not prev.exists():
            raise ArchiveError(f"segment {n - 1} of {self.dir} is not sealed", None)
        return bytes.fromhex(orjson.loads(prev.read_bytes())["head"])

    # -- appending ------------------------------------------------------------------------

    def append(self, chunks: list[Chunk], received: str | None = None) -> AppendResult:
        """Archive the bytes of `chunks` not held yet; durable when this returns."""
        result = AppendResult()
        received = received or _now()
        with self.lock:
            have = list(self.ranges)
            pieces: list[tuple[Chunk, int, int]] = []  # chunk, start, end (file offsets)
            for c in chunks:
                end = c.offset + len(c.data)
                new = uncovered(c.offset, end, have)
                result.skipped += len(c.data) - sum(b - a for a, b in new)
                self._compare_held(c, new, pieces)
                for a, b in new:
                    pieces.append((c, a, b))
                have = merge_ranges([*have, *new])
            if not pieces:
                result.heads.append(self.state())
                return result
            if not self.dir.exists():
                _mkdirs(self.dir, self.dir.parents[3])
            group: list[tuple[Record, bytes]] = []
            for c, a, b in pieces:
                if self.sealed or (self.seg_size >= self.segment_bytes and self.seg_size):
                    self._flush(group)
                    group = []
                    if not self.sealed:
                        self._seal(self.segment)
                    self.segment, self.sealed, self.seg_size = self.segment + 1, False, 0
                data = c.data[a - c.offset : b - c.offset]
                rec = Record(
                    self.seq, a, b - a, self.seg_size, c.path, c.agent, c.batch, received, "", ""
                )
                h = chain_hash(self.head, rec.meta(), data)
                rec = replace(rec, chain=h.hex(), mac=record_mac(self.key, h))
                group.append((rec, data))
                self.index.append((a, b, self.segment, self.seg_size, c.agent))
                self.seq, self.head, self.seg_size = self.seq + 1, h, self.seg_size + len(data)
                result.archived += len(data)
                result.records += 1
            self._flush(group)
            self._write_head()
            self.ranges = have
            result.heads.append(self.state())
        return result

    def check_overlaps(self, chunks: list[Chunk]) -> None:
        """Compare `chunks` with the bytes held, writing nothing (caller holds the lock)."""
        have = list(self.ranges)
        pending: list[tuple[Chunk, int, int]] = []
        for c in chunks:
            new = uncovered(c.offset, c.offset + len(c.data), have)
            self._compare_held(c, new, pending)
            pending += [(c, a, b) for a, b in new]
            have = merge_ranges([*have, *new])

    def _compare_held(
        self, c: Chunk, new: list[tuple[int, int]], pending: list[tuple[Chunk, int, int]]
    ) -> None:
        """Raise OverlapMismatch unless every byte of `c` that is already held (archived
        before, or earlier in this same append) equals the byte held. `new` is the rest."""
        end = c.offset + len(c.data)
        sources: list[tuple[int, int, int, int, str, Chunk | None]] = [
            (a, b, seg, pos, agent, None) for a, b, seg, pos, agent in self.index
        ]
        sources += [(a, b, 0, 0, p.agent, p) for p, a, b in pending]
        for a, b, seg, pos, agent, chunk in sources:
            lo, hi = max(a, c.offset), min(b, end)
            if lo >= hi:
                continue
            if chunk is not None:
                held = chunk.data[lo - chunk.offset : hi - chunk.offset]
            else:
                with self._seg(seg, "data").open("rb") as f:
                    f.seek(pos + lo - a)
                    held = f.read(hi - lo)
            sent = c.data[lo - c.offset : hi - c.offset]
            if held != sent:
                at = lo + next(
                    (i for i, (x, y) in enumerate(zip(held, sent, strict=False)) if x != y),
                    min(len(held), len(sent)),
                )
                raise OverlapMismatch(self.host, self.file_id, at, agent, c.path)

    def _flush(self, group: list[tuple[Record, bytes]]) -> None:
        if not group:
            return
        data_path, jsonl_path = self._seg(self.segment, "data"), self._seg(self.segment, "jsonl")
        created = not data_path.exists() or not jsonl_path.exists()
        for path, payload in (
            (data_path, b"".join(d for _, d in group)),
            (jsonl_path, b"".join(canonical(r.to_json()) + b"\n" for r, _ in group)),
        ):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        if created:
            fsync_dir(self.dir)

    def _write_head(self) -> None:
        head: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "host": self.host,
            "site": self.site,
            "file_id": self.file_id,
            "segment": self.segment,
            "seq": self.seq,
            "head": self.head.hex(),
            "key_id": self.key.key_id,
        }
        head["mac"] = self.key.seal(head)
        write_atomic(self.dir / HEAD, canonical(head))

    def _seal(self, n: int) -> None:
        """Write segment `n`'s manifest (HMAC-sealed) and make its files read-only."""
        recs = self._read_records(n)
        data_path = self._seg(n, "data")
        digest = hashlib.sha256()
        with data_path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        manifest: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "host": self.host,
            "site": self.site,
            "file_id": self.file_id,
            "segment": n,
            "paths": sorted({r.path for r in recs}),
            "ranges": merge_ranges([(r.offset, r.end) for r in recs]),
            "data_bytes": sum(r.length for r in recs),
            "data_sha256": digest.hexdigest(),
            "prev_head": self._prev_head(n).hex(),
            "head": recs[-1].chain if recs else self._prev_head(n).hex(),
            "chunks": [r.to_json() for r in recs],
            "sealed_at": _now(),
            "key_id": self.key.key_id,
        }
        manifest["mac"] = self.key.seal(manifest)
        write_atomic(self._seg(n, "manifest.json"), canonical(manifest), mode=0o400)
        for kind in ("data", "jsonl"):
            p = self._seg(n, kind)
            if p.exists():
                p.chmod(0o400)
        self.sealed = True

    def seal(self) -> bool:
        """Seal the open segment now (shutdown, tests); False when there is none."""
        with self.lock:
            if self.sealed or not self.seg_size:
                return False
            self._seal(self.segment)
            return True


def _lock_archive(root: Path) -> BinaryIO | None:
    """An exclusive lock on the archive for this process: two writers appending to the same
    segments would interleave their records. Advisory, POSIX only (where collectors run)."""
    try:
        import fcntl
    except ImportError:
        return None
    fh = (root / ".lock").open("ab")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        fh.close()
        raise ArchiveError(
            f"another collector is writing to the archive {root}",
            "stop it first, or give this one its own --archive",
        ) from e
    return fh


class ArchiveWriter:
    """The archive of a collector: one `FileArchive` per (host, file_id), opened on first use.
    Thread-safe: appends to different files run in parallel, to one file in turn."""

    def __init__(
        self, root: Path, key: ArchiveKey, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> None:
        self.root = root
        self.key = key
        self.segment_bytes = segment_bytes
        self._files: dict[tuple[str, str], FileArchive] = {}
        self._lock = threading.Lock()
        if not root.exists():
            root.mkdir(parents=True, mode=0o700)
        if not (root / HOSTS).exists():
            _mkdirs(root / HOSTS, root)
        self._lock_file = _lock_archive(root)

    def close(self) -> None:
        """Let another writer open the archive (the lock also ends with the process)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def file(self, host: str, site: str, file_id: str) -> FileArchive:
        if not valid_name(host) or (site and not valid_name(site)) or not valid_file_id(file_id):
            raise ArchiveError(f"unsafe archive name: {host!r}/{site!r}/{file_id!r}", None)
        with self._lock:
            fa = self._files.get((host, file_id))
            if fa is None:
                fa = FileArchive.open(self.root, host, site, file_id, self.key, self.segment_bytes)
                self._files[(host, file_id)] = fa
            return fa

    def append(self, chunks: list[Chunk], received: str | None = None) -> AppendResult:
        """Archive chunks (of any files); durable when this returns."""
        total = AppendResult()
        received = received or _now()
        by_file: dict[tuple[str, str], list[Chunk]] = {}
        for c in chunks:
            by_file.setdefault((c.host, c.file_id), []).append(c)
        files = [(self.file(g[0].host, g[0].site, g[0].file_id), g) for g in by_file.values()]
        for fa, group in files:  # every file compared before any is written: all or nothing
            with fa.lock:
                fa.check_overlaps(group)
        for fa, group in files:
            r = fa.append(group, received)
            total.archived += r.archived
            total.skipped += r.skipped
            total.records += r.records
            total.heads += r.heads
        return total

    def seal_all(self) -> int:
        with self._lock:
            files = list(self._files.values())
        return sum(fa.seal() for fa in files)
