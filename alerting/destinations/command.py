"""A program run with the alert as JSON on stdin — the incident's "a script is called that
opens a ticket". Exit 0 is delivered (the first line of stdout, if any, is the ticket
reference); a non-zero exit or a timeout is retried. The exit status, duration and the
last lines of stderr are recorded with the attempt."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import orjson

from iiswatch.alerting.config import CommandDestination, resolve_secret
from iiswatch.alerting.destinations.base import DeliveryResult
from iiswatch.alerting.templates import one_line
from iiswatch.errors import DeliveryError

STDERR_TAIL = 2000  # characters of stderr kept with an attempt
STDOUT_MAX = 64 * 1024

# What a program needs to start and find its tools and locale; everything else is given
# explicitly in the destination's `env`.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "COMSPEC")


def tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else "…" + text[-limit:]


class Command:
    def __init__(self, name: str, cfg: CommandDestination) -> None:
        self.name = name
        self.cfg = cfg

    def _env(self) -> dict[str, str]:
        # not the service's environment: it holds other destinations' secrets
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        for k, v in self.cfg.env.items():
            env[k] = resolve_secret(v, f"destination {self.name} env {k}")
        return env

    def stdin(self, alert: Mapping[str, Any]) -> bytes:
        return orjson.dumps(dict(alert), default=str, option=orjson.OPT_APPEND_NEWLINE)

    def preview(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "destination": self.name,
            "type": "command",
            "argv": list(self.cfg.argv),
            "env": sorted(self.cfg.env),
            "stdin": orjson.loads(self.stdin(alert)),
        }

    def deliver(self, alert: Mapping[str, Any]) -> DeliveryResult:
        what = f"command {self.name} ({self.cfg.argv[0]})"
        timeout = self.cfg.timeout.total_seconds()
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                self.cfg.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._env(),
                cwd=self.cfg.cwd,
                start_new_session=True,  # a timeout ends the script and its children
            )
        except OSError as e:
            raise DeliveryError(
                f"cannot run {what}: {e.strerror}",
                "check argv[0] exists and is executable by the alerting service",
                retryable=False,
                detail={"error": type(e).__name__},
            ) from e
        try:
            out, err = proc.communicate(self.stdin(alert), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise DeliveryError(
                f"{what} did not finish within {timeout:g}s",
                "it was killed; the delivery is retried (raise `timeout` if it needs longer)",
                retryable=True,
                detail={
                    "timeout": True,
                    "seconds": round(time.monotonic() - started, 3),
                    "stderr_tail": tail(err),
                },
            ) from None
        detail: dict[str, Any] = {
            "exit_status": proc.returncode,
            "seconds": round(time.monotonic() - started, 3),
        }
        if err:
            detail["stderr_tail"] = tail(err)
        if proc.returncode != 0:
            last = one_line(tail(err, 300).strip().splitlines()[-1] if err.strip() else "", 200)
            raise DeliveryError(
                f"{what} exited with status {proc.returncode}" + (f": {last}" if last else ""),
                "the delivery is retried; its stderr is kept with the attempt",
                retryable=True,
                detail=detail,
            )
        first = out[:STDOUT_MAX].decode("utf-8", "replace").strip().splitlines()
        ticket = one_line(first[0], 200) if first else None
        return DeliveryResult(self.name, "sent", ticket, None, detail)
