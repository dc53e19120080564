"""End-to-end latency of the web shell: a line appended to a log file the agent follows →
the incident's ticket. Real processes on loopback: `iiswatch collector run`, `iiswatch
agent run`, `iiswatch alerting run` with the pack's own web-shell rule
(`searches/webshell/command_execution_parameters.yaml`, its schedule as shipped: it opens
incidents at once, so it runs every 5 s; only its id is the bench's own) and the service's
default settle and jitter, and the local Elasticsearch.

Delivery goes to Request Tracker when RT_URL and RT_TOKEN are set (the ticket visible in
RT), else to a `command` destination that writes the ticket as a file (the time it is
written is the end).

Each event is one `cmd=whoami` request from its own client IP (its own incident), written
at a random moment of the rule's window. Per event the breakdown is measured from the
documents themselves:
- ship: `event.ingested` (set by the collector) − the time the line was written;
- refresh: the moment a search first sees the document − `event.ingested`;
- schedule: the rule's window evaluation starting (ledger `started`) − visible;
- query: the alert stored in the outbox − evaluation start;
- delivery: the incident's ticket opened − alert stored.
The goal is p95 < 10 s (IIS's own buffering excluded: the line is written directly).

    .venv/bin/python bench/bench_latency.py [--events 60] [--settle 2s]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from iiswatch.alerting.incidents import INCIDENTS_INDEX
from iiswatch.alerting.ledger import WINDOWS_INDEX, window_doc_id
from iiswatch.alerting.outbox import ALERTS_INDEX
from iiswatch.alerting.risk import incident_id
from iiswatch.alerting.state import SUPPRESSION_INDEX
from iiswatch.alerting.status import STATUS_INDEX
from iiswatch.alerting.windows import Window
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.collector.tokens import TokenStore
from iiswatch.rules.loader import load_rules

CLI = [sys.executable, "-m", "iiswatch.cli.main"]
ROOT = Path(__file__).resolve().parents[1]
WEB_SHELL = ROOT / "searches" / "webshell" / "command_execution_parameters.yaml"
GOAL = 10.0  # seconds, p95
TICKET_SCRIPT = """\
import json, os, sys, time
alert = json.load(sys.stdin)
t = time.time()
name = os.path.join(sys.argv[1], alert["alert_id"] + ".json")
with open(name + ".tmp", "w") as f:
    json.dump({"delivered": t, "alert": alert}, f)
os.replace(name + ".tmp", name)
print("file:" + os.path.basename(name))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


class Watcher(threading.Thread):
    """Polls Elasticsearch for the bench's documents; notes when each first shows up."""

    def __init__(self, es: Any, host: str) -> None:
        super().__init__(daemon=True)
        self.es, self.host = es, host
        self.seen: dict[str, float] = {}  # client ip -> first time a search returned it
        self.ingested: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            hits = self.es.search(
                index="iis-access-*",
                query={"term": {"host.name": self.host}},
                size=1000,
                source=["source.ip", "event.ingested"],
            )["hits"]["hits"]
            now = time.time()
            for h in hits:
                ip = h["_source"]["source"]["ip"]
                if ip not in self.seen:
                    self.seen[ip] = now
                    self.ingested[ip] = parse_ts(h["_source"]["event"]["ingested"])
            self.stop.wait(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=60)
    ap.add_argument("--settle", default="2s", help="the service's settle delay (its default)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and documents")
    args = ap.parse_args()

    es = client_for(Purpose.ADMIN)
    tmp = Path(tempfile.mkdtemp(prefix="iiswatch-bench-latency-"))
    run_id = uuid.uuid4().hex[:8]
    host = f"bench-latency-{run_id}"
    rule_id = str(uuid.uuid4())
    lease = f"bench-{run_id}"
    logs = tmp / "logs" / "W3SVC1"
    logs.mkdir(parents=True)
    tickets = tmp / "tickets"
    tickets.mkdir()
    rules = tmp / "rules"
    rules.mkdir()
    rt = bool(os.environ.get("RT_URL") and os.environ.get("RT_TOKEN"))

    # the pack's rule as shipped, under an id of its own (its ledger and state are the bench's)
    text = WEB_SHELL.read_text()
    shipped = next(lr.rule for lr in load_rules(WEB_SHELL.parent) if lr.path == WEB_SHELL)
    (rules / "web_shell.yaml").write_text(text.replace(shipped.rule_id, rule_id, 1))
    interval = shipped.schedule.interval
    (tmp / "ticket.py").write_text(TICKET_SCRIPT)
    if rt:
        dest = (
            f'type = "request_tracker"\nurl = "{os.environ["RT_URL"]}"\n'
            'token = "${env:RT_TOKEN}"\nqueue = "General"\n'
        )
    else:
        argv = json.dumps([sys.executable, str(tmp / "ticket.py"), str(tickets)])
        dest = f'type = "command"\nargv = {argv}\n'
    (tmp / "alerting.toml").write_text(
        f"[destinations.bench]\n{dest}\n[service]\n"
        f'settle = "{args.settle}"\nlease_name = "{lease}"\n'
        'lease_ttl = "3s"\ndefault_destinations = ["bench"]\n'
        "[service.deadman]\nenabled = false\n"
    )

    archive, key = tmp / "archive", tmp / "keys" / "archive.key"
    token = tmp / "token"
    token.write_text(TokenStore(archive).add(host) + "\n")
    (tmp / "agent.toml").write_text("[agent]\npoll_interval = 0.05\nbatch_max_wait = 0.05\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (tmp / f"{name}.log").open("wb")
        p = subprocess.Popen(argv, stdout=log, stderr=log)
        procs.append(p)
        return p

    log_file = logs / f"u_ex{datetime.now(UTC):%y%m%d}.log"
    fh = log_file.open("ab", buffering=0)
    fh.write(w3c_header(W3C_DEFAULT_FIELDS, datetime.now(UTC)).encode())
    written: dict[str, float] = {}
    watcher = Watcher(es, host)
    try:
        spawn("collector", [*CLI, "collector", "run", "--listen", f"127.0.0.1:{port}",
                            "--archive", str(archive), "--key", str(key)])  # fmt: skip
        time.sleep(2)
        spawn("agent", [*CLI, "agent", "run", "--config", str(tmp / "agent.toml"),
                        "--collector", url, "--token-file", str(token),
                        "--path", str(tmp / "logs" / "*" / "*.log"),
                        "--state", str(tmp / "state"), "--name", host,
                        "--host-name", host])  # fmt: skip
        spawn("alerting", [*CLI, "alerting", "run", "--config", str(tmp / "alerting.toml"),
                           "--rules-dir", str(rules)])  # fmt: skip
        time.sleep(4)
        watcher.start()
        rng = random.Random(run_id)  # addresses of this run only: each its own incident
        to = "Request Tracker" if rt else "a command writing ticket files"
        print(
            f"{args.events} events, the pack's web-shell rule every {interval.total_seconds():g} s,"
            f" settle {args.settle}, delivery to {to}; load average {os.getloadavg()[0]:.1f}"
        )
        for i in range(args.events):
            time.sleep(rng.uniform(0.9, 1.6))  # lands anywhere in a window
            ip = f"10.{i // 250}.{i % 250}.{rng.randint(1, 250)}"
            now = datetime.now(UTC)
            line = (
                f"{now:%Y-%m-%d %H:%M:%S} 10.0.0.5 GET /uploads/x.aspx "
                f"cmd=whoami+{i} 443 - {ip} Mozilla/5.0 - 200 0 0 15\r\n"
            )
            written[ip] = time.time()
            fh.write(line.encode())
        deadline = time.monotonic() + 60
        while opened_count(es, list(written)) < args.events and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)
        watcher.stop.set()
        report(es, tickets, written, watcher, rule_id, rt, interval)
    finally:
        fh.close()
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            cleanup(es, host, rule_id, lease, list(written))
        print(f"work dir: {tmp}")


def report(
    es: Any,
    tickets: Path,
    written: dict[str, float],
    w: Watcher,
    rule_id: str,
    rt: bool,
    interval: timedelta,
) -> None:
    rows = []
    es.indices.refresh(index=ALERTS_INDEX)
    docs = es.search(index=ALERTS_INDEX, query={"term": {"rule.id": rule_id}}, size=10_000)
    for h in docs["hits"]["hits"]:
        box = h["_source"]
        ip = box["group"]["source.ip"]
        if ip not in written or ip not in w.seen:
            continue
        iid = incident_id("source.ip", ip, 1)
        inc = es.options(ignore_status=404).get(index=INCIDENTS_INDEX, id=iid)
        state = ((inc.get("_source") or {}).get("delivery") or {}).get("states", {}).get("bench")
        if not state or not state.get("opened"):
            continue
        if rt:  # the ticket exists in RT once its opening is recorded
            delivered = parse_ts(state["opened_at"])
        else:  # the time the command wrote the ticket
            ticket = json.loads((tickets / f"{iid}.json").read_text())
            delivered = ticket["delivered"]
        end = datetime.fromisoformat(box["window"]["end"].replace("Z", "+00:00"))
        win = Window(end - interval, end)
        led = es.get(index=WINDOWS_INDEX, id=window_doc_id(rule_id, win))["_source"]
        stored = parse_ts(box["@timestamp"])
        started = parse_ts(led["started"])
        rows.append(
            {
                "ship": w.ingested[ip] - written[ip],
                "refresh": w.seen[ip] - w.ingested[ip],
                "schedule": started - w.seen[ip],
                "query": stored - started,
                "delivery": delivered - stored,
                "total": delivered - written[ip],
            }
        )
    missing = len(written) - len(rows)
    print(
        f"measured {len(rows)} of {len(written)} events"
        + (f" ({missing} missing)" if missing else "")
    )
    print(f"{'':10} {'p50':>7} {'p95':>7} {'max':>7}   (seconds)")
    for k in ("ship", "refresh", "schedule", "query", "delivery", "total"):
        v = [r[k] for r in rows]
        if v:
            print(f"{k:10} {statistics.median(v):7.3f} {pct(v, 95):7.3f} {max(v):7.3f}")
    if rows:
        print(f"load average at the end {os.getloadavg()[0]:.1f} (2 cores)")
        p95 = pct([r["total"] for r in rows], 95)
        verdict = "meets" if p95 < GOAL else "MISSES"
        print(f"p95 line -> ticket {p95:.2f} s: {verdict} the {GOAL:g} s goal")


def opened_count(es: Any, ips: list[str]) -> int:
    ids = [incident_id("source.ip", ip, 1) for ip in ips]
    docs = es.mget(index=INCIDENTS_INDEX, ids=ids)["docs"] if ids else []
    return sum(
        1
        for d in docs
        if d.get("found")
        and ((d["_source"].get("delivery") or {}).get("states") or {})
        .get("bench", {})
        .get("opened")
    )


def cleanup(es: Any, host: str, rule_id: str, lease: str, ips: list[str]) -> None:
    es.indices.refresh(index="iis-access-*," + ",".join([WINDOWS_INDEX, ALERTS_INDEX]))
    targets = [
        ("iis-access-*", {"term": {"host.name": host}}),
        (WINDOWS_INDEX, {"term": {"rule.id": rule_id}}),
        (SUPPRESSION_INDEX, {"term": {"rule.id": rule_id}}),
        (STATUS_INDEX, {"term": {"rule.id": rule_id}}),
        (ALERTS_INDEX, {"term": {"rule.id": rule_id}}),
    ]
    for index, query in targets:
        es.indices.refresh(index=index, ignore_unavailable=True)
        while True:
            hits = es.search(index=index, query=query, size=1000, source=False,
                             ignore_unavailable=True)["hits"]["hits"]  # fmt: skip
            if not hits:
                break
            ops = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
            es.bulk(operations=ops, refresh=True)
    es.options(ignore_status=404).delete(index="iiswatch-state-lease", id=lease)
    for ip in ips:
        es.options(ignore_status=404).delete(
            index=INCIDENTS_INDEX, id=incident_id("source.ip", ip, 1)
        )


if __name__ == "__main__":
    main()
