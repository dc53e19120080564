"""Opt-in: make HTTP.sys write its buffered log lines now. IIS hands log records to HTTP.sys,
which keeps them in memory (up to 64 KiB, or about a minute) before writing the file; on a quiet
site that is most of the latency from request to alert. `netsh http flush logbuffer` empties
that buffer. Windows only: elsewhere the setting is ignored with a warning.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

log = logging.getLogger(__name__)

COMMAND = ["netsh", "http", "flush", "logbuffer"]


def flush_logbuffer() -> bool:
    """Run the command once; False (and a logged warning) when it failed."""
    try:
        done = subprocess.run(COMMAND, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("`%s` failed: %s", " ".join(COMMAND), e)
        return False
    if done.returncode != 0:
        out = (done.stdout or done.stderr).decode(errors="replace").strip()
        log.warning("`%s` exited %d: %s", " ".join(COMMAND), done.returncode, out[:200])
        return False
    return True


def start_flusher(every: float, stop: threading.Event) -> threading.Thread | None:
    """Flush every `every` seconds until `stop` is set; None when off or not on Windows."""
    if every <= 0:
        return None
    if sys.platform != "win32":
        log.warning(
            "flush_logbuffer_seconds=%g is set, but `netsh http flush logbuffer` exists only on "
            "Windows: not flushing",
            every,
        )
        return None

    def loop() -> None:
        warned = False
        while not stop.wait(every):
            ok = flush_logbuffer()
            if not ok and not warned:
                log.warning("HTTP.sys log buffer flushes fail; is the agent an administrator?")
                warned = True

    thread = threading.Thread(target=loop, name="netsh-flush", daemon=True)
    thread.start()
    return thread
