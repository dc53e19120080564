"""Leader election for `alerting run`: one lease document in `iiswatch-state-lease`, written
only with optimistic concurrency (`if_seq_no` / `if_primary_term`), so of several services
against one Elasticsearch exactly one evaluates rules and delivers alerts.

No clock is compared across machines. The leader renews every `ttl / 3`, and trusts its
leadership only until `ttl` after it *started* its last successful renewal (its own
monotonic clock). A standby watches the document's sequence number: once it has not
changed for `ttl` by the standby's own monotonic clock — which began after the leader's last
write — the leader's trust has run out and the standby takes the lease with a conditional
write; if two standbys race, one write fails with a conflict. A leader that stops cleanly
releases the lease, and the standby takes it on its next look.

Even if two processes overlapped (a leader frozen in a long GC pause), nothing doubles:
window records are created once and alert ids are deterministic. The lease is about doing
the work once, not about correctness.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError

from iiswatch.elastic.client import backend_errors
from iiswatch.times import now_iso

LEASE_INDEX = "iiswatch-state-lease"

log = logging.getLogger(__name__)


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseInfo:
    holder: str | None
    renewed: str | None
    ttl_seconds: float
    seq_no: int


class Lease:
    def __init__(
        self,
        es: Elasticsearch,
        name: str = "alerting",
        *,
        ttl: timedelta = timedelta(seconds=15),
        holder: str | None = None,
        index: str = LEASE_INDEX,
        clock: Any = time.monotonic,
    ) -> None:
        self.es = es
        self.name = name
        self.ttl = ttl.total_seconds()
        self.holder = holder or default_holder()
        self.index = index
        self._clock = clock
        self._lock = threading.Lock()
        self._valid_until = 0.0  # monotonic; leadership is trusted until then
        self._seen: tuple[int, int] | None = None  # (seq_no, primary_term) last observed
        self._seen_at = 0.0

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    def is_leader(self) -> bool:
        return self._clock() < self._valid_until

    def remaining(self) -> float:
        """Seconds of trusted leadership left (0 when not the leader)."""
        return max(0.0, self._valid_until - self._clock())

    def hold(self) -> bool:
        """Whether we still lead, renewing on the way: for a pass with no renewal job beside
        it (`alerting run --once`), asked between its steps. Renews once `renew_every` has
        passed since the last renewal, as the service's lease job would; a step that outlasted
        the whole TTL renews too, since the document still names us unless another process
        took the lease meanwhile (then `tick` leaves it to them and we stop). An error counts
        as not leading: the caller stops, as the service stops when a renewal fails."""
        if self.remaining() > self.ttl - self.renew_every:
            return True
        try:
            return self.tick()
        except Exception as e:
            log.warning("lease %r: %s", self.name, getattr(e, "message", e))
            return False

    def tick(self) -> bool:
        """Renew (leader) or try to take over (standby); returns whether we lead now."""
        with self._lock:
            started = self._clock()
            try:
                doc = self._get()
                if doc is None:
                    return self._write(None, started)
                src, seq = doc["_source"], (doc["_seq_no"], doc["_primary_term"])
                if src.get("holder") == self.holder or not src.get("holder"):
                    return self._write(seq, started)
                if seq != self._seen:
                    self._seen, self._seen_at = seq, started
                    self._valid_until = 0.0
                    return False
                if started - self._seen_at < float(src.get("ttl_seconds") or self.ttl):
                    return False
                return self._write(seq, started)  # the holder stopped renewing: take over
            except Exception:
                self._valid_until = 0.0  # cannot tell: stop trusting, keep trying
                raise

    def release(self) -> None:
        """Give the lease up now (clean shutdown), if the document still names us. Not only
        while we trust it: a pass longer than the TTL (a slow `--once`) would otherwise leave
        the next start waiting out a lease nobody renews. The write is conditional, so a
        service that took the lease over meanwhile keeps it."""
        with self._lock:
            self._valid_until = 0.0
            doc = self._get()
            if doc is None or doc["_source"].get("holder") != self.holder:
                return
            with backend_errors(self.es), contextlib.suppress(ConflictError):
                # a conflict: someone else holds it already
                self.es.index(
                    index=self.index,
                    id=self.name,
                    document={**doc["_source"], "holder": None, "released": now_iso()},
                    if_seq_no=doc["_seq_no"],
                    if_primary_term=doc["_primary_term"],
                )

    def info(self) -> LeaseInfo | None:
        doc = self._get()
        if doc is None:
            return None
        src = doc["_source"]
        return LeaseInfo(
            src.get("holder"),
            src.get("renewed"),
            float(src.get("ttl_seconds") or 0),
            doc["_seq_no"],
        )

    def _get(self) -> dict[str, Any] | None:
        with backend_errors(self.es):
            try:
                return dict(self.es.get(index=self.index, id=self.name, realtime=True))
            except NotFoundError:
                return None

    def _write(self, seq: tuple[int, int] | None, started: float) -> bool:
        """Conditional write of our claim; False (and not leader) when another won."""
        doc = {"holder": self.holder, "renewed": now_iso(), "ttl_seconds": self.ttl}
        with backend_errors(self.es):
            try:
                if seq is None:
                    resp = self.es.create(index=self.index, id=self.name, document=doc)
                else:
                    resp = self.es.index(
                        index=self.index,
                        id=self.name,
                        document=doc,
                        if_seq_no=seq[0],
                        if_primary_term=seq[1],
                    )
            except ConflictError:
                self._valid_until = 0.0
                self._seen = None
                return False
        self._seen = (resp["_seq_no"], resp["_primary_term"])
        self._seen_at = started
        self._valid_until = started + self.ttl
        return True
