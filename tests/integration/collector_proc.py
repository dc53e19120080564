"""A real `iiswatch collector run` process on a free loopback port, for integration and
end-to-end tests, and a plain HTTP client that sends it batches."""

from __future__ import annotations

import base64
import gzip
import http.client
import os
import selectors
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

CLI = [sys.executable, "-m", "iiswatch.cli.main"]


class CollectorProcess:
    """`iiswatch collector run --listen 127.0.0.1:0`; `start()` returns its URL."""

    def __init__(
        self, archive: Path, key: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.archive, self.key, self.extra = archive, key, extra
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.stderr_path = archive.parent / f"collector-{os.getpid()}-{time.monotonic_ns()}.err"

    def start(self, timeout: float = 30.0) -> str:
        args = [*CLI, "collector", "run", "--listen", "127.0.0.1:0"]
        args += ["--archive", str(self.archive), "--key", str(self.key), *self.extra]
        err = self.stderr_path.open("wb")
        # unbuffered: select() must see every byte not yet read
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=err, env=self.env, bufsize=0
        )
        err.close()
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                raise AssertionError(f"collector did not start: {self.stderr()}")
            if sel.select(0.1):
                byte = self.proc.stdout.read(1)
                line += byte
        sel.close()
        self.url = line.decode().split()[-1]
        return self.url

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the exit status (0 when it shut down cleanly)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()
        return code

    def kill(self) -> None:
        """kill -9: no chance to tidy up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def chunk(
    file_id: str,
    path: str,
    offset: int,
    data: bytes,
    *,
    site: str = "W3SVC1",
    parser_state: dict[str, Any] | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "file_id": file_id,
        "path": path,
        "site": site,
        "offset": offset,
        "data": base64.b64encode(data).decode(),
        "parser_state": parser_state,
        "format": None,
    }
    if size is not None:
        c["size"] = size
    return c


def post(
    url: str,
    path: str = "/v1/batch",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    chunked: bool = False,
    ca: Path | None = None,
) -> tuple[int, Any]:
    """Send a request; (status, parsed JSON or the text)."""
    u = urllib.parse.urlsplit(url)
    conn: http.client.HTTPConnection
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
        conn = http.client.HTTPSConnection(u.hostname or "", u.port, context=ctx, timeout=120)
    else:
        conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=120)
    try:
        if chunked and body is not None:
            conn.request(method, path, iter([body]), headers or {}, encode_chunked=True)
        else:
            conn.request(method, path, body, headers or {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return resp.status, raw.decode(errors="replace")


def send_batch(
    url: str, token: str | None, batch: dict[str, Any], *, ca: Path | None = None
) -> tuple[int, Any]:
    """POST a batch gzip-compressed, as the agent does."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return post(url, body=gzip.compress(orjson.dumps(batch)), headers=headers, ca=ca)
