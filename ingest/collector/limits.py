"""What keeps one client from locking the others out of the collector.

uvicorn's own `limit_concurrency` counts open connections, so 64 idle sockets from anyone made
every request, `/healthz` too, a 503. Instead:

- a connection must send its request headers within `header_timeout` of opening (or of its
  previous response); trickling bytes does not reset that deadline (`GuardedH11Protocol`);
- an idle keep-alive connection is closed after `keep_alive` (uvicorn's own timer);
- a body must keep arriving: no pause longer than `body_idle_timeout`, and after a grace
  period no slower than `body_min_rate` bytes per second on average (`read_body`);
- past `max_connections`, a new connection closes the oldest one that never completed a
  request nor sent one's headers (a stranger's idle socket) rather than being refused;
- work is limited per agent (`per_agent`) and for all authenticated agents together
  (`max_inflight`), checked after the token: requests without a valid token are answered 401
  before any body is read, so they never hold a slot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    keep_alive: float = 5.0
    body_idle_timeout: float = 30.0
    body_min_rate: int = 8 << 10  # bytes per second, on average, after the grace period
    body_grace: float = 10.0
    max_connections: int = 4096
    per_agent: int = 4  # batches of one agent in flight (the shipped agent sends one)
    max_inflight: int = 64  # batches of all agents in flight (each holds its body in memory)
    parse_workers: int = 2  # threads that gunzip and parse bodies


class BodyTooSlow(Exception):
    """The body stalled or trickled below the floor (408)."""


async def read_body(chunks: AsyncIterator[bytes], limits: Limits, limit: int) -> bytes:
    """The request body, refused when it stalls or trickles (`BodyTooSlow`) or exceeds
    `limit` (`OverflowError`)."""
    body = bytearray()
    started = time.monotonic()
    it = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout(limits.body_idle_timeout):
                piece = await anext(it)
        except StopAsyncIteration:
            return bytes(body)
        except TimeoutError as e:
            raise BodyTooSlow(f"no body bytes for {limits.body_idle_timeout:g} s") from e
        body += piece
        if len(body) > limit:
            raise OverflowError()
        elapsed = time.monotonic() - started
        if elapsed > limits.body_grace and len(body) < limits.body_min_rate * elapsed:
            raise BodyTooSlow(
                f"body arriving at {len(body) / elapsed:.0f} bytes/s, "
                f"below the floor of {limits.body_min_rate}"
            )


class InFlight:
    """Counts of batches in progress, per agent and in total; `slot` refuses past a limit."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0
        self.per_agent: dict[str, int] = {}

    @contextmanager
    def slot(self, agent: str) -> Iterator[str | None]:
        """Yields None when admitted, else why not (the caller answers 429 or 503)."""
        if self.per_agent.get(agent, 0) >= self.limits.per_agent:
            yield f"agent {agent} already has {self.limits.per_agent} batches in flight"
            return
        if self.total >= self.limits.max_inflight:
            yield f"{self.limits.max_inflight} batches in flight: the collector is busy"
            return
        self.total += 1
        self.per_agent[agent] = self.per_agent.get(agent, 0) + 1
        try:
            yield None
        finally:
            self.total -= 1
            left = self.per_agent[agent] - 1
            if left:
                self.per_agent[agent] = left
            else:
                del self.per_agent[agent]


def _closing(conn: Any) -> bool:
    transport = getattr(conn, "transport", None)
    return transport is None or transport.is_closing()


def _stranger(conn: Any) -> bool:
    """A connection that has neither completed a request nor sent one's headers: it costs
    nothing to close. One whose headers are in is being answered: a 401 at once without a
    token, else an agent's batch, which the body limits keep moving."""
    if getattr(conn, "_served", True):
        return False
    http = getattr(conn, "conn", None)
    return http is None or http.their_state is h11.IDLE


def guarded_protocol(limits: Limits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header deadline and a connection cap (see the module)."""

    class GuardedH11Protocol(H11Protocol):
        _header_deadline: asyncio.TimerHandle | None = None
        _served = False  # completed at least one request: an agent, not an idle stranger
        _opened = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._opened = time.monotonic()
            # a connection being closed stays in the set until its connection_lost, which
            # runs after every connection accepted in the same burst: not counted
            live = [c for c in self.connections if not _closing(c)]
            if len(live) > limits.max_connections:
                # uvicorn keeps connections in a set: pick the oldest stranger by its own
                # clock, so the newcomer (perhaps an agent) is refused only when every other
                # connection is an agent's or busy with a request
                strangers = [c for c in live if _stranger(c)]
                victim = min(
                    strangers,
                    key=lambda c: (c is self, getattr(c, "_opened", 0.0)),
                    default=self,
                )
                victim.transport.close()
            self._arm_header_deadline()

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self._header_deadline = self.loop.call_later(
                limits.header_timeout, self._header_timeout
            )

        def _disarm_header_deadline(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _header_timeout(self) -> None:
            self._header_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()  # no request in time: nothing to answer

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm_header_deadline()  # headers are in: the body has its own limits

        def on_response_complete(self) -> None:
            self._served = True
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

    return GuardedH11Protocol


def uvicorn_options(limits: Limits) -> dict[str, Any]:
    return {
        "http": guarded_protocol(limits),
        "timeout_keep_alive": limits.keep_alive,
        "limit_concurrency": None,  # counts idle sockets too: see the module docstring
    }
