"""`iiswatch collector`: receive agents' batches, archive the raw bytes, index the events."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from iiswatch.cli.output import err, out
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for

app = typer.Typer(
    help="The collector: agents send it log lines; it archives and indexes them.",
    no_args_is_help=True,
)

ARCHIVE_HELP = "The archive directory (raw log bytes, sealed manifests, agents.json)."


@app.command()
def run(
    listen: str = typer.Option(
        "127.0.0.1:8443", "--listen", help="HOST:PORT to listen on (port 0: any free port)."
    ),
    archive: Path = typer.Option(..., "--archive", help=ARCHIVE_HELP),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate (chain)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key."),
    max_body: int = typer.Option(
        16 << 20, "--max-body", min=1024, help="Largest request body in bytes (413 above)."
    ),
    key: Path | None = typer.Option(
        None,
        "--key",
        help="Archive key (HMAC); created on first run. Default: the iiswatch state dir. "
        "Keep it outside the archive and a copy in escrow.",
    ),
    segment_mb: int = typer.Option(
        64, "--segment-mb", min=1, help="Seal archive segments at this size (MiB)."
    ),
    header_timeout: float = typer.Option(
        10.0, "--header-timeout", min=0.1, help="Seconds a connection has to send its headers."
    ),
    keep_alive: float = typer.Option(
        5.0, "--keep-alive", min=0.1, help="Seconds an idle keep-alive connection stays open."
    ),
    body_idle_timeout: float = typer.Option(
        30.0, "--body-idle-timeout", min=0.1, help="Longest pause inside a body (408 after)."
    ),
    body_min_rate: int = typer.Option(
        8192, "--body-min-rate", min=1, help="Slowest average body rate, bytes/s (408 below)."
    ),
    max_connections: int = typer.Option(
        4096,
        "--max-connections",
        min=2,
        help="Open connections; past it the oldest that never completed a request is closed.",
    ),
    metrics_token_file: Path | None = typer.Option(
        None, "--metrics-token-file", help="File with a bearer token /metrics then requires."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow plain http on a non-loopback address."
    ),
) -> None:
    """Serve POST /v1/batch, /healthz and /metrics until SIGTERM or Ctrl-C.

    A batch is acknowledged (200) only once its bytes are fsynced in the archive and
    Elasticsearch accepted every document; otherwise 503 and the agent sends it again.
    Uses the writer credentials. Without --tls-cert it speaks plain HTTP: loopback only
    (elsewhere it refuses unless --insecure).
    """
    from iiswatch.ingest.archive.keys import default_key_path
    from iiswatch.ingest.collector.limits import Limits
    from iiswatch.ingest.collector.server import CollectorSettings, serve

    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.WARNING, format=fmt)  # libraries: warnings and up
    logging.getLogger("iiswatch").setLevel(logging.INFO)
    settings = CollectorSettings(
        listen=listen,
        archive=archive,
        key=key or default_key_path(),
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_body=max_body,
        segment_bytes=segment_mb << 20,
        limits=Limits(
            header_timeout=header_timeout,
            keep_alive=keep_alive,
            body_idle_timeout=body_idle_timeout,
            body_min_rate=body_min_rate,
            max_connections=max_connections,
        ),
        metrics_token=(
            metrics_token_file.read_text().strip() if metrics_token_file is not None else None
        ),
        insecure=insecure,
    )
    serve(settings, client_for(Purpose.WRITER))


@app.command("add-agent")
def add_agent(
    name: str = typer.Argument(..., help="The agent's name (what its batches say in 'agent')."),
    archive: Path = typer.Option(..., "--archive", help=ARCHIVE_HELP),
    replace: bool = typer.Option(
        False, "--replace", help="Issue a new token for an existing agent (the old one stops)."
    ),
    host: list[str] = typer.Option(
        [], "--host", help="A host whose logs this agent may send (repeat; default: NAME)."
    ),
) -> None:
    """Issue a token for an agent and print it, once: only its hash is kept.

    The token may send logs of the --host names only (default: the agent's own name); a
    batch for another host is refused (403). Put the token in the agent's --token-file; the
    running collector sees it at once.
    """
    from iiswatch.ingest.collector.tokens import TokenStore

    archive.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = TokenStore(archive).add(name, replace=replace, hosts=host)
    hosts = ", ".join(host or [name])
    err.print(f"token for agent {name}, hosts {hosts} (shown once; only its hash is stored):")
    out.print(token, markup=False, highlight=False, soft_wrap=True)


@app.command("remove-agent")
def remove_agent(
    name: str = typer.Argument(..., help="The agent whose token to revoke."),
    archive: Path = typer.Option(..., "--archive", help=ARCHIVE_HELP),
) -> None:
    """Revoke an agent's token: the running collector refuses it (401) at once.

    What it archived stays, with its name on every range.
    """
    from iiswatch.ingest.collector.tokens import TokenStore

    TokenStore(archive).remove(name)
    err.print(f"agent {name} removed: its token no longer works")
