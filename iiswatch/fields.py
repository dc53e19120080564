"""Reading a field of an event or alert document by its dotted ECS name (`source.ip`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def get_field(doc: Any, dotted: str) -> Any:
    """`source.ip` from a nested document, or from a flat key `source.ip` (as Elasticsearch
    accepts and some senders write); None when absent."""
    if isinstance(doc, Mapping) and dotted in doc:
        return doc[dotted]
    cur = doc
    for part in dotted.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur
