"""Following log files as IIS writes them: which files, what each one is, and the next whole
lines to ship from each, read straight from the file (the file is the buffer).

File identity. A file's id is `ingest.files.fingerprint` of its first 1024 bytes, the same id
`iiswatch ingest` gives the finished file, so documents from either path coincide. IIS only
appends, so those bytes never change once written. A file still shorter than 1024 bytes is not
shipped until it reaches 1024 bytes, or until its size has not changed for `identity_settle`
seconds (2 s by default) while it holds at least one whole line; then its id is the fingerprint
of the bytes it holds. Either way the id is fixed at that moment, stored in the checkpoint with
the number of bytes it covers (`id_bytes`), and never recomputed: after a restart a file is
recognised by fingerprinting its first `id_bytes` bytes again. The path only says where to look:
a file renamed (while followed, or while the agent was stopped) keeps its id and its position,
and a different file appearing under a known path is a new file. Small files are the one case
where a line may wait longer than `batch_max_wait` before it leaves the agent.

Reading. Only whole lines are shipped (a last line without its newline waits in the file), at
most one batch is read ahead of the collector's acknowledgement, and a position moves forward
in the checkpoint only once the collector acknowledged it. A file that shrinks below the read
position was truncated: it is read again from 0 under a new id, and a warning is logged. A file
renamed or deleted while open is read to its end through the open handle before it is let go.
Nothing here is POSIX-only: `os.fstat`/`os.path.samestat` work on Windows, where a log file is
only kept open while it is active, so IIS and clean-up scripts can delete old logs.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import ModuleType
from typing import Any, BinaryIO

from iiswatch.ingest.agent.checkpoint import FileCheckpoint
from iiswatch.ingest.agent.config import InputConfig
from iiswatch.ingest.files import FINGERPRINT_BYTES, fingerprint
from iiswatch.ingest.model import Source
from iiswatch.ingest.parse import LogParser

log = logging.getLogger(__name__)

MAX_LINE = 16 << 20  # a "line" longer than this without a newline is not a log line
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def path_key(path: str | os.PathLike[str], pathmod: ModuleType = os.path) -> str:
    """How two spellings of one path compare: case-insensitively, either slash, on Windows."""
    return str(pathmod.normcase(pathmod.abspath(path)))


def site_of(path: PurePath, configured: str | None) -> str:
    """The site label for the collector: configured, else the folder IIS names per site
    (`W3SVC1`, `HTTPERR`) made safe as one directory name in the archive, else ""."""
    if configured is not None:
        return configured
    label = _UNSAFE.sub("_", path.parent.name).replace("..", "_").lstrip("._-")
    return label[:253]


def _is_directive(line: bytes) -> bool:
    return line.lstrip(b"\xef\xbb\xbf\x00")[:1] == b"#"


def _holds(path: Path, rec: FileCheckpoint) -> bool:
    """Whether the file at `path` is the one `rec` describes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(rec.id_bytes)
    except OSError:
        return False
    return len(head) == rec.id_bytes and fingerprint(head) == rec.file_id


class HeaderTracker:
    """The `LogParser.state()` at a position without parsing data lines: only directives and
    the first non-blank line (format detection) change it, so only those are fed."""

    def __init__(self, source: Source, fmt: str | None, state: dict[str, Any] | None) -> None:
        self._parser = LogParser(source, fmt)
        if state:
            self._parser.restore(state)

    @property
    def format_name(self) -> str | None:
        return self._parser.format_name

    def feed(self, data: bytes, offset: int) -> None:
        """`data`: whole lines starting at `offset`."""
        parser = self._parser
        if parser.format_name is not None and b"#" not in data:
            return
        pos = offset
        for raw in data.split(b"\n")[:-1]:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if parser.format_name is None or _is_directive(line):
                parser.feed(line, pos)
            pos += len(raw) + 1

    def state(self) -> dict[str, Any]:
        return self._parser.state()


class FollowedFile:
    """One file: where it is, what it is, how far it is read and acknowledged."""

    def __init__(self, path: Path, spec: InputConfig, host: str, now: float) -> None:
        self.path = path
        self.spec = spec
        self.host = host
        self.site = site_of(path, spec.site)
        self.file_id: str | None = None
        self.id_bytes = 0
        self.fh: BinaryIO | None = None
        self.gone = False  # its path no longer leads to it: drain, then let go
        self.committed = 0
        self.committed_state: dict[str, Any] = {}
        self.read_offset = 0
        self.tracker: HeaderTracker | None = None
        self.size_seen = -1
        self.changed_at = now
        self.warned_long_line = False
        self.warned_error = False

    @property
    def format(self) -> str | None:
        if self.spec.format is not None:
            return self.spec.format
        return self.tracker.format_name if self.tracker is not None else None

    def identify(self, file_id: str, id_bytes: int, offset: int, state: dict[str, Any]) -> None:
        self.file_id, self.id_bytes = file_id, id_bytes
        self.committed = self.read_offset = offset
        self.committed_state = dict(state)
        self._new_tracker(state)

    def _new_tracker(self, state: dict[str, Any]) -> None:
        assert self.file_id is not None
        source = Source(path=str(self.path), host_name=self.host, file_id=self.file_id)
        self.tracker = HeaderTracker(source, self.spec.format, state)

    def rewind(self) -> None:
        """Forget what was read past the acknowledged position."""
        if self.file_id is not None and self.read_offset != self.committed:
            self.read_offset = self.committed
            self._new_tracker(self.committed_state)

    def forget_identity(self) -> None:
        self.file_id, self.id_bytes, self.tracker = None, 0, None
        self.committed = self.read_offset = 0
        self.committed_state = {}

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    def record(self, seen: float) -> FileCheckpoint:
        assert self.file_id is not None
        return FileCheckpoint(
            file_id=self.file_id,
            path=str(self.path),
            id_bytes=self.id_bytes,
            offset=self.committed,
            parser_state=self.committed_state,
            site=self.site,
            seen=seen,
        )


@dataclass
class Chunk:
    """Whole lines of one file from `offset`; `parser_state` is in force at `offset`."""

    file: FollowedFile
    file_id: str
    offset: int
    parser_state: dict[str, Any]
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    lines: int = 0
    end_state: dict[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


@dataclass
class Batch:
    max_bytes: int
    max_lines: int
    chunks: dict[int, Chunk] = field(default_factory=dict)  # id(FollowedFile) -> chunk
    size: int = 0
    lines: int = 0
    started: float | None = None  # monotonic time the first line was read

    @property
    def full(self) -> bool:
        return self.size >= self.max_bytes or self.lines >= self.max_lines

    def __bool__(self) -> bool:
        return self.lines > 0

    def add(self, f: FollowedFile, offset: int, data: bytes, lines: int, now: float) -> Chunk:
        chunk = self.chunks.get(id(f))
        if chunk is None:
            assert f.tracker is not None and f.file_id is not None
            chunk = self.chunks[id(f)] = Chunk(f, f.file_id, offset, f.tracker.state())
        chunk.parts.append(data)
        chunk.size += len(data)
        chunk.lines += lines
        self.size += len(data)
        self.lines += lines
        if self.started is None:
            self.started = now
        return chunk


class Follower:
    """Every file matching the inputs, each followed from its checkpoint."""

    def __init__(
        self,
        inputs: Sequence[InputConfig],
        records: Iterable[FileCheckpoint],
        *,
        host: str,
        identity_settle: float = 2.0,
        close_inactive: float = 300.0,
        forget_after: float = 7 * 86400.0,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.inputs = list(inputs)
        self.host = host
        self.identity_settle = identity_settle
        self.close_inactive = close_inactive
        self.forget_after = forget_after
        self.clock = clock
        self.wallclock = wallclock
        self.files: dict[str, FollowedFile] = {}  # path_key -> file at that path
        self.draining: list[FollowedFile] = []  # renamed away or deleted while open
        self.unclaimed: list[FileCheckpoint] = list(records)
        self._turn = 0

    # -- which files -------------------------------------------------------------------------
    def scan(self) -> None:
        """Find files matching the inputs; notice files renamed away or deleted."""
        now = self.clock()
        found: dict[str, tuple[Path, InputConfig]] = {}
        for spec in self.inputs:
            for name in sorted(glob.glob(spec.path, recursive=True)):
                if os.path.isfile(name):
                    found.setdefault(path_key(name), (Path(os.path.abspath(name)), spec))
        for key, f in list(self.files.items()):
            if key not in found or not self._still_at_path(f):
                del self.files[key]
                self._let_go(f, "renamed or deleted")
        for key, (path, spec) in found.items():
            if key in self.files:
                continue
            moved = self._draining_file_at(path)
            if moved is not None:
                log.info("%s was renamed to %s; following it there", moved.path, path)
                self.draining.remove(moved)
                moved.path, moved.gone = path, False
                self.files[key] = moved
                continue
            self.files[key] = FollowedFile(path, spec, self.host, now)

    def _still_at_path(self, f: FollowedFile) -> bool:
        if f.fh is None:
            return True  # checked by fingerprint when it is opened again
        try:
            return os.path.samestat(os.stat(f.path), os.fstat(f.fh.fileno()))
        except OSError:
            return False

    def _draining_file_at(self, p: Path) -> FollowedFile | None:
        if not self.draining:
            return None
        try:
            st = os.stat(p)
        except OSError:
            return None
        for d in self.draining:
            if d.fh is not None and os.path.samestat(st, os.fstat(d.fh.fileno())):
                return d
        return None

    def _let_go(self, f: FollowedFile, why: str) -> None:
        if f.fh is not None and f.file_id is not None:
            log.info("%s was %s; reading it to the end", f.path, why)
            f.gone = True
            self.draining.append(f)
        else:
            self._release(f)

    def _release(self, f: FollowedFile) -> None:
        """Stop following `f`; its checkpoint stays (unclaimed) in case it shows up again."""
        f.close()
        if f.file_id is not None:
            self.unclaimed.append(f.record(self.wallclock()))

    # -- reading -------------------------------------------------------------------------------
    def fill(self, batch: Batch) -> int:
        """Read whole lines into `batch` until it is full or nothing more is there; returns the
        number of lines added. Files take turns, so a busy file cannot starve the others."""
        files = list(self.files.values()) + self.draining
        if not files:
            return 0
        self._turn = (self._turn + 1) % len(files)
        before = batch.lines
        for f in files[self._turn :] + files[: self._turn]:
            if batch.full:
                break
            try:
                self._read(f, batch)
                f.warned_error = False
            except OSError as e:
                if not f.warned_error:
                    log.warning("cannot read %s: %s; will keep trying", f.path, e)
                    f.warned_error = True
                f.close()  # what was read is in the batch; the rest is read again later
        for f in [d for d in self.draining if d.fh is None]:
            self.draining.remove(f)
            self._release(f)
        return batch.lines - before

    def _open(self, f: FollowedFile) -> bool:
        try:
            f.fh = open(f.path, "rb")  # noqa: SIM115 - kept open across polls while active
        except FileNotFoundError:
            return False
        if f.file_id is not None and not self._same_identity(f):
            log.warning("%s now holds another file; following it from the start", f.path)
            self.unclaimed.append(f.record(self.wallclock()))
            f.forget_identity()
        return True

    def _same_identity(self, f: FollowedFile) -> bool:
        assert f.fh is not None
        f.fh.seek(0)
        head = f.fh.read(f.id_bytes)
        return len(head) == f.id_bytes and fingerprint(head) == f.file_id

    def _read(self, f: FollowedFile, batch: Batch) -> None:
        now = self.clock()
        if f.fh is None:
            if f.gone:
                return
            if f.file_id is not None:
                try:
                    if os.stat(f.path).st_size == f.committed:
                        return  # idle and fully shipped: no need to open it
                except OSError:
                    return
            if not self._open(f):
                return
        assert f.fh is not None
        size = os.fstat(f.fh.fileno()).st_size
        if size != f.size_seen:
            f.size_seen, f.changed_at = size, now
        if f.file_id is None and not self._identify(f, size, now):
            return
        assert f.tracker is not None
        if size < f.read_offset:
            if id(f) in batch.chunks:
                return  # ship what was read first; the truncation is handled next round
            log.warning(
                "%s shrank from %d to %d bytes (truncated): reading it again from the start "
                "as a new file",
                f.path,
                f.read_offset,
                size,
            )
            f.forget_identity()  # the bytes its checkpoint describes exist no more
            f.size_seen, f.changed_at = size, now
            return
        if size == f.read_offset:
            idle = now - f.changed_at >= (self.identity_settle if f.gone else self.close_inactive)
            if f.committed == f.read_offset and (f.gone or idle):
                f.close()  # drained (renamed/deleted) or idle: let the OS have it back
            return
        self._read_lines(f, batch, size, now)

    def _read_lines(self, f: FollowedFile, batch: Batch, size: int, now: float) -> None:
        assert f.fh is not None and f.tracker is not None
        room = batch.max_bytes - batch.size
        if room <= 0:
            return
        f.fh.seek(f.read_offset)
        data = f.fh.read(min(size - f.read_offset, room))
        end = data.rfind(b"\n")
        if end < 0:
            if batch or len(data) == size - f.read_offset:
                return  # a partial last line: wait for its newline (or the next batch)
            data += f.fh.read(MAX_LINE - len(data))  # one line longer than a whole batch
            end = data.find(b"\n")
            if end < 0:
                if not f.warned_long_line:
                    f.warned_long_line = True
                    log.error(
                        "%s: no newline in %d bytes at offset %d; waiting",
                        f.path,
                        len(data),
                        f.read_offset,
                    )
                return
        data = data[: end + 1]
        lines = data.count(b"\n")
        room_lines = batch.max_lines - batch.lines
        if lines > room_lines:
            cut = -1
            for _ in range(room_lines):
                cut = data.index(b"\n", cut + 1)
            data, lines = data[: cut + 1], room_lines
        if not lines:
            return
        chunk = batch.add(f, f.read_offset, data, lines, now)
        f.tracker.feed(data, f.read_offset)
        f.read_offset += len(data)
        chunk.end_state = f.tracker.state()

    def _identify(self, f: FollowedFile, size: int, now: float) -> bool:
        """Fix the file's id (see the module docstring); False while it must wait."""
        assert f.fh is not None
        f.fh.seek(0)
        head = f.fh.read(FINGERPRINT_BYTES)
        rec = self._claim(f, head)
        if rec is not None:
            f.identify(rec.file_id, rec.id_bytes, rec.offset, rec.parser_state)
            if rec.path != str(f.path):
                log.info("%s is %s, renamed; resuming at offset %d", f.path, rec.path, rec.offset)
            return True
        if len(head) < FINGERPRINT_BYTES:
            settled = now - f.changed_at >= self.identity_settle
            if not (settled and b"\n" in head):
                return False
        f.identify(fingerprint(head), len(head), 0, {})
        return True

    def _claim(self, f: FollowedFile, head: bytes) -> FileCheckpoint | None:
        """The checkpoint of this file, if the agent followed it before: the one recorded at
        this path, else one whose path is gone (a file renamed while the agent was stopped)."""
        here = path_key(f.path)
        candidates = sorted(
            (r for r in self.unclaimed if r.id_bytes <= len(head)),
            key=lambda r: path_key(r.path) != here,
        )
        for r in candidates:
            if fingerprint(head[: r.id_bytes]) != r.file_id:
                continue
            if path_key(r.path) != here and _holds(Path(r.path), r):
                continue  # the original is still where it was: this is a copy
            self.unclaimed.remove(r)
            return r
        return None

    # -- acknowledgement -----------------------------------------------------------------------
    def acknowledge(self, batch: Batch) -> None:
        """The collector holds `batch`: its ends become the committed positions."""
        for chunk in batch.chunks.values():
            f = chunk.file
            if f.file_id == chunk.file_id and f.committed == chunk.offset:
                f.committed, f.committed_state = chunk.end, chunk.end_state

    def rewind(self) -> None:
        for f in list(self.files.values()) + self.draining:
            f.rewind()

    def records(self) -> list[FileCheckpoint]:
        """Checkpoints to save: followed files, then recent ones no longer seen."""
        wall = self.wallclock()
        out = [
            f.record(wall)
            for f in list(self.files.values()) + self.draining
            if f.file_id is not None
        ]
        self.unclaimed = [r for r in self.unclaimed if wall - r.seen < self.forget_after]
        return out + self.unclaimed

    def lag(self) -> dict[str, int]:
        """Bytes written but not yet acknowledged, per file path."""
        out = {}
        for f in list(self.files.values()) + self.draining:
            if f.size_seen >= 0:
                out[str(f.path)] = max(f.size_seen - f.committed, 0)
        return out

    def close(self) -> None:
        for f in list(self.files.values()) + self.draining:
            f.close()
