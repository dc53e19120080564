"""A URL setting may name a cluster's nodes (comma-separated): the client gets every node,
each URL is checked for a scheme, and error messages hide the user info of each. The local
cluster's shape (ports, per-node settings, shared config) is pure logic, tested without
starting anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from iiswatch.config import Purpose, connection_for, split_urls
from iiswatch.elastic.client import make_client, without_userinfo
from iiswatch.elastic.local_cluster import LocalCluster, _cluster_yml
from iiswatch.errors import ConfigError, UsageError
from tests.unit.test_config import home  # noqa: F401 - the fixture

NODES = "http://127.0.0.1:9271, http://127.0.0.1:9272,http://127.0.0.1:9273"


def test_split_urls_trims_and_drops_empty_parts() -> None:
    assert split_urls(NODES + ",") == [f"http://127.0.0.1:{p}" for p in (9271, 9272, 9273)]
    assert split_urls("https://es.example.org:9200") == ["https://es.example.org:9200"]


def test_the_client_gets_every_node_of_the_url_setting(
    home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IISWATCH_ES_URL", NODES)
    monkeypatch.setenv("IISWATCH_ES_API_KEY", "k")
    conn = connection_for(Purpose.WRITER)
    assert conn.urls == split_urls(NODES)
    es = make_client(conn)
    hosts = sorted(n.config.port for n in es.transport.node_pool.all())
    assert hosts == [9271, 9272, 9273]


def test_a_node_without_a_scheme_is_named(
    home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IISWATCH_ES_URL", "http://es1:9200,es2:9200")
    monkeypatch.setenv("IISWATCH_ES_API_KEY", "k")
    with pytest.raises(ConfigError) as e:
        connection_for(Purpose.READER)
    assert e.value.message.startswith("IISWATCH_ES_URL: 'es2:9200' has no scheme")


def test_error_messages_hide_the_user_info_of_every_node() -> None:
    shown = without_userinfo("https://u:secret@es1:9200,https://u:secret@es2:9200")
    assert "secret" not in shown
    assert shown == "https://***@es1:9200,https://***@es2:9200"


def test_each_node_has_its_own_ports_and_paths_on_its_command_line(tmp_path: Path) -> None:
    c = LocalCluster(3, http_port=9271, root=tmp_path / "es")
    assert [(n.name, n.http_port, n.transport_port) for n in c.nodes] == [
        ("node-1", 9271, 9371),
        ("node-2", 9272, 9372),
        ("node-3", 9273, 9373),
    ]
    assert c.url == "http://127.0.0.1:9271,http://127.0.0.1:9272,http://127.0.0.1:9273"
    second = c.nodes[1].settings()
    assert "-Enode.name=node-2" in second
    assert f"-Epath.data={tmp_path / 'es' / 'nodes' / 'node-2' / 'data'}" in second
    yml = _cluster_yml(c.nodes)
    assert 'discovery.seed_hosts: ["127.0.0.1:9371", "127.0.0.1:9372", "127.0.0.1:9373"]' in yml
    assert 'cluster.initial_master_nodes: ["node-1", "node-2", "node-3"]' in yml
    assert "network.host: 127.0.0.1" in yml and "single-node" not in yml


def test_the_recorded_shape_is_read_back(tmp_path: Path) -> None:
    c = LocalCluster(2, http_port=9400, transport_port=9500, heap="256m", root=tmp_path)
    tmp_path.mkdir(exist_ok=True)
    c._record_shape()
    back = LocalCluster.recorded(tmp_path)
    assert back is not None
    assert [n.transport_port for n in back.nodes] == [9500, 9501]
    assert (back.heap, back.version) == ("256m", c.version)
    assert LocalCluster.recorded(tmp_path / "elsewhere") is None


def test_a_cluster_of_no_nodes_or_ports_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        LocalCluster(0, root=tmp_path)
    with pytest.raises(UsageError):
        LocalCluster(3, http_port=65534, root=tmp_path)


def test_a_pid_file_naming_another_process_is_never_signalled(tmp_path: Path) -> None:
    """Even a process whose command line says `elasticsearch` is left alone unless it was
    started for this node's data dir: a reused pid must not be killed."""
    c = LocalCluster(1, http_port=9400, root=tmp_path)
    n = c.nodes[0]
    n.home.root.mkdir(parents=True)
    other = subprocess.Popen(["sh", "-c", "sleep 30", "elasticsearch"])
    try:
        n.home.pid_file.write_text(f"{other.pid}\n")
        assert c.pid(n) is None
        assert c.stop_node(n, crash=True) is False
        assert other.poll() is None  # still running
    finally:
        other.kill()
        other.wait(10)
