"""Attack 2: lock-out without a token. Before: 70 idle TCP connections made every request a
503, /healthz too, for as long as they stayed open; a trickle of header bytes or a stalled
body held a connection forever."""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path

import pytest

from tests.integration.collector_proc import post, send_batch
from tests.security.support import batch, collector, log_file, whole_file_chunk

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("witness_cleanup")]


def _address(url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    return u.hostname or "", u.port or 80


@contextmanager
def idle_sockets(url: str, n: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = []
        for _ in range(n):
            s = stack.enter_context(socket.create_connection(_address(url), timeout=60))
            socks.append(s)
        yield socks


def closed_by_server(sock: socket.socket, *, trickle: bytes = b"", within: float = 120.0) -> bool:
    """Wait (generously) for the server to close `sock`; send `trickle` every half second."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.sendall(trickle)
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True  # reset: closed too
    return False


def test_idle_connections_from_strangers_do_not_lock_agents_out(
    tmp_path: Path, month_1988: date, host_name: str
) -> None:
    with collector(tmp_path, {"web01": [host_name]}) as c, idle_sockets(c.url, 100):
        assert post(c.url, "/healthz", method="GET")[0] == 200
        data = log_file(month_1988, 10)
        status, answer = send_batch(
            c.url, c.tokens["web01"], batch("web01", host_name, [whole_file_chunk(data, host_name)])
        )
        assert status == 200, answer


def test_a_connection_that_never_finishes_its_headers_is_closed(tmp_path: Path) -> None:
    with collector(tmp_path, {}, "--header-timeout", "1") as c:
        with socket.create_connection(_address(c.url), timeout=60) as silent:
            assert closed_by_server(silent)
        with socket.create_connection(_address(c.url), timeout=60) as slow:
            slow.sendall(b"POST /v1/batch HTTP/1.1\r\n")
            assert closed_by_server(slow, trickle=b"X")  # slowloris: one byte at a time


def test_a_stalled_body_is_refused_408(tmp_path: Path, host_name: str) -> None:
    with collector(tmp_path, {"web01": [host_name]}, "--body-idle-timeout", "1") as c:
        with socket.create_connection(_address(c.url), timeout=120) as s:
            s.sendall(
                b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                + f"Authorization: Bearer {c.tokens['web01']}\r\n\r\n".encode()
                + b'{"agent": "web01"'
            )
            answer = b""
            while b"\r\n\r\n" not in answer:
                piece = s.recv(65536)
                if not piece:
                    break
                answer += piece
            assert answer.startswith(b"HTTP/1.1 408"), answer
        assert post(c.url, "/healthz", method="GET")[0] == 200
