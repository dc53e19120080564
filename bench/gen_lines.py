"""Benign IIS W3C lines for the benches, fast and the same for the same seed.

    python bench/gen_lines.py N OUT.log [--seed S]

writes the IIS 10 header block and N lines (CRLF) to OUT.log. Benches can also import
`lines` (an iterator) or `write_lines` from here.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from iiswatch.cli.demo.bench_lines import generate_w3c_lines
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header

START = datetime(2024, 5, 14, tzinfo=UTC)


def lines(n: int, *, seed: int = 1, start: datetime = START) -> Iterator[str]:
    """`n` lines without terminators, times ascending over one day from `start`."""
    return generate_w3c_lines(n, seed=seed, start=start)


def write_lines(n: int, out: Path, *, seed: int = 1, start: datetime = START) -> int:
    """Write the header block and `n` lines to `out` with CRLF endings; return its size."""
    with out.open("w", encoding="utf-8", newline="") as f:
        f.write(w3c_header(W3C_DEFAULT_FIELDS, start))
        it = generate_w3c_lines(n, seed=seed, start=start)
        while batch := list(itertools.islice(it, 65536)):
            f.write("\r\n".join(batch))
            f.write("\r\n")
    return out.stat().st_size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write N benign IIS W3C log lines to a file.")
    parser.add_argument("n", type=int, help="number of request lines")
    parser.add_argument("out", type=Path, help="file to write (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same bytes (default 1)")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("N must be 0 or more")
    size = write_lines(args.n, args.out, seed=args.seed)
    print(f"wrote {args.n} lines ({size:,} bytes) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
