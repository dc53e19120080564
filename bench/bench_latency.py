"""End-to-end alert latency: a line appended to a log file the agent follows → the alert
delivered. Real processes on loopback: `iiswatch collector run`, `iiswatch agent run`,
`iiswatch alerting run` (a match rule every 1 s), and the local Elasticsearch.

Delivery goes to Request Tracker when RT_URL and RT_TOKEN are set (the ticket visible in
RT), else to a `command` destination that writes the ticket as a file (the time it is
written is the end).

Each event is one request from its own client IP (its own alert), written at a random
moment of the rule's 1 s window. Per event the breakdown is measured from the documents
themselves:
- ship: `event.ingested` (set by the collector) − the time the line was written;
- refresh: the moment a search first sees the document − `event.ingested`;
- schedule: the rule's window evaluation starting (ledger `started`) − visible;
- query: the alert stored in the outbox − evaluation start;
- delivery: the ticket written (or created in RT) − alert stored.
The goal is p95 ≤ 5 s (IIS's own buffering excluded: the line is written directly).

    .venv/bin/python bench/bench_latency.py [--events 60] [--settle 1s]
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

from iiswatch.alerting.ledger import WINDOWS_INDEX, window_doc_id
from iiswatch.alerting.outbox import ALERTS_INDEX
from iiswatch.alerting.state import SUPPRESSION_INDEX
from iiswatch.alerting.status import STATUS_INDEX
from iiswatch.alerting.windows import Window
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.ingest.collector.tokens import TokenStore

CLI = [sys.executable, "-m", "iiswatch.cli.main"]
INTERVAL = timedelta(seconds=1)
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
    ap.add_argument("--settle", default="1s", help="the service's settle delay")
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

    (rules / "bench.yaml").write_text(
        f"""id: {rule_id}
name: bench latency {run_id}
description: one alert per client IP of the benchmark host
author: bench
status: test
severity: high
risk_score: 70
index: iis-access-*
schedule: {{interval: 1s, lookback: 1s}}
type: match
lucene: 'host.name:{host} AND iiswatch.url.query.text:benchmarker'
group_by: [source.ip]
alert: {{destinations: [bench]}}
"""
    )
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
        f'settle = "{args.settle}"\njitter = "0s"\nlease_name = "{lease}"\n'
        'lease_ttl = "3s"\n[service.deadman]\nenabled = false\n'
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
        rng = random.Random(5)
        to = "Request Tracker" if rt else "a command writing ticket files"
        print(f"{args.events} events, rule every 1 s, settle {args.settle}, delivery to {to}")
        for i in range(args.events):
            time.sleep(rng.uniform(0.9, 1.6))  # lands anywhere in a window
            ip = f"10.{i // 250}.{i % 250}.{rng.randint(1, 250)}"
            now = datetime.now(UTC)
            line = (
                f"{now:%Y-%m-%d %H:%M:%S} 10.0.0.5 GET /uploads/x.aspx "
                f"q=benchmarker+{i} 443 - {ip} Mozilla/5.0 - 200 0 0 15\r\n"
            )
            written[ip] = time.time()
            fh.write(line.encode())
        deadline = time.monotonic() + 30
        while delivered_count(es, rule_id) < args.events and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)
        watcher.stop.set()
        report(es, tickets, written, watcher, rule_id, rt)
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
            cleanup(es, host, rule_id, lease)
        print(f"work dir: {tmp}")


def report(
    es: Any, tickets: Path, written: dict[str, float], w: Watcher, rule_id: str, rt: bool
) -> None:
    rows = []
    es.indices.refresh(index=ALERTS_INDEX)
    docs = es.search(index=ALERTS_INDEX, query={"term": {"rule.id": rule_id}}, size=10_000)
    for h in docs["hits"]["hits"]:
        box = h["_source"]
        ip = box["group"]["source.ip"]
        if ip not in written or ip not in w.seen or box["delivery"]["status"] != "delivered":
            continue
        if rt:  # the ticket exists in RT once the delivery is recorded
            delivered = parse_ts(box["delivery"]["delivered_at"])
        else:  # the time the command wrote the ticket
            ticket = json.loads((tickets / f"{box['alert_id']}.json").read_text())
            delivered = ticket["delivered"]
        end = datetime.fromisoformat(box["window"]["end"].replace("Z", "+00:00"))
        win = Window(end - INTERVAL, end)
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
        p95 = pct([r["total"] for r in rows], 95)
        print(f"p95 end to end {p95:.2f} s: {'meets' if p95 <= 5 else 'MISSES'} the 5 s goal")


def delivered_count(es: Any, rule_id: str) -> int:
    es.indices.refresh(index=ALERTS_INDEX, ignore_unavailable=True)
    q = {"bool": {"filter": [{"term": {"rule.id": rule_id}},
                             {"term": {"delivery.status": "delivered"}}]}}  # fmt: skip
    return int(es.count(index=ALERTS_INDEX, query=q, ignore_unavailable=True)["count"])


def cleanup(es: Any, host: str, rule_id: str, lease: str) -> None:
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


if __name__ == "__main__":
    main()
