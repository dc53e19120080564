"""CLI start-up against `python -c "import typer"`, measured side by side in one run.

Each round runs, in turn: the baseline, `iiswatch --help`, `iiswatch search --help`, and
`iiswatch search '*' --count` pointed at a port where nothing listens (so the time is
everything the command does except Elasticsearch's answer: imports, settings, query
checks, building the client, one refused connection). Medians over the rounds; prints each
ratio to the baseline (goal: <= 1.5). Nothing is asserted: this is a measurement.

A second reference, `import typer, elasticsearch; from pydantic import TypeAdapter`, is the
floor that the chosen libraries set for any command that queries Elasticsearch: Typer 0.29
coerces every option that is not a bool through a pydantic TypeAdapter, and the official
client is the only way the project talks to Elasticsearch. The count's ratio to that floor
is what iiswatch's own code adds.

    .venv/bin/python bench/bench_cli.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    py = sys.executable
    cli = [py, "-m", "iiswatch.cli.main"]
    with tempfile.TemporaryDirectory() as home:
        env = dict(
            os.environ,
            IISWATCH_HOME=home,
            IISWATCH_CONFIG=os.path.join(home, "none.toml"),
            IISWATCH_ES_URL=f"http://127.0.0.1:{free_port()}",  # refused at once
            IISWATCH_ES_API_KEY="bench",
        )
        floor_code = "import typer, elasticsearch; from pydantic import TypeAdapter"
        floor_name = "floor: typer, elasticsearch, TypeAdapter"
        cases = {
            'python -c "import typer"': [py, "-c", "import typer"],
            floor_name: [py, "-c", floor_code],
            "iiswatch --help": [*cli, "--help"],
            "iiswatch search --help": [*cli, "search", "--help"],
            "iiswatch search --count (no ES answer)": [*cli, "search", "*", "--count"],
        }
        for cmd in cases.values():  # warm the page cache and .pyc files
            timed(cmd, env)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for name, cmd in cases.items():
                times[name].append(timed(cmd, env))
    base_name = next(iter(cases))
    base = statistics.median(times[base_name])
    floor = statistics.median(times[floor_name])
    print(f"{'command':46} {'median s':>9} {'ratio':>6} {'to floor':>9}  (goal <= 1.5)")
    for name, ts in times.items():
        m = statistics.median(ts)
        ratio = "" if name == base_name else f"{m / base:6.2f}"
        to_floor = f"{m / floor:9.2f}" if "--count" in name else ""
        print(f"{name:46} {m:9.3f} {ratio:>6} {to_floor:>9}")


if __name__ == "__main__":
    main()
