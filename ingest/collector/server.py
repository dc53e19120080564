"""Running the collector: bind the socket, open the archive and its key, build the app, and
serve it with uvicorn until SIGTERM or Ctrl-C (requests in flight are finished first)."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path

from elasticsearch import Elasticsearch

from iiswatch.errors import UsageError
from iiswatch.ingest.archive.keys import load_or_create_key
from iiswatch.ingest.archive.writer import DEFAULT_SEGMENT_BYTES, ArchiveWriter
from iiswatch.ingest.collector.app import DEFAULT_MAX_BODY, create_app
from iiswatch.ingest.collector.limits import Limits, uvicorn_options
from iiswatch.ingest.collector.metrics import Metrics
from iiswatch.ingest.collector.service import Collector
from iiswatch.ingest.collector.tokens import TokenStore

log = logging.getLogger(__name__)
GRACEFUL_SECONDS = 30


@dataclass(frozen=True)
class CollectorSettings:
    listen: str
    archive: Path
    key: Path
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body: int = DEFAULT_MAX_BODY
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    limits: Limits = field(default_factory=Limits)
    metrics_token: str | None = None
    insecure: bool = False  # plain http on a non-loopback address, knowingly


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT`; port 0 picks a free one."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {listen!r} is not HOST:PORT", "e.g. --listen 0.0.0.0:8443")
    return host, int(port)


def bind(listen: str) -> socket.socket:
    host, port = parse_listen(listen)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as e:
        raise UsageError(f"cannot listen on {listen}: {e.strerror}", "choose another port") from e
    return sock


def serve(settings: CollectorSettings, es: Elasticsearch) -> None:
    import uvicorn  # here, so `iiswatch --help` does not pay for it

    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together", "give both, or neither")
    host = parse_listen(settings.listen)[0]
    if settings.tls_cert is None and not is_loopback(host):
        if not settings.insecure:
            raise UsageError(
                f"refusing plain http on {host}: agents' tokens and logs would cross the "
                "network in clear",
                "give --tls-cert and --tls-key, or --insecure if something else encrypts it",
            )
        log.warning("plain http on %s (--insecure): tokens and logs travel in clear", host)
    key = load_or_create_key(settings.key, archive=settings.archive)
    metrics = Metrics()
    archive = ArchiveWriter(settings.archive, key, segment_bytes=settings.segment_bytes)
    tokens = TokenStore(settings.archive)
    if not tokens.names():
        log.warning("no agents yet: add one with `iiswatch collector add-agent NAME --archive DIR`")
    app = create_app(
        Collector(archive, es, metrics),
        tokens,
        metrics,
        max_body=settings.max_body,
        limits=settings.limits,
        metrics_token=settings.metrics_token,
    )
    sock = bind(settings.listen)
    config = uvicorn.Config(
        app,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        server_header=False,
        # header deadline, keep-alive, no global connection limit: see limits.py
        **uvicorn_options(settings.limits),
    )
    try:
        config.load()  # reads the certificate now, so a bad one is an error before serving
    except (OSError, ssl.SSLError) as e:
        sock.close()
        raise UsageError(
            f"cannot load the TLS certificate or key: {e}", "check --tls-cert and --tls-key"
        ) from e
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; with a
    # handler of ours, that ends in a normal exit (status 0) instead of a kill.
    # A SIGTERM before uvicorn took over the signals (it arrived during startup) stops the
    # server as soon as it runs.
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    print(f"collector listening on {scheme}://{shown}:{port}", flush=True)
    print(f"archive {settings.archive} (key {key.key_id} at {settings.key})", file=sys.stderr)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    print("collector stopped", file=sys.stderr, flush=True)
