"""A fast generator of plain benign W3C lines for the benches and load tests: the demo's
visitors without the attack, the headers or the malformed lines. Same seed, same bytes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from iiswatch.cli.demo.sample_day import Clients, benign_hits, health_checks, render_hit
from iiswatch.cli.demo.w3c import clock, utc

_DAY = 86400


def _tail_pool(seed: int, size: int = 8192) -> list[str]:
    """What follows `date time` in `size` benign requests (default field set), each with its
    leading space."""
    rng = random.Random(f"pool:{seed}")
    hits = benign_hits(
        rng, Clients(random.Random(f"pool-clients:{seed}"), "203.0.113.1"), size, date(2024, 5, 14)
    ) + health_checks(600, rng)
    rng.shuffle(hits)
    return [" " + render_hit(h, "", False).split(" ", 2)[2] for h in hits[:size]]


def generate_w3c_lines(n: int, *, seed: int = 1, start: datetime | None = None) -> Iterator[str]:
    """`n` benign W3C lines (default IIS 10 fields, no headers, no line terminators), times
    ascending and spread evenly over the 24 hours from `start` (default 2024-05-14 00:00 UTC).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0 (got {n})")
    t0 = utc(start) if start is not None else datetime(2024, 5, 14, tzinfo=UTC)
    midnight = t0.replace(hour=0, minute=0, second=0, microsecond=0)
    first = t0.hour * 3600 + t0.minute * 60 + t0.second
    dates: dict[int, str] = {}
    tails = _tail_pool(seed)
    choices = random.Random(seed).choices
    done = 0
    while done < n:
        end = min(done + 8192, n)
        stamps: list[str] = []
        i = done
        while i < end:  # one run of equal timestamps per second
            sec = first + i * _DAY // n
            upto = min(end, -(-(sec - first + 1) * n // _DAY))
            days, of_day = divmod(sec, _DAY)
            if days not in dates:
                dates[days] = f"{midnight + timedelta(days=days):%Y-%m-%d} "
            stamps += [dates[days] + clock(of_day)] * (upto - i)
            i = upto
        yield from list(map(str.__add__, stamps, choices(tails, k=end - done)))
        done = end
