"""Shared printing for the CLI: results on stdout (tables, NDJSON), everything else
(progress, errors, notes) on stderr so `--json` output can be piped."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def print_json_line(obj: Any) -> None:
    """One compact JSON document per line (NDJSON), bypassing rich's markup."""
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))


def print_json(obj: Any) -> None:
    sys.stdout.buffer.write(
        orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    sys.stdout.flush()
