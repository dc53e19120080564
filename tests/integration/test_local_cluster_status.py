"""`iiswatch es status` and `es logs --node` against a real local cluster: one node of
iiswatch/elastic/local_cluster.py (one JVM, the smallest cluster `es cluster up` makes) in
`$IISWATCH_HOME/cluster-status`, on free ports, stopped afterwards by the pid it started with.
The three-node cluster is tests/integration/test_cluster_node_loss.py's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iiswatch.elastic.local_cluster import LocalCluster
from tests.integration.test_agent_collector import free_port

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

CLI = [sys.executable, "-m", "iiswatch.cli.main"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    home = os.environ.get("IISWATCH_HOME")
    if not home:
        pytest.fail("IISWATCH_HOME is not set: run `bash scripts/test`", pytrace=False)
    root = Path(home) / "cluster-status" / "es"
    leftover = LocalCluster.recorded(root)
    if leftover is not None:
        leftover.down()  # a run that died before its own clean-up
    c = LocalCluster(size=1, http_port=free_port(), transport_port=free_port(), root=root)
    for n in c.nodes:
        shutil.rmtree(n.home.data, ignore_errors=True)  # the cluster forms afresh
    try:
        c.up(timeout=600)  # generous: a loaded 2-core machine starts a JVM slowly
        yield c
    finally:
        c.down()


def _cli(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IISWATCH_HOME": str(cluster.shared.root.parent)}
    env.pop("IISWATCH_ES_PORT", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def test_es_status_and_logs_see_the_local_cluster_under_the_same_home(
    cluster: LocalCluster,
) -> None:
    (node,) = cluster.nodes
    done = _cli(cluster, "es", "status", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["running"] is False  # no single node here
    assert report["cluster"]["answering"] is True, report["cluster"]["error"]
    assert report["cluster"]["health"] in ("green", "yellow")
    assert [n["pid"] for n in report["cluster"]["nodes"]] == [cluster.pid(node)]

    shown = _cli(cluster, "es", "status")
    assert shown.returncode == 0, shown.stderr
    assert "a local cluster runs here: 1 of 1 nodes" in shown.stdout

    logs = _cli(cluster, "es", "logs", "--node", "1", "-n", "200")
    assert logs.returncode == 0, logs.stderr
    assert f"[{node.name}]" in logs.stdout  # Elasticsearch names the node in each line

    wrong = _cli(cluster, "es", "logs", "--node", "2")
    assert wrong.returncode == 2
    assert "no node '2'" in wrong.stderr and "its nodes are node-1" in wrong.stderr
