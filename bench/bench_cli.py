"""CLI start-up against `python -c "import typer"`, measured side by side in one run.

Each round runs, in turn: the baseline, `iiswatch --help`, `iiswatch search --help`, and
`iiswatch search '*' --count` pointed at a port where nothing listens (so the time is
everything the command does except Elasticsearch's answer: imports, settings, query
checks, building the client, one refused connection). Medians over the rounds; prints each
ratio to the baseline (goal: <= 1.5). Nothing is asserted: this is a measurement.

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
        cases = {
            'python -c "import typer"': [py, "-c", "import typer"],
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
    print(f"{'command':42} {'median s':>9} {'ratio':>6}  (goal <= 1.5)")
    for name, ts in times.items():
        m = statistics.median(ts)
        ratio = "" if name == base_name else f"{m / base:6.2f}"
        print(f"{name:42} {m:9.3f} {ratio:>6}")


if __name__ == "__main__":
    main()
