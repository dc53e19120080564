"""Attack 4, the agent's side: a batch the collector will never take (400, 409). Before, the
agent sent it again forever and shipped nothing after it. Now it keeps the batch whole under
`STATE/refused/` and goes on: it never stalls and loses no byte."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from tests.unit.test_agent_run import HEADER, Receiver, Running, config, lines, wait_for


@pytest.mark.parametrize("status", [400, 409])
def test_a_batch_refused_for_good_is_set_aside_and_the_agent_goes_on(
    tmp_path: Path, status: int
) -> None:
    receiver = Receiver()
    receiver.script.extend([status] * 3)  # the first batches: refused, whatever is resent
    try:
        cfg = config(tmp_path, receiver.url, batch_max_lines=50)
        log = tmp_path / "logs" / "u_ex1.log"
        log.write_bytes(HEADER + lines(0, 400))
        refused_dir = cfg.state / "refused"

        def refused() -> dict[int, bytes]:
            out = {}
            for f in sorted(refused_dir.glob("*.json.gz")):
                for c in json.loads(gzip.decompress(f.read_bytes()))["chunks"]:
                    out[c["offset"]] = base64.b64decode(c["data"])
            return out

        def everything() -> bytes:
            parts = dict(refused())
            for doc in receiver.acked:
                for c in doc["chunks"]:
                    parts[c["offset"]] = base64.b64decode(c["data"])
            data = b""
            for offset in sorted(parts):
                if offset != len(data):
                    return data  # a gap: not there yet
                data += parts[offset]
            return data

        with Running(cfg) as running:
            wait_for(lambda: everything() == log.read_bytes(), timeout=120)
        assert running.agent.stats.refused == 3
        assert len(receiver.attempts) == len(receiver.acked) + 3  # none sent twice
    finally:
        receiver.close()
