"""Logs that are not UTF-8 bytes: IIS and PowerShell on Windows write UTF-16 (with a byte
order mark, or without one), which read as bytes is a NUL between every character and
turns every line into a dead letter. Transcode such a stream to UTF-8 before the line
splitter sees it; offsets then count bytes of the UTF-8 form (stable for a finished file).
"""

from __future__ import annotations

import codecs
from typing import BinaryIO

from iiswatch.errors import UsageError

SNIFF_BYTES = 64


def check_encoding(name: str | None) -> str | None:
    """A Python codec name, or a UsageError naming the bad one."""
    if name is None:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UsageError(
            f"unknown encoding {name!r}", "use a name such as utf-8, utf-16, cp1252, latin-1"
        ) from None


def sniff_encoding(head: bytes) -> str | None:
    """The encoding of a stream whose first bytes are `head`, when it is not UTF-8-compatible:
    "utf-16" for a UTF-16 byte order mark (the codec reads and drops it), "utf-16-le"/"-be"
    for UTF-16 text without one (a NUL after or before each ASCII character). None otherwise
    (UTF-8, with or without its BOM, which the parsers already skip)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head[: SNIFF_BYTES - SNIFF_BYTES % 2]
    if len(sample) >= 4:
        odd_nuls = sample[1::2].count(0)
        even_nuls = sample[0::2].count(0)
        half = len(sample) // 2
        if odd_nuls >= half * 0.9 and even_nuls == 0:
            return "utf-16-le"
        if even_nuls >= half * 0.9 and odd_nuls == 0:
            return "utf-16-be"
    return None


class Utf8Transcoder:
    """A read-only binary stream giving the UTF-8 bytes of `raw` decoded as `encoding`.
    Undecodable bytes become U+FFFD rather than stopping the file: the parser dead-letters
    the one line that holds them."""

    def __init__(self, raw: BinaryIO, encoding: str, head: bytes = b"") -> None:
        self._raw = raw
        self._head = head
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._buf = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            chunk = self._head or self._raw.read(1 << 16 if n < 0 else max(n, 1 << 12))
            self._head = b""
            if not chunk:
                self._eof = True
                self._buf += self._decoder.decode(b"", final=True).encode()
                break
            self._buf += self._decoder.decode(chunk).encode()
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def seek(self, offset: int) -> None:
        # offsets are in the UTF-8 form: read forward to it (only at the start of a file)
        self.read(offset)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Utf8Transcoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decoded(raw: BinaryIO, encoding: str | None = None) -> BinaryIO:
    """`raw` as UTF-8 bytes: transcoded when `encoding` says so or the first bytes show
    UTF-16; otherwise `raw` itself, untouched (UTF-8 and ASCII logs pay nothing)."""
    head = raw.read(SNIFF_BYTES)
    enc = encoding or sniff_encoding(head)
    if enc is None or codecs.lookup(enc).name == "utf-8":
        return _Prefixed(raw, head)  # type: ignore[return-value]
    return Utf8Transcoder(raw, enc, head)  # type: ignore[return-value]


class _Prefixed:
    """`raw` with `head` (already read to sniff it) put back in front."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw = raw
        self._head = head

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._raw.read(n)
        if n < 0:
            out, self._head = self._head + self._raw.read(), b""
            return out
        out, self._head = self._head[:n], self._head[n:]
        if len(out) < n:
            out += self._raw.read(n - len(out))
        return out

    def seek(self, offset: int) -> None:
        self._head = b""
        self._raw.seek(offset)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _Prefixed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
