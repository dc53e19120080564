"""One seed's corpus: an hour of a generated shop in 1987 (never near test data, 1990-2014,
or live data), as an IIS W3C log, and the manifest of who is who (actor → class, benign or
attack, address, user agent).

    .venv/bin/python -m bench.detection.corpus --seed 3 --out /tmp/corpus-3
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.detection.actors import BENIGN, NAT_USERS, Actor, Hour, nat_office
from bench.detection.attacks import ATTACKS
from bench.detection.fixtures import replay_fixtures
from bench.detection.site import Site, make_site

FIELDS = (
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken"
)


def corpus_start(seed: int) -> datetime:
    """Each seed its own month of 1987, so corpora and their indices never overlap."""
    return datetime(1987, 1 + (seed - 1) % 12, 14, 10, 0, tzinfo=UTC)


@dataclass
class Corpus:
    seed: int
    site: Site
    start: datetime
    actors: list[Actor]

    def manifest(self) -> list[dict[str, str]]:
        return [
            {
                "actor": a.actor_id,
                "class": a.cls,
                "kind": a.kind,
                "ip": a.ip,
                "ua": a.ua,
                "source": a.source,
            }
            for a in self.actors
        ]


def build(seed: int) -> Corpus:
    site = make_site(seed)
    start = corpus_start(seed)
    rng = random.Random(seed)
    hour = Hour(site, start, rng)
    actors: list[Actor] = []
    for make, count in BENIGN.values():
        actors.extend(make(hour, n) for n in range(count))
    actors.extend(nat_office(hour, NAT_USERS))
    for make, count in ATTACKS.values():
        actors.extend(make(hour, n) for n in range(count))
    actors.extend(replay_fixtures(hour))
    return Corpus(seed, site, start, actors)


def _ua(ua: str) -> str:
    return ua.replace(" ", "+") if ua else "-"


def w3c_lines(corpus: Corpus) -> list[str]:
    rows = []
    for a in corpus.actors:
        for r in a.reqs:
            rows.append(
                (
                    r.t,
                    f"{r.t:%Y-%m-%d %H:%M:%S} {corpus.site.server_ip} {r.method} {r.path} "
                    f"{r.query or '-'} 443 {r.user} {a.ip} {_ua(a.ua)} - "
                    f"{r.status} {r.sub} {r.win32} {(r.t.microsecond + len(r.path)) % 400 + 1}",
                )
            )
    rows.sort(key=lambda x: x[0])
    header = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0"]
    header.append(f"#Date: {corpus.start:%Y-%m-%d %H:%M:%S}")
    header.append(f"#Fields: {FIELDS}")
    return header + [line for _, line in rows]


def write(corpus: Corpus, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"u_ex{corpus.start:%y%m%d}.log"
    log.write_text("\n".join(w3c_lines(corpus)) + "\n", encoding="utf-8")
    manifest = out / "actors.json"
    manifest.write_text(json.dumps(corpus.manifest(), indent=1), encoding="utf-8")
    return log, manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    log, manifest = write(build(args.seed), args.out)
    print(f"{log}\n{manifest}")


if __name__ == "__main__":
    main()
