"""The archive's external witness, and integrity alerts, in Elasticsearch.

Whoever can write the archive's disk can roll a file folder back to an older copy, or delete
a file's or a host's folder: what is left still verifies, since every chain and seal in it is
intact. So the collector also tells Elasticsearch, through the writer role (which may create
documents, never change or delete one), where each file's chain stands after each batch, and
that the file exists. `iiswatch archive verify` compares the archive with what was witnessed
(`ingest/archive/witness.py`): a chain shorter than witnessed, a different head at a witnessed
length, or a witnessed file that is gone, is a finding.

Documents carry the archive's key id (`archive`): each collector's archive has a witness of
its own. Document ids are deterministic, so a batch sent again re-creates the same documents (409,
harmless) and a failure here is a 503 the agent retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from elasticsearch import Elasticsearch, helpers

from iiswatch.elastic.indices import INTEGRITY_INDEX
from iiswatch.ingest.archive.writer import HeadState

if TYPE_CHECKING:
    from iiswatch.ingest.archive.writer import OverlapMismatch
    from iiswatch.ingest.collector.tokens import AgentIdentity

log = logging.getLogger(__name__)


def head_id(archive: str, host: str, file_id: str, seq: int) -> str:
    return f"head:{archive}:{host}:{file_id}:{seq}"


def file_doc_id(archive: str, host: str, file_id: str) -> str:
    return f"file:{archive}:{host}:{file_id}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WitnessFailed(Exception):
    """Elasticsearch did not take the witness documents (the batch is answered 503)."""


class IntegrityLog:
    def __init__(self, es: Elasticsearch, archive: str, index: str = INTEGRITY_INDEX) -> None:
        self.es = es
        self.archive = archive  # the archive key's id
        self.index = index

    def witness(self, heads: Iterable[HeadState]) -> None:
        now = _now()
        actions: list[dict[str, Any]] = []
        for h in heads:
            if h.seq == 0:
                continue
            base = {
                "archive": self.archive,
                "host": h.host,
                "site": h.site,
                "file_id": h.file_id,
                "@timestamp": now,
            }
            actions.append(
                {
                    "_op_type": "create",
                    "_index": self.index,
                    "_id": file_doc_id(self.archive, h.host, h.file_id),
                    "_source": {**base, "kind": "file"},
                }
            )
            actions.append(
                {
                    "_op_type": "create",
                    "_index": self.index,
                    "_id": head_id(self.archive, h.host, h.file_id, h.seq),
                    "_source": {
                        **base,
                        "kind": "head",
                        "seq": h.seq,
                        "head": h.head,
                        "segment": h.segment,
                    },
                }
            )
        if not actions:
            return
        _, errors = helpers.bulk(self.es, actions, raise_on_error=False, refresh=False)
        assert isinstance(errors, list)  # stats_only=False: the errors themselves
        failed = [e for e in errors if _status(e) != 409]  # 409: witnessed already
        if failed:
            raise WitnessFailed(f"{len(failed)} witness documents refused: {failed[0]}")

    def alert_overlap(self, identity: AgentIdentity, batch_id: str, e: OverlapMismatch) -> None:
        """A self-monitoring alert document; never raises (the batch is refused anyway)."""
        doc = {
            "@timestamp": _now(),
            "kind": "alert",
            "archive": self.archive,
            "event": {"kind": "alert", "action": "archive-overlap-mismatch", "severity": 73},
            "host": e.host,
            "file_id": e.file_id,
            "agent": {"name": identity.name, "id": identity.id},
            "message": (
                f"agent {identity.name} sent bytes for {e.host} {e.path} at offset {e.offset} "
                f"that differ from those archived (sent by {e.held_by or '?'}), batch "
                f"{batch_id}: the log was rewritten, or one of the agents is forging it"
            ),
        }
        try:
            self.es.index(index=self.index, document=doc, op_type="create")
        except Exception as err:  # the refusal (409) matters more than its alert
            log.error("cannot write the integrity alert to %s: %s", self.index, err)


def _status(error: Any) -> int:
    try:
        return int(next(iter(error.values()))["status"])
    except (AttributeError, KeyError, StopIteration, TypeError, ValueError):
        return 0
