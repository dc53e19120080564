"""Getting a log file back out of the forensic archive, byte for byte as IIS wrote it.

Chunks are put back in file order and each is checked against its chain hash on the way out;
a byte range the archive does not hold is an error naming it, never silently skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import BinaryIO

import orjson

from iiswatch.errors import UsageError
from iiswatch.ingest.archive.layout import (
    NO_SITE,
    ArchiveError,
    Record,
    chain_hash,
    file_dirs,
    genesis,
    merge_ranges,
    parse_journal,
    segment_name,
    segment_numbers,
    uncovered,
    valid_name,
)


@dataclass(frozen=True)
class ArchivedFile:
    dir: Path
    host: str
    site: str
    file_id: str
    paths: tuple[str, ...]  # every path the agent reported for it (renames)
    ranges: tuple[tuple[int, int], ...]  # file byte ranges held

    @property
    def names(self) -> set[str]:
        return {PureWindowsPath(p).name for p in self.paths}  # splits on \ and /


def _records(d: Path) -> Iterator[tuple[int, Record]]:
    """(segment, record) for every chunk of a file archive, sealed or not."""
    for n in segment_numbers(d):
        manifest = d / f"{segment_name(n)}.manifest.json"
        jsonl = d / f"{segment_name(n)}.jsonl"
        try:
            if manifest.exists():
                chunks = orjson.loads(manifest.read_bytes())["chunks"]
                recs = [Record.from_json(c) for c in chunks]
            elif jsonl.exists():
                recs = parse_journal(jsonl.read_bytes())[0]
            else:
                recs = []
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ArchiveError(
                f"cannot read {segment_name(n)} of {d}: {e}", "run `iiswatch archive verify`"
            ) from e
        for r in recs:
            yield n, r


def describe(d: Path) -> ArchivedFile:
    recs = [r for _, r in _records(d)]
    return ArchivedFile(
        dir=d,
        host=d.parent.parent.name,
        site="" if d.parent.name == NO_SITE else d.parent.name,
        file_id=d.name,
        paths=tuple(sorted({r.path for r in recs})),
        ranges=tuple(merge_ranges([(r.offset, r.end) for r in recs])),
    )


def list_files(root: Path, host: str | None = None) -> list[ArchivedFile]:
    if host is not None and not valid_name(host):
        raise UsageError(f"not a host name: {host!r}", None)
    return [describe(d) for d in file_dirs(root, host)]


def find_file(root: Path, host: str, file: str, site: str | None = None) -> ArchivedFile:
    """The archived file of `host` whose file id, path or file name is `file`."""
    found = [
        f
        for f in list_files(root, host)
        if (site is None or f.site == site)
        and (file == f.file_id or file in f.paths or file in f.names)
    ]
    if not found:
        raise UsageError(
            f"the archive holds no file {file!r} of host {host!r}"
            + (f" in site {site!r}" if site else ""),
            "list what it holds with `iiswatch archive ls DIR --host HOST`",
        )
    if len(found) > 1:
        ids = ", ".join(f"{f.site or NO_SITE}/{f.file_id}" for f in found)
        raise UsageError(
            f"{len(found)} archived files match {file!r}: {ids}",
            "give --site or the file id instead of the name",
        )
    return found[0]


def export_file(f: ArchivedFile, out: BinaryIO, start: int = 0, end: int | None = None) -> int:
    """Write bytes [start, end) of the original file to `out` (end: the last byte held).
    Raises ArchiveError naming the first range not held or a chunk that fails its hash."""
    items = list(_records(f.dir))
    by_seq = sorted(items, key=lambda item: item[1].seq)
    link: dict[int, bytes] = {}  # seq -> chain head before it
    prev = genesis(f.host, f.file_id)
    for _, r in by_seq:
        link[r.seq] = prev
        prev = bytes.fromhex(r.chain)
    last = max((r.end for _, r in items), default=0)
    stop = last if end is None else end
    gaps = uncovered(start, stop, merge_ranges([(r.offset, r.end) for _, r in items]))
    if gaps:  # before writing anything
        a, b = gaps[0]
        raise ArchiveError(
            f"the archive does not hold file bytes {a}-{b} of {f.host}/{f.file_id}",
            f"it holds {', '.join(f'{x}-{y}' for x, y in f.ranges) or 'nothing'}; "
            "choose --from/--to inside a held range",
        )
    cur = start
    written = 0
    handles: dict[int, BinaryIO] = {}
    try:
        for n, r in sorted(items, key=lambda item: item[1].offset):
            if cur >= stop:
                break
            if r.end <= cur:
                continue
            fh = handles.get(n) or handles.setdefault(
                n, (f.dir / f"{segment_name(n)}.data").open("rb")
            )
            fh.seek(r.pos)
            data = fh.read(r.length)
            if len(data) != r.length or chain_hash(link[r.seq], r.meta(), data).hex() != r.chain:
                raise ArchiveError(
                    f"file bytes {r.offset}-{r.end} in {segment_name(n)} of {f.dir} do not match "
                    "their chain hash",
                    "run `iiswatch archive verify` on the archive",
                )
            piece = data[cur - r.offset : min(r.length, stop - r.offset)]
            out.write(piece)
            written += len(piece)
            cur += len(piece)
    except OSError as e:
        raise ArchiveError(f"cannot read the archive at {f.dir}: {e}", None) from e
    finally:
        for fh in handles.values():
            fh.close()
    return written
