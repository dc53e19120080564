"""Making a write survive a crash: after a file is created or renamed into a directory, the
directory itself is fsynced (the agent's checkpoint, the collector's archive)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a directory entry (a new or renamed file) durable. POSIX only: on Windows a
    directory cannot be opened for fsync and NTFS journals the metadata itself."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
