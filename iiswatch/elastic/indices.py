"""Index names in one place: which index an event goes to, and the patterns roles grant.

Log indices are monthly by event time (`iis-access-2026.11`), so an event always lands in
the same index and its deterministic `_id` makes re-ingesting a file add nothing. Plain
indices with aliases: the minimal distribution has no data streams or ILM.
"""

from __future__ import annotations

ACCESS_PREFIX = "iis-access-"
ERROR_PREFIX = "iis-error-"
ACCESS_ALIAS = "iis-access"
ERROR_ALIAS = "iis-error"
DEADLETTER_INDEX = "iiswatch-deadletter-v1"
DEADLETTER_ALIAS = "iiswatch-deadletter"
# The archive's external witness (segment heads, file existence) and integrity alerts: the
# collector creates documents there and can never change or delete one.
INTEGRITY_INDEX = "iiswatch-integrity-v1"

# What analysts search by default (a Kibana data view `iis-*` sees the same documents).
DEFAULT_SEARCH = f"{ACCESS_PREFIX}*,{ERROR_PREFIX}*"

WRITE_PATTERNS = (
    f"{ACCESS_PREFIX}*",
    f"{ERROR_PREFIX}*",
    "iiswatch-deadletter*",
    "iiswatch-integrity*",
)
READ_PATTERNS = ("iis-*", "iiswatch-deadletter*", "iiswatch-integrity*")
STATE_PATTERNS = (
    "iiswatch-state*",
    "iiswatch-alerts*",
    "iiswatch-ruletest*",
    "iiswatch-incidents*",
    "iiswatch-silences*",
)
ACTION_PATTERNS = ("iiswatch-actions*",)  # response actions (respond/)
RESPONDER_READ_PATTERNS = ("iiswatch-incidents*", "iiswatch-alerts*", "iis-*")


def index_for(doc: dict[str, object]) -> str:
    """The concrete index for an event document (dead letters have no event time)."""
    event = doc.get("event")
    dataset = event.get("dataset") if isinstance(event, dict) else None
    if dataset == "iiswatch.deadletter":
        return DEADLETTER_INDEX
    ts = doc.get("@timestamp")
    month = ts[:7].replace("-", ".") if isinstance(ts, str) and len(ts) >= 7 else "undated"
    prefix = ERROR_PREFIX if dataset == "iis.error" else ACCESS_PREFIX
    return f"{prefix}{month}"
