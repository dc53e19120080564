"""`iiswatch kibana export`: the saved objects as NDJSON (Kibana's import format), stable
byte for byte so the committed file can be checked against a fresh export in CI."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from iiswatch.kibana.objects import SavedObject, all_objects
from iiswatch.rules.loader import load_rules

DEFAULT_OUT = Path("docker/kibana/saved-objects.ndjson")


def render(objects: Iterable[SavedObject]) -> str:
    return "".join(
        orjson.dumps(o.as_dict(), option=orjson.OPT_SORT_KEYS).decode() + "\n" for o in objects
    )


def export_text(rules_dir: Path | None = None) -> str:
    return render(all_objects(lr.rule for lr in load_rules(rules_dir)))


def stale(path: Path, text: str) -> bool:
    """True when `path` is missing or differs from a fresh export."""
    try:
        return path.read_text(encoding="utf-8") != text
    except FileNotFoundError:
        return True
