"""Finding log files and reading them as (line, byte offset) pairs.

Lines are bytes without their terminator (LF or CRLF); offsets count bytes from the start of
the (decompressed) file, so they are stable document-id material. Decoding is the parser's
job: a stray invalid byte must not cost the whole line.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from iiswatch.errors import IngestError

CHUNK = 1 << 20
FINGERPRINT_BYTES = 1024
LOG_SUFFIXES = (".log", ".log.gz", ".txt", ".gz")


def open_log(path: Path) -> BinaryIO:
    """Open a log for reading bytes, transparently gunzipping `.gz` files."""
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return path.open("rb")
    except OSError as e:
        raise IngestError(
            f"cannot open {path}: {e.strerror}", "check the path and permissions"
        ) from e


def iter_lines(fh: BinaryIO, start: int = 0) -> Iterator[tuple[bytes, int]]:
    """Yield (line, offset) for each line from `start`. A last line without a newline is
    yielded too: for a finished file it is complete (a follower handles partial lines)."""
    if start:
        fh.seek(start)
    offset = start
    rest = b""
    while chunk := fh.read(CHUNK):
        buf = rest + chunk if rest else chunk
        lines = buf.split(b"\n")
        rest = lines.pop()
        for line in lines:
            n = len(line) + 1
            yield (line[:-1] if line.endswith(b"\r") else line), offset
            offset += n
    if rest:
        yield (rest[:-1] if rest.endswith(b"\r") else rest), offset


def fingerprint(head: bytes) -> str:
    """File identity from its first bytes: survives renames and rotation, unlike a path
    or an inode. IIS headers carry a `#Date:` line, which makes the first KiB unique."""
    return hashlib.sha256(head[:FINGERPRINT_BYTES]).hexdigest()[:32]


def file_identity(path: Path) -> str:
    with open_log(path) as fh:
        try:
            return fingerprint(fh.read(FINGERPRINT_BYTES))
        except (OSError, EOFError) as e:
            raise IngestError(f"cannot read {path}: {e}", "is it a complete gzip file?") from e


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files, directories (searched recursively for logs) and glob patterns, in a stable
    order, each once. Raises IngestError naming any input that matched nothing."""
    found: dict[Path, None] = {}
    missing = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            matches = sorted(f for f in p.rglob("*") if f.is_file() and _looks_like_log(f))
        elif p.is_file():
            matches = [p]
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
        if not matches:
            missing.append(item)
        for m in matches:
            found.setdefault(m, None)
    if missing:
        raise IngestError(
            f"no log files found at: {', '.join(missing)}",
            "give files, directories or quoted glob patterns such as 'logs/**/*.log'",
        )
    return list(found)


def _looks_like_log(f: Path) -> bool:
    name = f.name.lower()
    return name.endswith(LOG_SUFFIXES) or ".log." in name
