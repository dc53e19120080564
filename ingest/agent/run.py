"""The agent's loop: look for files, read whole lines into one batch, send it when it is full
or its oldest line has waited `batch_max_wait`, and move the checkpoint once the collector
acknowledged it.

Memory stays bounded whatever the collector does: exactly one batch is in memory (read, encoded,
being sent); while the collector is unreachable the agent retries that batch with exponential
backoff and jitter, capped at `backoff_max`, forever, and reads nothing more. The log files
are the buffer, so an outage of any length loses nothing that stays on disk.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_when_event_set,
    wait_exponential_jitter,
)

from iiswatch.ingest.agent.checkpoint import AgentState, CheckpointStore
from iiswatch.ingest.agent.config import AgentConfig, read_token
from iiswatch.ingest.agent.follow import Batch, Follower
from iiswatch.ingest.agent.netsh import start_flusher
from iiswatch.ingest.agent.shipper import (
    Ack,
    BatchRefused,
    BatchTooLarge,
    ShipError,
    Shipper,
    encode_batch,
)
from iiswatch.ingest.archive.layout import write_atomic

log = logging.getLogger(__name__)

MIN_BATCH_BYTES = 64 << 10
REFUSED_DIR = "refused"  # batches the collector refused for good, kept whole (gzip JSON)
STATUS_EVERY = 60.0


class Stopped(Exception):
    """The stop event was set while waiting to send again."""


@dataclass
class AgentStats:
    batches: int = 0
    lines: int = 0
    bytes: int = 0
    failed_attempts: int = 0
    refused: int = 0  # batches set aside (refused for good by the collector)
    acks: list[Ack] = field(default_factory=list)  # the last few, for tests and status

    def record(self, ack: Ack, batch: Batch) -> None:
        self.batches += 1
        self.lines += batch.lines
        self.bytes += batch.size
        self.acks = [*self.acks[-9:], ack]


class Agent:
    """Follows the configured files and ships them until `stop` is set."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        stop: threading.Event | None = None,
        token: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.stats = AgentStats()
        self._token = token or (lambda: read_token(config.token_file))
        self._clock = clock

    def run(self) -> AgentStats:
        cfg = self.config
        store = CheckpointStore(cfg.state)
        state = store.load()
        state.run += 1
        store.save(state)  # batch ids carry the run number: never reused after a crash
        follower = Follower(
            cfg.inputs,
            state.files,
            host=cfg.host_name,
            identity_settle=cfg.identity_settle,
            close_inactive=cfg.close_inactive,
            forget_after=cfg.forget_after,
            clock=self._clock,
        )
        shipper = Shipper(
            cfg.collector,
            self._token,
            ca=cfg.ca,
            timeout=cfg.request_timeout,
            insecure=cfg.insecure,
        )
        start_flusher(cfg.flush_logbuffer_seconds, self.stop)
        if cfg.actions is not None:  # [actions]: poll for response actions in a thread
            from iiswatch.respond.agent import start_action_runner

            start_action_runner(
                cfg.actions, cfg.host_name, cfg.state, cfg.collector, self._token, self.stop,
                ca=cfg.ca, timeout=cfg.request_timeout,
            )  # fmt: skip
        log.info(
            "agent %s (run %d) shipping %s to %s",
            cfg.name,
            state.run,
            ", ".join(i.path for i in cfg.inputs),
            cfg.collector,
        )
        max_bytes = cfg.batch_max_bytes
        batch = Batch(max_bytes, cfg.batch_max_lines)
        seq = 0
        next_status = self._clock() + STATUS_EVERY
        try:
            while not self.stop.is_set():
                follower.scan()
                follower.fill(batch)
                now = self._clock()
                if now >= next_status:
                    next_status = now + STATUS_EVERY
                    self._status(follower)
                if batch and (batch.full or now - (batch.started or now) >= cfg.batch_max_wait):
                    seq += 1
                    batch_id = f"{cfg.name}-{state.run:06d}-{seq:09d}"
                    try:
                        ack = self._deliver(shipper, batch, batch_id)
                    except BatchTooLarge as e:
                        if batch.size > MIN_BATCH_BYTES and max_bytes > MIN_BATCH_BYTES:
                            max_bytes = max(max_bytes // 2, MIN_BATCH_BYTES)
                            log.warning("%s: sending batches of at most %d bytes", e, max_bytes)
                            follower.rewind()
                            batch = Batch(max_bytes, cfg.batch_max_lines)
                            continue
                        ack = self._set_aside(batch, batch_id, e)  # cannot get smaller
                    except BatchRefused as e:
                        ack = self._set_aside(batch, batch_id, e)
                    except Stopped:
                        break
                    follower.acknowledge(batch)
                    store.save(AgentState(run=state.run, files=follower.records()))
                    self.stats.record(ack, batch)
                    log.debug(
                        "batch %s: %d lines, %d bytes, %d files acknowledged (%d events, %d dead)",
                        batch_id, batch.lines, batch.size, len(batch.chunks), ack.events,
                        ack.dead_letters,
                    )  # fmt: skip
                    batch = Batch(max_bytes, cfg.batch_max_lines)
                    continue  # there may be more to read right away
                pause = cfg.poll_interval
                if batch:  # not full: wait for more lines, but not past the batch's deadline
                    pause = min(pause, (batch.started or now) + cfg.batch_max_wait - now)
                self.stop.wait(max(pause, 0.0))
        finally:
            follower.close()
            shipper.close()
        log.info(
            "agent stopped: %d lines in %d batches this run", self.stats.lines, self.stats.batches
        )
        return self.stats

    def _set_aside(self, batch: Batch, batch_id: str, why: ShipError) -> Ack:
        """A batch the collector will never take: kept whole under `STATE/refused/` (nothing
        is lost) and passed, so the agent goes on with the lines after it."""
        cfg = self.config
        body = encode_batch(batch, batch_id=batch_id, agent=cfg.name, host=cfg.host_name)
        folder = cfg.state / REFUSED_DIR
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{batch_id}.json.gz"
        write_atomic(path, body)
        log.error("%s; batch %s (%d lines) set aside in %s", why, batch_id, batch.lines, path)
        self.stats.refused += 1
        return Ack(batch_id, len(batch.chunks), 0, 0)

    def _deliver(self, shipper: Shipper, batch: Batch, batch_id: str) -> Ack:
        cfg = self.config
        body = encode_batch(batch, batch_id=batch_id, agent=cfg.name, host=cfg.host_name)
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, ShipError) and e.retry),
            wait=wait_exponential_jitter(
                multiplier=cfg.backoff_initial, max=cfg.backoff_max, jitter=cfg.backoff_initial
            ),
            stop=stop_when_event_set(self.stop),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            ack: Ack = retrying(shipper.send, batch_id, body)
        except ShipError:
            if self.stop.is_set():
                raise Stopped() from None
            raise
        return ack

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped()

    def _log_retry(self, rs: RetryCallState) -> None:
        self.stats.failed_attempts += 1
        exc = rs.outcome.exception() if rs.outcome is not None else None
        pause = rs.next_action.sleep if rs.next_action is not None else 0.0
        level = logging.WARNING if rs.attempt_number < 5 else logging.ERROR
        log.log(
            level,
            "batch not delivered (attempt %d): %s; next try in %.1fs",
            rs.attempt_number,
            exc,
            pause,
        )

    def _status(self, follower: Follower) -> None:
        lag = follower.lag()
        log.info(
            "following %d files; %d lines in %d batches so far; %d bytes not yet acknowledged",
            len(lag),
            self.stats.lines,
            self.stats.batches,
            sum(lag.values()),
        )


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT, SIGTERM and, on Windows, CTRL_BREAK (SIGBREAK) set `stop`: the agent finishes
    the request in flight, keeps its checkpoint, and exits. Main thread only."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, handler)
