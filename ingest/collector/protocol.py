"""The agent → collector batch (docs/design/shipping-protocol.md): decoding a request body
under size limits and validating it into typed values, with a reason for every refusal."""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iiswatch.ingest.archive.layout import valid_file_id, valid_name
from iiswatch.ingest.model import FORMATS


class BatchError(Exception):
    """The batch is malformed (400): `reason` says what, for the agent's log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooLarge(Exception):
    """The body, or what it decompresses to, exceeds the limit (413)."""


# No file is a petabyte: an offset past this cannot be real, and one near 2^63 would overflow
# Elasticsearch's `long` after the archive had stored it (then 503 on every retry).
MAX_FILE_OFFSET = 1 << 50
NonNegative = Annotated[int, Field(ge=0, le=MAX_FILE_OFFSET)]


class ChunkIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file_id: str
    path: Annotated[str, Field(max_length=4096)]
    site: str = ""
    offset: NonNegative
    data: str
    parser_state: dict[str, Any] | None = None
    format: str | None = None
    size: NonNegative | None = None  # the file's size as the agent saw it (lag metric)

    @field_validator("file_id")
    @classmethod
    def _file_id(cls, v: str) -> str:
        if not valid_file_id(v):
            raise ValueError("must be 16-64 lowercase hex digits")
        return v

    @field_validator("site")
    @classmethod
    def _site(cls, v: str) -> str:
        if v and not valid_name(v):
            raise ValueError("must be letters, digits, '.', '_', '-' (or empty)")
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str | None) -> str | None:
        if v is not None and v not in FORMATS:
            raise ValueError(f"must be one of {', '.join(FORMATS)} or null")
        return v


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: Annotated[str, Field(min_length=1, max_length=253)]
    host: str
    batch_id: Annotated[str, Field(min_length=1, max_length=256)]
    chunks: list[ChunkIn]

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not valid_name(v):
            raise ValueError("must be a host name: letters, digits, '.', '_', '-'")
        return v


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated batch; each chunk's `data` decoded to the raw bytes."""

    model: BatchIn
    data: tuple[bytes, ...]  # per chunk, in order


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent, gunzipped when it says so, never more than `limit` bytes out
    (a small gzip body can expand a thousandfold)."""
    enc = (encoding or "identity").strip().lower()
    if enc == "identity":
        if len(body) > limit:
            raise TooLarge(f"a body of {len(body)} bytes is over the {limit}-byte limit")
        return body
    if enc != "gzip":
        raise BatchError(f"unsupported Content-Encoding {encoding!r}: send gzip or identity")
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise BatchError(f"body is not valid gzip: {e}") from e
    if len(out) > limit or d.unconsumed_tail:
        raise TooLarge(f"the gzip body expands past the {limit}-byte limit")
    if not d.eof:
        raise BatchError("gzip body is truncated")
    if d.unused_data:
        raise BatchError("data after the end of the gzip stream")
    return out


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_batch(raw: bytes) -> Batch:
    """Validate a decompressed body; BatchError names every problem found (up to 10)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BatchError(f"body is not JSON: {e}") from e
    try:
        model = BatchIn.model_validate(obj)
    except ValidationError as e:
        errors = e.errors()
        reasons = [f"{_where(err['loc'])}: {err['msg']}" for err in errors[:10]]
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise BatchError("; ".join(reasons) + more) from e
    datas = []
    for i, c in enumerate(model.chunks):
        try:
            data = base64.b64decode(c.data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise BatchError(f"chunks[{i}].data: not base64 ({e})") from e
        if data and not data.endswith(b"\n"):
            raise BatchError(f"chunks[{i}].data: must be whole lines, ending in \\n")
        if c.offset + len(data) > MAX_FILE_OFFSET:
            raise BatchError(
                f"chunks[{i}]: offset {c.offset} + {len(data)} bytes is past the largest "
                f"possible file offset ({MAX_FILE_OFFSET})"
            )
        datas.append(data)
    return Batch(model, tuple(datas))
