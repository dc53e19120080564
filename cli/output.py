"""Shared printing for the CLI: results on stdout (tables, NDJSON), everything else
(progress, errors, notes) on stderr so `--json` output can be piped."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from rich.console import Console

    out: Console
    err: Console

_consoles: dict[str, Console] = {}


def __getattr__(name: str) -> Console:
    """`out` and `err`, rich consoles made on first use: importing rich costs more than a
    whole `search --count`, so commands that print one number or NDJSON never pay for it."""
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _consoles:
        from rich.console import Console

        if name == "out":
            console = Console(highlight=False)
            if not console.is_terminal and "COLUMNS" not in os.environ:
                # piped into a file or a pager: wide enough that tables keep every column
                console.width = 200
        else:
            console = Console(stderr=True, highlight=False, soft_wrap=True)
        _consoles[name] = console
    return _consoles[name]


def print_message(label: str, text: str, style: str = "bold") -> None:
    """One `label: text` line on stderr (errors, warnings, hints). Styled through rich on a
    terminal; written plainly otherwise, which is what rich would print there anyway."""
    if sys.stderr.isatty() or os.environ.get("FORCE_COLOR"):
        from rich.markup import escape

        __getattr__("err").print(f"[{style}]{label}:[/] {escape(text)}")
    else:
        sys.stderr.write(f"{label}: {text}\n")
        sys.stderr.flush()


def print_line(text: str) -> None:
    """A plain line of text on stdout: a count, a path, an id."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


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
