"""The agent's HTTP client for the collector (docs/design/shipping-protocol.md): one batch is
one gzip-compressed JSON `POST /v1/batch` with the agent's bearer token; an answer other than
200 is an exception saying whether trying again can help.

urllib3 is already installed with the Elasticsearch client and is light, which keeps the
agent's memory small. Certificates are verified whenever the URL is https: against `ca` when
given, else against the system's trust store.
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import urllib3
from urllib3.exceptions import HTTPError

from iiswatch.errors import ConfigError
from iiswatch.ingest.agent.follow import Batch

PATH = "/v1/batch"


class ShipError(Exception):
    """A batch was not acknowledged; `retry` says whether sending it again can succeed."""

    retry = True


class CollectorUnavailable(ShipError):
    """Not reachable, or answered with an error it may get over (5xx, 429, 401 until the
    token is fixed, ...). The batch is sent again after a pause."""


class BatchRefused(ShipError):
    """400 or 409: the collector will never take this batch as it is (a malformed batch, or
    bytes that differ from those it archived). Sending it again cannot help."""

    retry = False


class BatchTooLarge(ShipError):
    """413: the collector's body limit is below the batch; send smaller batches."""

    retry = False


@dataclass(frozen=True)
class Ack:
    batch_id: str
    chunks: int
    events: int
    dead_letters: int


def encode_batch(batch: Batch, *, batch_id: str, agent: str, host: str) -> bytes:
    """The gzip-compressed JSON body for `batch`."""
    chunks = [
        {
            "file_id": c.file_id,
            "path": str(c.file.path),
            "site": c.file.site,
            "offset": c.offset,
            "data": base64.b64encode(c.data).decode("ascii"),
            "parser_state": c.parser_state,
            "format": c.file.format,
            "size": max(c.file.size_seen, c.end),  # the file's size when read (lag metric)
        }
        for c in batch.chunks.values()
    ]
    body = {"agent": agent, "host": host, "batch_id": batch_id, "chunks": chunks}
    return gzip.compress(orjson.dumps(body), compresslevel=5)


class Shipper:
    """Sends batches to one collector. `token` is called before each request, so a token
    file that was fixed after a 401 is picked up without a restart."""

    def __init__(
        self,
        url: str,
        token: Callable[[], str],
        *,
        ca: Path | None = None,
        timeout: float = 30.0,
        insecure: bool = False,
    ) -> None:
        host = urllib3.util.parse_url(url).host or ""
        if url.startswith("http:") and not _loopback(host) and not insecure:
            raise ConfigError(
                f"refusing to send the token and logs over plain http to {host}",
                "use an https:// collector URL, or --insecure (insecure = true) if something "
                "else encrypts the link",
            )
        self.url = url.rstrip("/") + PATH
        self._token = token
        tls: dict[str, Any] = {}
        if url.startswith("https:"):
            tls = {"cert_reqs": "CERT_REQUIRED"}
            if ca is not None:
                tls["ca_certs"] = str(ca)
        self._http = urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            retries=False,  # backoff is the caller's: it must stay interruptible
            timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            **tls,
        )

    def send(self, batch_id: str, body: bytes) -> Ack:
        """POST one encoded batch; the Ack once the collector holds it durably."""
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        try:
            resp = self._http.request("POST", self.url, body=body, headers=headers)
        except HTTPError as e:
            raise CollectorUnavailable(f"cannot reach the collector at {self.url}: {e}") from e
        status, text = resp.status, resp.data[:2000].decode("utf-8", "replace")
        if status == 200:
            try:
                answer = json.loads(resp.data)
                ack = Ack(
                    batch_id=str(answer["acked"]),
                    chunks=int(answer.get("chunks", 0)),
                    events=int(answer.get("events", 0)),
                    dead_letters=int(answer.get("dead_letters", 0)),
                )
            except (ValueError, KeyError, TypeError) as e:
                raise CollectorUnavailable(f"collector answered 200 without an ack: {e}") from e
            if ack.batch_id != batch_id:
                raise CollectorUnavailable(
                    f"collector acknowledged {ack.batch_id!r}, not {batch_id!r}"
                )
            return ack
        if status == 413:
            raise BatchTooLarge(f"collector refused a {len(body)}-byte body (413)")
        if status in (401, 403):
            raise CollectorUnavailable(
                f"collector refused the agent's token ({status}): check the token file, or "
                "issue a token with `iiswatch collector add-agent`"
            )
        if status == 400:
            raise BatchRefused(
                f"collector rejected the batch as malformed (400): {_reason(text)}; "
                "this is a bug in the agent or collector, please report it"
            )
        if status == 409:
            raise BatchRefused(
                f"collector refused the batch (409): {_reason(text)}; were these log files "
                "rewritten after they were shipped?"
            )
        raise CollectorUnavailable(f"collector answered {status}: {_reason(text)}")

    def close(self) -> None:
        self._http.clear()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _reason(text: str) -> str:
    try:
        return str(json.loads(text)["error"])[:300]
    except (ValueError, KeyError, TypeError):
        return text[:300].strip() or "(no body)"
