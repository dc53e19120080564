"""The stack in containers, end to end: build the images, bring up Elasticsearch, setup,
the collector (TLS) and the alerting service twice; an agent on the host ships an IIS log
with a web-shell command and the ticket appears in Request Tracker. Then the collector and
one alerting container are killed while the attack goes on: after they come back every line
is indexed exactly once and each attacker has exactly one ticket."""

from __future__ import annotations

import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from elasticsearch import Elasticsearch

from iiswatch.alerting.risk import incident_id
from iiswatch.cli.demo.w3c import W3C_DEFAULT_FIELDS, w3c_header
from tests.docker.stack import ROOT, Stack, build_images, wait_for
from tests.integration.alerting_support import Rt, rt_from_env

RULE = ROOT / "searches" / "webshell" / "command_execution_parameters.yaml"
AGENT = [sys.executable, "-m", "iiswatch.cli.agent", "run"]


def lines_for(ip: str, n: int) -> list[str]:
    """n requests from `ip`, the last one a web-shell command (what the rule must catch)."""
    now = datetime.now(UTC)
    stamp = f"{now:%Y-%m-%d %H:%M:%S}"
    out = [
        f"{stamp} 10.0.1.20 GET /index.html - 443 - {ip} Mozilla/5.0 - 200 0 0 {i}"
        for i in range(n - 1)
    ]
    out.append(
        f"{stamp} 10.0.1.20 GET /uploads/x7k2q.aspx cmd=Cmd.ExE+/c+whoami 443 - {ip} "
        "Mozilla/5.0 - 200 0 0 15"
    )
    return out


def tickets_for(rt: Rt, ip: str) -> set[str]:
    """The tickets of the address's incidents (ids are deterministic per entity; a second or
    third incident for one attacker would be a doubled ticket)."""
    found: set[str] = set()
    for generation in (1, 2, 3):
        found.update(rt.tickets_for_alert(incident_id("source.ip", ip, generation)))
    return found


def test_log_to_ticket_in_containers_and_recovery(tmp_path: Path) -> None:
    import docker

    rt = rt_from_env()
    subprocess.run(["bash", "docker/engine.sh"], cwd=ROOT, check=True)
    client = docker.from_env(timeout=900)
    t_start = time.monotonic()
    took = build_images(client)
    stack = Stack(client, tmp_path)
    agent: subprocess.Popen[bytes] | None = None
    try:
        es_container = stack.start_elasticsearch()
        stack.make_certs()  # while Elasticsearch starts
        stack.wait_healthy(es_container, 900)
        t_es = time.monotonic()
        stack.iiswatch(["iiswatch", "setup"], es_config="/var/lib/iiswatch/es/config")
        host = f"docker-it-{os.getpid()}"  # the agent's token may send for this host only
        token = stack.iiswatch(
            ["iiswatch", "collector", "add-agent", "web01", "--host", host,
             "--archive", "/srv/iiswatch/archive"],
            archive="/srv/iiswatch/archive",
        ).split()[-1]  # fmt: skip
        ca = tmp_path / "ca.pem"
        ca.write_bytes(stack.read_file("certs", "ca/ca.crt"))

        port = stack.collector_port
        archive = {
            stack.volume("archive"): {"bind": "/srv/iiswatch/archive", "mode": "rw"},
            stack.volume("certs"): {"bind": "/certs", "mode": "ro"},
        }
        collector = stack.start_service(
            "collector",
            ["iiswatch", "collector", "run", f"--listen=127.0.0.1:{port}",
             "--archive=/srv/iiswatch/archive", "--tls-cert=/certs/collector/collector.crt",
             "--tls-key=/certs/collector/collector.key"],
            archive,
        )  # fmt: skip
        tls = ssl.create_default_context(cafile=str(ca))

        def collector_up() -> bool:
            try:
                with urllib.request.urlopen(
                    f"https://localhost:{port}/healthz", context=tls, timeout=5
                ) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(collector_up, 180, f"the collector on {port}\n{stack.logs(collector)}")

        rules = tmp_path / "rules"
        rules.mkdir()
        shutil.copy(RULE, rules / RULE.name)
        (tmp_path / "rt_token").write_text(rt.token)
        (tmp_path / "rt_token").chmod(0o644)
        (tmp_path / "alerting.toml").write_text(
            f'[destinations.servicedesk]\ntype = "request_tracker"\nurl = "{rt.url}"\n'
            'queue = "General"\ntoken = "${file:/run/secrets/rt_token}"\n\n'
            '[service]\nsettle = "2s"\nlease_ttl = "10s"\n'
            'default_destinations = ["servicedesk"]\nerror_destinations = []\n'
        )
        alerting_mounts = {
            str(rules): {"bind": "/rules", "mode": "ro"},
            str(tmp_path / "alerting.toml"): {"bind": "/etc/iiswatch/alerting.toml", "mode": "ro"},
            str(tmp_path / "rt_token"): {"bind": "/run/secrets/rt_token", "mode": "ro"},
        }
        alerting_env = {
            "IISWATCH_ALERTING_CONFIG": "/etc/iiswatch/alerting.toml",
            "IISWATCH_RULES_DIR": "/rules",
        }
        alerting = [
            stack.start_service(name, ["iiswatch", "alerting", "run"], alerting_mounts,
                                alerting_env)
            for name in ("alerting-a", "alerting-b")
        ]  # fmt: skip

        # an agent on the host follows an IIS log folder and ships to the container
        logs = tmp_path / "logs" / "W3SVC1"
        logs.mkdir(parents=True)
        log = logs / f"u_ex{datetime.now(UTC):%y%m%d}.log"
        log.write_text(w3c_header(W3C_DEFAULT_FIELDS, datetime.now(UTC).replace(tzinfo=None)))
        (tmp_path / "token").write_text(token + "\n")
        (tmp_path / "token").chmod(0o600)
        (tmp_path / "agent.toml").write_text(
            "[agent]\npoll_interval = 0.2\nbatch_max_wait = 0.5\nbackoff_initial = 0.2\n"
            "backoff_max = 2.0\n"
        )
        agent = subprocess.Popen(
            [*AGENT, "--config", str(tmp_path / "agent.toml"), "--collector",
             f"https://localhost:{port}", "--ca", str(ca), "--token-file",
             str(tmp_path / "token"), "--path", str(logs / "*.log"), "--state",
             str(tmp_path / "state"), "--name", "web01", "--host-name", host],
            stderr=(tmp_path / "agent.err").open("ab"), stdout=subprocess.DEVNULL,
        )  # fmt: skip

        es = Elasticsearch(
            f"http://127.0.0.1:{stack.es_port}",
            basic_auth=("elastic", stack.password_file.read_text()),
            request_timeout=30,
        )
        rng = random.Random()
        ip1, ip2 = (f"10.{rng.randrange(256)}.{rng.randrange(256)}.{n}" for n in (1, 2))
        written = 0

        def append(ip: str, n: int) -> None:
            nonlocal written
            with log.open("a", newline="") as f:
                f.write("".join(line + "\r\n" for line in lines_for(ip, n)))
            written += n

        def indexed() -> int:
            es.indices.refresh(index="iis-access-*", ignore_unavailable=True)
            return int(es.count(index="iis-access-*", query={"term": {"host.name": host}})["count"])

        def diagnose() -> str:
            parts = [f"--- {c.name}\n{stack.logs(c)}" for c in (collector, *alerting)]
            parts.append("--- agent\n" + (tmp_path / "agent.err").read_text()[-2000:])
            return "\n".join(parts)

        # 1. a log line becomes a ticket
        append(ip1, 20)
        try:
            wait_for(lambda: indexed() == written, 240, f"{written} documents")
            wait_for(lambda: len(tickets_for(rt, ip1)) > 0, 300, f"a ticket for {ip1}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{diagnose()}") from None
        t_ticket = time.monotonic()

        # 2. the collector and one alerting container die while the attack goes on
        collector.kill(signal="SIGKILL")
        alerting[0].kill(signal="SIGKILL")
        append(ip2, 30)
        time.sleep(3)  # the agent retries against a dead collector meanwhile
        collector.start()
        try:
            wait_for(lambda: indexed() == written, 300, f"{written} documents after recovery")
            wait_for(lambda: len(tickets_for(rt, ip2)) > 0, 300, f"a ticket for {ip2}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{diagnose()}") from None
        alerting[0].start()  # back, as a standby: it must not deliver anything twice
        time.sleep(20)

        # nothing lost, nothing doubled
        hits = es.search(
            index="iis-access-*", query={"term": {"host.name": host}}, size=1000,
            source=["log.offset", "iiswatch.file_id"],
        )["hits"]["hits"]  # fmt: skip
        offsets = {
            (h["_source"]["iiswatch"]["file_id"], h["_source"]["log"]["offset"]) for h in hits
        }
        assert len(hits) == len(offsets) == written
        assert len(tickets_for(rt, ip1)) == 1
        assert len(tickets_for(rt, ip2)) == 1
        print(
            f"\ndocker stack: images {', '.join(f'{k} {v:.0f}s' for k, v in took.items())}; "
            f"Elasticsearch healthy after {t_es - t_start:.0f}s; first ticket after "
            f"{t_ticket - t_start:.0f}s; total {time.monotonic() - t_start:.0f}s"
        )
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
        stack.teardown()
