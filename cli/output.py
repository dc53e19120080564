"""Shared printing for the CLI: results on stdout (tables, NDJSON), everything else
(progress, errors, notes) on stderr so `--json` output can be piped."""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson
from rich.console import Console

out = Console(highlight=False)
if not out.is_terminal and "COLUMNS" not in os.environ:
    # piped into a file or a pager: wide enough that tables keep every column readable
    out.width = 200
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json_line(obj: Any) -> None:
    """One compact JSON document per line (NDJSON), bypassing rich's markup."""
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))


def print_json(obj: Any) -> None:
    sys.stdout.buffer.write(
        orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    sys.stdout.flush()


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {ord("\\"): "\\\\"}


def visible(text: str) -> str:
    """`text` with control characters (ESC, NUL, CR, ...) shown as `\\xNN`: what agents or
    logs supply must not move the cursor, recolour or hide lines on an analyst's terminal."""
    return text.translate(_CONTROL)
