"""The agent's registry: for each file, how far the collector has acknowledged it, and the
`#Fields` in force there. Written atomically (temporary file, fsync, `os.replace`, fsync of the
folder where the OS allows it) and only after a batch was acknowledged, so after any crash the
agent resumes at a position the collector holds: at-least-once, never a gap.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iiswatch.durable import fsync_dir
from iiswatch.errors import ConfigError

log = logging.getLogger(__name__)

FILE_NAME = "checkpoint.json"
VERSION = 1


@dataclass
class FileCheckpoint:
    """One followed file. `file_id` is the fingerprint of its first `id_bytes` bytes (1024,
    fewer only for a file that stayed small; see follow.py) and never changes."""

    file_id: str
    path: str
    id_bytes: int
    offset: int
    parser_state: dict[str, Any]
    site: str = ""
    seen: float = 0.0  # wall-clock time the file was last seen at `path`


@dataclass
class AgentState:
    run: int = 0  # incremented at each start: batch ids stay unique across restarts
    files: list[FileCheckpoint] = field(default_factory=list)


class CheckpointStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME

    def load(self) -> AgentState:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"cannot create state directory {self.directory}: {e.strerror}",
                "choose a --state directory the agent's account can write",
            ) from e
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AgentState()
        except OSError as e:
            raise ConfigError(
                f"cannot read {self.path}: {e.strerror}", "check the state directory"
            ) from e
        try:
            return _decode(json.loads(raw))
        except (ValueError, TypeError, KeyError) as e:
            # Cannot come from our own writes (they are atomic): a damaged disk or a hand edit.
            # Starting over re-sends files the collector already has, which it skips.
            aside = self.path.with_name(f"{FILE_NAME}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.error(
                "checkpoint %s is unreadable (%s); moved to %s, starting over", self.path, e, aside
            )
            return AgentState()

    def save(self, state: AgentState) -> None:
        data = json.dumps(
            {"version": VERSION, "run": state.run, "files": [asdict(f) for f in state.files]},
            separators=(",", ":"),
        ).encode()
        tmp = self.path.with_name(f"{FILE_NAME}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.directory)


def _decode(obj: Any) -> AgentState:
    if not isinstance(obj, dict) or obj.get("version") != VERSION:
        raise ValueError(
            f"unknown checkpoint version {obj.get('version') if isinstance(obj, dict) else obj!r}"
        )
    files = []
    for f in obj["files"]:
        files.append(
            FileCheckpoint(
                file_id=str(f["file_id"]),
                path=str(f["path"]),
                id_bytes=int(f["id_bytes"]),
                offset=int(f["offset"]),
                parser_state=dict(f["parser_state"]),
                site=str(f.get("site", "")),
                seen=float(f.get("seen", 0.0)),
            )
        )
    return AgentState(run=int(obj["run"]), files=files)
