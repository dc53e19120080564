"""The agent's checkpoint is replaced atomically: whenever the process dies, the file on disk
is one complete version, never a mix or a torn write."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iiswatch.ingest.agent.checkpoint import AgentState, CheckpointStore, FileCheckpoint


def record(i: int) -> FileCheckpoint:
    return FileCheckpoint(
        file_id=f"{i:032x}",
        path=rf"C:\inetpub\logs\LogFiles\W3SVC1\u_ex{i:06d}.log",
        id_bytes=1024,
        offset=i * 1000,
        parser_state={"format": "w3c", "parser": {"fields": ["date", "time"], "software": None}},
        site="W3SVC1",
        seen=1.5,
    )


def test_state_round_trips(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state")
    assert store.load() == AgentState()  # nothing yet: start from the beginning
    state = AgentState(run=3, files=[record(1), record(2)])
    store.save(state)
    assert CheckpointStore(tmp_path / "state").load() == state
    assert not list((tmp_path / "state").glob("*.tmp"))


def test_a_leftover_temporary_file_does_not_matter(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save(AgentState(run=1, files=[record(1)]))
    (tmp_path / "checkpoint.json.tmp").write_bytes(b'{"version": 1, "run": 9, "fi')  # torn
    assert store.load().files == [record(1)]
    store.save(AgentState(run=2, files=[record(2)]))
    assert store.load().run == 2


def test_unreadable_checkpoint_is_moved_aside_and_the_agent_starts_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "checkpoint.json").write_bytes(b"\x00\x00 not json")
    with caplog.at_level(logging.ERROR):
        assert CheckpointStore(tmp_path).load() == AgentState()
    assert "unreadable" in caplog.text
    assert list(tmp_path.glob("checkpoint.json.corrupt-*"))


WRITER = """
import sys
from pathlib import Path
from iiswatch.ingest.agent.checkpoint import AgentState, CheckpointStore, FileCheckpoint
store = CheckpointStore(Path(sys.argv[1]))
n = 0
print("ready", flush=True)
while True:
    n += 1
    files = [FileCheckpoint(f"{n:032x}", f"/logs/{i}.log", 1024, n * 7 + i, {"n": n}, "W3SVC1", 0.0)
             for i in range(200)]
    store.save(AgentState(run=n, files=files))
"""


@pytest.mark.skipif(os.name == "nt", reason="uses SIGKILL")
def test_checkpoint_survives_kill_9_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(7)
    last_run = 0
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = CheckpointStore(tmp_path).load()  # must parse: one whole version
        assert len(state.files) == 200
        assert {f.file_id for f in state.files} == {f"{state.run:032x}"}
        assert [f.offset for f in state.files] == [state.run * 7 + i for i in range(200)]
        assert not list(tmp_path.glob("checkpoint.json.corrupt-*"))
        last_run = max(last_run, state.run)
    assert last_run > 1
