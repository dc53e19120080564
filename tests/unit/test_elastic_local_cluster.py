"""What `iiswatch es status` and `es logs` know of a local cluster (`es cluster up`) under the
same IISWATCH_HOME: which nodes run (their pid files and processes), which node a `--node`
names, and the log it shows. Nothing is started but a stand-in process whose command line
looks like a cluster node's, so no network is used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iiswatch.elastic.local_cluster import LocalCluster
from iiswatch.errors import UsageError

CLI = [sys.executable, "-m", "iiswatch.cli.main"]
PORT = 9471  # recorded, never bound: no node is started


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cluster(home: Path) -> LocalCluster:
    """A three-node cluster recorded under `home` as `es cluster up` records it."""
    c = LocalCluster(3, http_port=PORT, root=home / "es")
    c.shared.root.mkdir(parents=True)
    c._record_shape()
    for n in c.nodes:
        n.home.logs.mkdir(parents=True)
    return c


@pytest.fixture
def node_2_runs(cluster: LocalCluster) -> Iterator[int]:
    """A process standing in for node-2: its command line names Elasticsearch and node-2's
    data dir, as a real node's does; its pid in node-2's pid file."""
    n = cluster.node("node-2")
    argv = ["import time; time.sleep(120)", "elasticsearch", f"-Epath.data={n.home.data}"]
    proc = subprocess.Popen([sys.executable, "-c", *argv])
    n.home.pid_file.write_text(f"{proc.pid}\n")
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(30)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IISWATCH_HOME": str(home), "IISWATCH_CONFIG": str(home / "none.toml")}
    for var in ("IISWATCH_ES_PORT", "IISWATCH_ES_URL", "IISWATCH_DEBUG"):
        env.pop(var, None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def test_a_node_is_named_by_its_name_or_its_number(cluster: LocalCluster) -> None:
    assert cluster.node("node-2") is cluster.nodes[1]
    assert cluster.node("3") is cluster.nodes[2]


@pytest.mark.parametrize("wrong", ["7", "node-0", "master"])
def test_a_wrong_node_is_refused_naming_the_valid_ones(cluster: LocalCluster, wrong: str) -> None:
    with pytest.raises(UsageError) as e:
        cluster.node(wrong)
    assert repr(wrong) in e.value.message
    assert "node-1, node-2, node-3" in (e.value.hint or "")


def test_only_a_node_whose_process_runs_for_its_data_dir_counts_as_running(
    cluster: LocalCluster, node_2_runs: int
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass", "elasticsearch"])
    dead.wait(30)
    cluster.node("node-3").home.pid_file.write_text(f"{dead.pid}\n")  # a stale pid file
    states = cluster.node_states()
    assert [(s.name, s.pid) for s in states] == [
        ("node-1", None),
        ("node-2", node_2_runs),
        ("node-3", None),
    ]
    assert states[1].url == f"http://127.0.0.1:{PORT + 1}"
    assert states[1].log.startswith(str(cluster.node("node-2").home.logs))


def test_es_status_says_the_cluster_runs_and_points_to_cluster_status(
    home: Path, cluster: LocalCluster, node_2_runs: int
) -> None:
    done = _cli(home, "es", "status")
    # no password file was written, so the cluster is asked nothing: running, not answering
    assert done.returncode == 3, done.stderr
    assert "a local cluster runs here: 1 of 3 nodes" in done.stdout
    assert "iiswatch es cluster status" in done.stdout
    assert str(node_2_runs) in done.stdout

    report = json.loads(_cli(home, "es", "status", "--json").stdout)
    assert report["running"] is False  # the single node
    assert report["cluster"]["size"] == 3 and report["cluster"]["running"] == 1
    assert [n["pid"] for n in report["cluster"]["nodes"]] == [None, node_2_runs, None]
    assert report["cluster"]["answering"] is False and report["cluster"]["error"]


def test_es_status_without_a_cluster_has_no_cluster_in_its_json(home: Path) -> None:
    done = _cli(home, "es", "status", "--json")
    assert done.returncode == 3
    assert json.loads(done.stdout)["cluster"] is None


def test_es_logs_shows_the_log_of_the_node_given(home: Path, cluster: LocalCluster) -> None:
    for n in cluster.nodes:
        n.home.main_log.write_text(f"first line of {n.name}\nlast line of {n.name}\n")
    for given in ("node-2", "2"):
        done = _cli(home, "es", "logs", "--node", given, "-n", "1")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "last line of node-2\n"


def test_es_logs_with_a_wrong_node_names_the_valid_ones(home: Path, cluster: LocalCluster) -> None:
    done = _cli(home, "es", "logs", "--node", "7")
    assert done.returncode == 2
    assert "no node '7' in the local cluster" in done.stderr
    assert "node-1, node-2, node-3" in done.stderr


def test_es_logs_without_a_node_points_to_the_cluster_nodes(
    home: Path, cluster: LocalCluster
) -> None:
    done = _cli(home, "es", "logs")
    assert done.returncode == 2
    assert "--node" in done.stderr and "node-1, node-2, node-3" in done.stderr


def test_es_logs_with_a_node_but_no_cluster_says_so(home: Path) -> None:
    done = _cli(home, "es", "logs", "--node", "1")
    assert done.returncode == 2
    assert "no local cluster in" in done.stderr
