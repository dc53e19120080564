"""The detection scorecard: for each seed, generate the corpus, ingest it into Elasticsearch
through the real pipeline, run `iiswatch rules run --all --json` over its hour, and count per
rule and overall the attacker actors alerted (recall) and the benign actors alerted (false
positives). Seed 1 is the one the rules were tuned on; the others are held out and reported
apart. Writes docs/detection.md unless --no-write. No assertions: a scorecard.

It also groups each seed's alerts into incidents with the service's own code
(`iiswatch.alerting.risk.offline_incidents`, what `rules run --incidents` prints, with the
service's default `[service.incidents]` policy) and counts per seed the attackers that are
in an incident and the benign actors that open one (an incident is about an address, so
it counts every actor behind it).

Needs a running Elasticsearch (the test node: `source scripts/test-env`). Each seed's index
(`iis-access-1987.MM`) is deleted afterwards. The rules run with one site-local exception, as
a deployment would add: the internal uptime monitors (10.250.0.0/24), with an owner and an
expiry.

    .venv/bin/python -m bench.detection.score [--tuned 1] [--held-out 2 3 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from bench.detection import corpus as gen
from bench.detection.fixtures import _read, tool_logs
from iiswatch.alerting.risk import offline_incidents
from iiswatch.alerting.service_config import IncidentSettings
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.batch import ingest_files
from iiswatch.rules.loader import default_rules_dir, load_rules
from iiswatch.times import format_duration

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "detection.md"
HOST = "bench-detection"
MONITORS = "10.250.0.0/24"
MONITOR_RULES = ("forced_browsing_404_burst.yaml", "forced_browsing_distinct_paths.yaml",
                 "forced_browsing_slow_walk.yaml")  # fmt: skip
MISSING_TOOLS = ("nikto",)  # not in this Debian release's archive


@dataclass
class SeedResult:
    seed: int
    actors: list[dict[str, str]]
    alerts: list[dict[str, Any]]
    # rule name -> actor ids it alerted
    by_rule: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    incidents: list[dict[str, Any]] = field(default_factory=list)  # as `--incidents` prints

    def alerted(self) -> set[str]:
        return set().union(*self.by_rule.values()) if self.by_rule else set()

    def in_incident(self) -> dict[str, dict[str, Any]]:
        """Actor id -> the incident its address is in."""
        by_ip = {ip: inc for inc in self.incidents for ip in inc["source"]["ip"]}
        return {a["actor"]: by_ip[a["ip"]] for a in self.actors if a["ip"] in by_ip}


def overlay_rules(dest: Path, source: Path | None = None) -> Path:
    """The pack as shipped (or `source`), plus the site's exception for its uptime monitors."""
    shutil.copytree(
        source or default_rules_dir(), dest, ignore=shutil.ignore_patterns("__pycache__")
    )
    yaml = YAML()
    for path in dest.rglob("*.yaml"):
        if path.name not in MONITOR_RULES:
            continue
        data = yaml.load(path)
        data.setdefault("exceptions", []).append(
            {
                "field": "source.ip",
                "cidrs": [MONITORS],
                "owner": "ops-team@example.com",
                "reason": "uptime checks still polling a retired endpoint (ticket OPS-1234)",
                "expires": (date.today() + timedelta(days=90)).isoformat(),
            }
        )
        yaml.dump(data, path)
    return dest


def run_rules(rules_dir: Path, index: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    cmd = [
        str(Path(sys.executable).with_name("iiswatch")),
        "rules", "run", "--all", "--json",
        "--rules-dir", str(rules_dir), "--index", index,
        "--from", start.isoformat(), "--to", end.isoformat(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ)
    if done.returncode != 0:
        raise SystemExit(f"rules run failed ({done.returncode}): {done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def attribute(alert: dict[str, Any], actors: list[dict[str, str]]) -> set[str]:
    """The actors an alert is about: its group's address (and user agent, for rules that
    group by it), else the addresses it lists."""
    group = alert.get("group") or {}
    ips = {group["source.ip"]} if group.get("source.ip") else set(alert["source"]["ip"])
    ua = group.get("user_agent.original")
    return {a["actor"] for a in actors if a["ip"] in ips and (ua is None or a["ua"] == ua)}


def group_incidents(alerts: list[dict[str, Any]], rules_dir: Path) -> list[dict[str, Any]]:
    """The incidents these alerts open, by the code `rules run --incidents` and the service
    share, under the service's default policy (threshold, window, entity)."""
    rules = {lr.rule.rule_id: lr.rule for lr in load_rules(rules_dir)}
    pairs = [(a, rules[a["rule"]["id"]]) for a in alerts]
    return offline_incidents(pairs, IncidentSettings().policy())


def score_seed(seed: int, rules_dir: Path, keep: bool) -> SeedResult:
    corpus = gen.build(seed)
    index = f"iis-access-{corpus.start:%Y.%m}"
    admin, writer = client_for(Purpose.ADMIN), client_for(Purpose.WRITER)
    admin.indices.delete(index=index, ignore_unavailable=True)
    with tempfile.TemporaryDirectory(prefix="iiswatch-detection-") as tmp:
        log, _ = gen.write(corpus, Path(tmp))
        summary = ingest_files(writer, [log], host_name=HOST)
        if summary.failed:
            raise SystemExit(f"seed {seed}: {summary.failed} events were not indexed")
    admin.indices.refresh(index=index)
    try:
        alerts = run_rules(rules_dir, index, corpus.start, corpus.start + timedelta(hours=1))
    finally:
        if not keep:
            admin.indices.delete(index=index, ignore_unavailable=True)
    result = SeedResult(
        seed, corpus.manifest(), alerts, incidents=group_incidents(alerts, rules_dir)
    )
    for alert in alerts:
        result.by_rule[alert["rule"]["name"]].update(attribute(alert, result.actors))
    return result


def _kinds(results: list[SeedResult]) -> tuple[dict[str, str], int, int]:
    kind = {f"{r.seed}/{a['actor']}": a["kind"] for r in results for a in r.actors}
    attackers = sum(1 for k in kind.values() if k == "attack")
    return kind, attackers, len(kind) - attackers


def table(results: list[SeedResult]) -> list[str]:
    kind, attackers, benign = _kinds(results)
    per_rule: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for r in results:
        for rule, ids in r.by_rule.items():
            for i in ids:
                per_rule[rule][kind[f"{r.seed}/{i}"] == "benign"].add(f"{r.seed}/{i}")
    lines = ["| rule | attackers alerted | benign actors alerted |", "|---|---:|---:|"]
    for rule in sorted(per_rule):
        atk, ben = per_rule[rule]
        lines.append(f"| {rule} | {len(atk)} | {len(ben)} |")
    caught = {f"{r.seed}/{i}" for r in results for i in r.alerted()}
    atk_caught = sum(1 for i in caught if kind[i] == "attack")
    ben_hit = sorted(i for i in caught if kind[i] == "benign")
    recall = f"{atk_caught}/{attackers} ({atk_caught / max(attackers, 1):.0%} recall)"
    lines.append(f"| **overall** | **{recall}** | **{len(ben_hit)} of {benign}** |")
    return lines


def misses(results: list[SeedResult]) -> list[str]:
    out = []
    for r in results:
        alerted = r.alerted()
        cls = {a["actor"]: a["class"] for a in r.actors}
        for a in r.actors:
            if a["kind"] == "attack" and a["actor"] not in alerted:
                out.append(f"- seed {r.seed}: attacker `{a['actor']}` ({a['class']}) not alerted")
        rule_of = {i: rule for rule, ids in r.by_rule.items() for i in ids}
        for i in sorted(alerted):
            if next(a for a in r.actors if a["actor"] == i)["kind"] == "benign":
                out.append(f"- seed {r.seed}: benign `{i}` ({cls[i]}) alerted by {rule_of[i]}")
    return out or ["- none"]


def incident_table(results: list[SeedResult]) -> list[str]:
    """Per seed: attackers in an incident, benign actors that open one."""
    lines = [
        "| seed | incidents | attackers in an incident | benign actors in an incident |",
        "|---:|---:|---:|---:|",
    ]
    for r in results:
        inside = r.in_incident()
        atk = [a for a in r.actors if a["kind"] == "attack"]
        ben = [a for a in r.actors if a["kind"] == "benign"]
        n_atk = sum(1 for a in atk if a["actor"] in inside)
        n_ben = sum(1 for a in ben if a["actor"] in inside)
        lines.append(
            f"| {r.seed} | {len(r.incidents)} | {n_atk}/{len(atk)} | {n_ben} of {len(ben)} |"
        )
    return lines


def incident_misses(results: list[SeedResult]) -> list[str]:
    """Attackers in no incident (with the rules that did alert on them and the risk they
    add up to), and benign actors in one."""
    out = []
    for r in results:
        inside = r.in_incident()
        rules_of: dict[str, set[str]] = defaultdict(set)
        for rule, ids in r.by_rule.items():
            for i in ids:
                rules_of[i].add(rule)
        for a in r.actors:
            if a["kind"] == "attack" and a["actor"] not in inside:
                seen = ", ".join(sorted(rules_of[a["actor"]])) or "no alert"
                out.append(
                    f"- seed {r.seed}: attacker `{a['actor']}` ({a['class']}) in no incident"
                    f" (alerted by: {seen})"
                )
            elif a["kind"] == "benign" and a["actor"] in inside:
                inc = inside[a["actor"]]
                out.append(
                    f"- seed {r.seed}: benign `{a['actor']}` ({a['class']}) in incident"
                    f" {inc['incident_id']} ({inc['opened_by']})"
                )
    return out or ["- none"]


def classes(results: list[SeedResult]) -> list[str]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for a in results[0].actors:
        counts[(a["kind"], a["class"])] += 1
    return [f"| {k} | {c} | {n} |" for (k, c), n in sorted(counts.items())]


def tools() -> list[str]:
    rows = []
    for path in tool_logs():
        tool, reqs = _read(path)
        rows.append(f"| `{path.name}` | {tool} | {len(reqs)} |")
    return rows


def report(tuned: list[SeedResult], held: list[SeedResult]) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    seeds = ", ".join(str(r.seed) for r in held)
    parts = [
        "# Detection scorecard",
        "",
        "Written by `bench/detection/score.py` (do not edit by hand). Each seed is an hour of a",
        "generated shop with its own layout (page names, search, sign-in, API, upload and",
        "retired paths), in its own month of 1987: benign classes with many actors each, and",
        "attackers, written by hand or replayed from real tools' logs. An actor is one client",
        "(address and user agent); an alert counts against every actor it is about (its",
        "group's address, and user agent for rules grouped by it), so one alert on an office",
        "NAT counts every person behind it. Rules ran with `iiswatch rules run --all --json`,",
        "with one site-local exception (the uptime monitors, owner and expiry set).",
        "",
        f"Generated {now}.",
        "",
        f"## Held-out seeds ({seeds}): rules were not written against these",
        "",
        *table(held),
        "",
        "Misses and false positives:",
        "",
        *misses(held),
        "",
        f"## Tuning seed ({', '.join(str(r.seed) for r in tuned)})",
        "",
        *table(tuned),
        "",
        *misses(tuned),
        "",
        "## Incidents (one ticket per attacker)",
        "",
        "The alerts above grouped as the alerting service groups them",
        "(`iiswatch.alerting.risk`, what `iiswatch rules run --all --incidents` prints), with",
        "its default policy: per address, a rule's highest risk_score counted once, an",
        f"incident at risk {IncidentSettings().threshold} within"
        f" {format_duration(IncidentSettings().window)}"
        " or at once for a rule with `opens_incident: always`.",
        "",
        *incident_table(tuned + held),
        "",
        "Attackers in no incident, benign actors in one:",
        "",
        *incident_misses(tuned + held),
        "",
        "## Actors per seed",
        "",
        "| kind | class | actors |",
        "|---|---|---:|",
        *classes(tuned or held),
        "",
        "## Real tools",
        "",
        "Run once against `bench/detection/target.py` (a loopback app that logs like IIS) by",
        "`bench/detection/record_tools.sh`; trimmed logs committed in",
        "`bench/detection/fixtures/` and replayed into every seed as one attacker each.",
        "",
        "| fixture | tool and version | requests |",
        "|---|---|---:|",
        *tools(),
        "",
        f"Not available as a Debian package here, so not run: {', '.join(MISSING_TOOLS)}.",
        "",
        "## Reproduce",
        "",
        "```",
        "export IISWATCH_TEST_HOME=... IISWATCH_TEST_ES_PORT=...  # your test node",
        "source scripts/test-env; export IISWATCH_CONFIG=$IISWATCH_HOME/no-config.toml",
        ".venv/bin/python -m bench.detection.score   # ~6 min a seed on a loaded 2-core machine",
        "```",
    ]
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tuned", type=int, nargs="*", default=[1])
    ap.add_argument("--held-out", type=int, nargs="*", default=[2, 3, 4])
    ap.add_argument("--keep", action="store_true", help="keep the indices (to look at them)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/ alone")
    ap.add_argument("--rules-dir", type=Path, help="score another pack (implies --no-write)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="iiswatch-rules-") as tmp:
        rules_dir = overlay_rules(Path(tmp) / "searches", args.rules_dir)
        tuned = [score_seed(s, rules_dir, args.keep) for s in args.tuned]
        held = [score_seed(s, rules_dir, args.keep) for s in args.held_out]
    text = report(tuned, held)
    print(text)
    if not (args.no_write or args.rules_dir):
        DOC.write_text(text, encoding="utf-8")
        print(f"written to {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
