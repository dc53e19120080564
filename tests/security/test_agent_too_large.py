"""Attack 4, the agent's side of a 413: a collector whose body limit is below a batch. The
agent sends smaller batches down to a floor; a batch that cannot get smaller (one line longer
than the limit) is set aside whole under `STATE/refused/`. It never loops on a batch the
collector will never take, and loses no byte."""

from __future__ import annotations

import base64
import gzip
import json
import random
from pathlib import Path

from iiswatch.ingest.agent.run import MIN_BATCH_BYTES
from tests.unit.test_agent_run import HEADER, Receiver, Running, config, lines, wait_for


def _chunks(docs: list[dict[str, object]]) -> dict[int, bytes]:
    out = {}
    for doc in docs:
        for c in doc["chunks"]:  # type: ignore[attr-defined]
            out[c["offset"]] = base64.b64decode(c["data"])
    return out


def test_the_agent_shrinks_batches_on_413_and_sets_aside_a_line_too_long_for_any(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    receiver.max_data = MIN_BATCH_BYTES + (16 << 10)  # between the floor and the usual batch
    rng = random.Random(413)
    huge = "2026-11-26 00:00:01 10.0.0.1 GET /p/x q=" + "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3 * MIN_BATCH_BYTES)
    )
    try:
        cfg = config(tmp_path, receiver.url, batch_max_bytes=4 * MIN_BATCH_BYTES)
        log = tmp_path / "logs" / "u_ex1.log"
        log.write_bytes(HEADER + lines(0, 4000) + huge.encode() + b"\r\n" + lines(4000, 8000))
        refused_dir = cfg.state / "refused"

        def refused() -> list[dict[str, object]]:
            return [
                json.loads(gzip.decompress(f.read_bytes()))
                for f in sorted(refused_dir.glob("*.json.gz"))
            ]

        def everything() -> bytes:
            with receiver.lock:
                acked = list(receiver.acked)
            parts = _chunks(acked) | _chunks(refused())
            data = b""
            for offset in sorted(parts):
                if offset != len(data):
                    return data  # a gap: not there yet
                data += parts[offset]
            return data

        with Running(cfg) as running:
            wait_for(lambda: everything() == log.read_bytes(), timeout=180)
        (aside,) = refused()  # only the batch with the huge line, kept whole
        assert huge.encode() in b"".join(_chunks([aside]).values())
        assert running.agent.stats.refused == 1
        too_large = len(receiver.attempts) - len(receiver.acked)
        # 4x -> 2x -> 1x the floor, then the huge line once: no batch is sent in a loop
        assert too_large == 3, too_large
    finally:
        receiver.close()
