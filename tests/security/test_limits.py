"""Attack 2, the limits behind it: one agent over its own limit is answered 429 without
costing another agent anything; a body trickled below the rate floor is cut (408); at the
connection cap a stranger's idle socket is closed, never an agent's connection."""

from __future__ import annotations

import gzip
import http.client
import socket
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from iiswatch.ingest.collector.limits import Limits
from tests.integration.collector_proc import post, send_batch
from tests.security.support import batch, collector, log_file, whole_file_chunk
from tests.security.test_lockout import _address, idle_sockets

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("witness_cleanup")]


def poll(cond: Callable[[], bool], timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return False


def start_batch(url: str, token: str) -> socket.socket:
    """A batch whose headers and first body bytes are sent, the rest held back."""
    s = socket.create_connection(_address(url), timeout=120)
    s.sendall(
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode()
        + b'{"agent": "web01"'
    )
    return s


def answer_of(s: socket.socket, *, trickle: bytes = b"", within: float = 180.0) -> bytes:
    """What the server answers on `s` until it closes the connection, sending `trickle`
    every fifth of a second until the answer begins."""
    s.settimeout(0.2)
    answer = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            piece = s.recv(65536)
            if not piece:
                break
            answer += piece
        except TimeoutError:
            try:
                if trickle and not answer:
                    s.sendall(trickle)
            except OSError:
                continue  # closed while we wrote: read what it answered
        except OSError:
            break
    return answer


def send_on(conn: http.client.HTTPConnection, token: str, doc: dict[str, Any]) -> int:
    """POST a batch on an open keep-alive connection, as the agent does."""
    headers = {"Content-Encoding": "gzip", "Authorization": f"Bearer {token}"}
    conn.request("POST", "/v1/batch", gzip.compress(orjson.dumps(doc)), headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def test_an_agent_over_its_limit_gets_429_and_another_agent_is_served(
    tmp_path: Path, month_1988: date, host_name: str
) -> None:
    other = f"{host_name}-b"
    agents = {"web01": [host_name], "web02": [other]}
    with collector(tmp_path, agents, "--body-idle-timeout", "600") as c:
        held = [start_batch(c.url, c.tokens["web01"]) for _ in range(Limits().per_agent)]
        try:
            data = log_file(month_1988, 5)
            tries = iter(range(2, 10_000))
            answers: list[tuple[int, Any]] = []

            def throttled() -> bool:
                doc = batch("web01", host_name, [whole_file_chunk(data, host_name)], next(tries))
                answers.append(send_batch(c.url, c.tokens["web01"], doc))
                return answers[-1][0] == 429

            # until the held batches hold web01's slots, a further one may still get one
            assert poll(throttled), answers[-3:]
            assert "in flight" in str(answers[-1][1])
            data_b = log_file(month_1988, 5, seed=8)
            doc_b = batch("web02", other, [whole_file_chunk(data_b, other)])
            status, answer = send_batch(c.url, c.tokens["web02"], doc_b)
            assert status == 200, answer
        finally:
            for s in held:
                s.close()


def test_a_body_trickled_below_the_rate_floor_is_cut_408(tmp_path: Path, host_name: str) -> None:
    # never idle (a byte every fifth of a second), far below the floor: only the rate cuts it
    extra = ("--body-min-rate", "100000", "--body-idle-timeout", "600")
    with collector(tmp_path, {"web01": [host_name]}, *extra) as c:
        with start_batch(c.url, c.tokens["web01"]) as s:
            answer = answer_of(s, trickle=b" ")
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"below the floor" in answer  # the rate, not the idle timeout
        assert post(c.url, "/healthz", method="GET")[0] == 200


def _closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_at_the_connection_cap_strangers_are_closed_and_agents_keep_their_connection(
    tmp_path: Path, month_1988: date, host_name: str
) -> None:
    cap = 16
    extra = ("--max-connections", str(cap), "--header-timeout", "600", "--keep-alive", "600")
    with collector(tmp_path, {"web01": [host_name]}, *extra) as c:
        hostname, port = _address(c.url)
        agent = http.client.HTTPConnection(hostname, port, timeout=120)
        data = log_file(month_1988, 30)
        first, second = data[: len(data) // 2], data  # the file grows, as a log does
        first = first[: first.rfind(b"\n") + 1]
        token = c.tokens["web01"]

        def shipping(data: bytes, n: int) -> dict[str, Any]:
            return batch("web01", host_name, [whole_file_chunk(data, host_name)], n)

        try:
            assert send_on(agent, token, shipping(first, 1)) == 200
            agent_socket = agent.sock
            with idle_sockets(c.url, 3 * cap) as strangers:
                # the cap holds: 3 * cap opened, cap - 1 of them at most stay open beside
                # the agent's connection (the test asks a little less)
                assert poll(lambda: sum(map(_closed, strangers)) >= 2 * cap)
                assert send_on(agent, token, shipping(second, 2)) == 200
                assert agent.sock is agent_socket  # the same connection, never closed
                # a new connection of an agent gets in too, closing a stranger's
                assert post(c.url, "/healthz", method="GET")[0] == 200
                status, answer = send_batch(c.url, token, shipping(second, 3))
                assert status == 200, answer
        finally:
            agent.close()
