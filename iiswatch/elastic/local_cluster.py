"""A local Elasticsearch cluster: N nodes on 127.0.0.1 from the same cached distribution as
`iiswatch es up`, each with its own data and logs, for trying shards and replicas and for
the node-loss test (tests/integration/test_cluster_node_loss.py).

Layout under the state dir (`paths.es_state_dir()`, as for the single node, so `iiswatch
setup` and every other command find it through `connection.json` as "the local node"):

    config/            one config dir for every node: elasticsearch.yml (what they share),
                       the keystore with the bootstrap password, the file realm's users/roles
    elastic.password   the `elastic` user's password, the same on every node
    connection.json    all the nodes' URLs, comma-separated
    cluster.json       its shape (size, ports, heap, version), for `iiswatch es cluster down`
    nodes/<name>/      data/, logs/, node.pid of one node

What differs per node (name, ports, data and log paths) is passed on its command line
(`-Ename=value`), so the realm files `iiswatch setup` writes are seen by all nodes at once.
Security is on with basic auth and TLS off, as for the single node: every port is bound to
loopback, which also keeps Elasticsearch in development mode (its bootstrap checks, the
transport-TLS one among them, warn instead of refusing to start).

A node is stopped through the pid its own start recorded, and only when that process is
still an Elasticsearch launched for that node's data dir: nothing else is ever signalled.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

from iiswatch import paths
from iiswatch.elastic import node as single
from iiswatch.elastic.java import find_java
from iiswatch.errors import NodeError, UsageError

DEFAULT_SIZE = 3
DEFAULT_HTTP_PORT = 9271
DEFAULT_HEAP = "512m"
SHAPE_FILE = "cluster.json"  # size, ports, heap, version: what `down` and `status` read back


@dataclass(frozen=True)
class ClusterNode:
    name: str
    http_port: int
    transport_port: int
    home: single.Layout  # nodes/<name>: data, logs, pid file (its `config` is unused)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def settings(self) -> list[str]:
        """What only this node has, as command-line settings."""
        return [
            f"-Enode.name={self.name}",
            f"-Ehttp.port={self.http_port}",
            f"-Etransport.port={self.transport_port}",
            f"-Epath.data={self.home.data}",
            f"-Epath.logs={self.home.logs}",
        ]


@dataclass(frozen=True)
class NodeState:
    """One node as its pid file, its process and its files say (no request is made)."""

    name: str
    url: str
    pid: int | None  # while it runs
    log: str  # its log file (the console log until logging is up)


@dataclass(frozen=True)
class ClusterStatus:
    """The local cluster in a state dir: its nodes, and the cluster's health when one runs."""

    state_dir: str
    nodes: list[NodeState]
    answering: bool = False
    health: str | None = None
    error: str | None = None

    @property
    def running(self) -> int:
        return sum(n.pid is not None for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {"size": len(self.nodes), "running": self.running, **asdict(self)}


def _cluster_yml(nodes: list[ClusterNode]) -> str:
    seeds = json.dumps([f"127.0.0.1:{n.transport_port}" for n in nodes])
    masters = json.dumps([n.name for n in nodes])
    return f"""\
# Written by iiswatch's local cluster on every start; edits here are overwritten.
# Per node (name, ports, paths): on its command line.
cluster.name: {single.CLUSTER_NAME}
discovery.seed_hosts: {seeds}
# read only when the cluster forms for the first time
cluster.initial_master_nodes: {masters}
{single.LOOPBACK_SECURITY_YML}"""


class LocalCluster:
    """`size` nodes named node-1.., HTTP ports from `http_port`, transport ports from
    `transport_port` (default: HTTP + 100), every node master-eligible and a data node."""

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        http_port: int = DEFAULT_HTTP_PORT,
        transport_port: int | None = None,
        heap: str = DEFAULT_HEAP,
        version: str | None = None,
        root: Path | None = None,
    ) -> None:
        if size < 1:
            raise UsageError(f"a cluster needs at least one node (got {size})")
        self.version = single.resolve_version(version)
        self.heap = single.check_heap(heap)
        self.shared = single.Layout(root or paths.es_state_dir())
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.http_port, self.transport_port = http_port, transport_port or http_port + 100
        first_transport = self.transport_port
        for port in (http_port, first_transport):
            single.resolve_port(port)
            single.resolve_port(port + size - 1)
        self.nodes = [
            ClusterNode(
                f"node-{i + 1}",
                http_port + i,
                first_transport + i,
                single.Layout(self.shared.root / "nodes" / f"node-{i + 1}"),
            )
            for i in range(size)
        ]

    @classmethod
    def recorded(cls, root: Path | None = None) -> LocalCluster | None:
        """The cluster whose shape `up` recorded in this state dir, or None (never started
        here, or a single node lives here)."""
        root = root or paths.es_state_dir()
        try:
            shape = json.loads((root / SHAPE_FILE).read_text())
            return cls(
                size=int(shape["size"]),
                http_port=int(shape["http_port"]),
                transport_port=int(shape["transport_port"]),
                heap=str(shape["heap"]),
                version=str(shape["version"]),
                root=root,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _record_shape(self) -> None:
        shape = {
            "size": len(self.nodes),
            "http_port": self.http_port,
            "transport_port": self.transport_port,
            "heap": self.heap,
            "version": self.version,
        }
        (self.shared.root / SHAPE_FILE).write_text(json.dumps(shape, indent=2) + "\n")

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: the form a URL setting takes for a cluster."""
        return ",".join(n.url for n in self.nodes)

    def node(self, name: str) -> ClusterNode:
        """A node by its name (`node-2`) or its number (`2`)."""
        want = f"node-{name}" if name.isdigit() else name
        found = [n for n in self.nodes if n.name == want]
        if not found:
            names = ", ".join(n.name for n in self.nodes)
            raise UsageError(
                f"no node {name!r} in the local cluster in {self.shared.root}",
                hint=f"its nodes are {names} (or their numbers, 1 to {len(self.nodes)})",
            )
        return found[0]

    def info(self) -> single.NodeInfo:
        pids = [self.pid(n) for n in self.nodes]
        return single.NodeInfo(
            url=self.url,
            username=single.USERNAME,
            password_file=str(self.shared.password_file),
            version=self.version,
            pid=next((p for p in pids if p is not None), 0),
        )

    def client(self, request_timeout: float = 10.0) -> Elasticsearch:
        return self.info().client(request_timeout)

    # --- processes ------------------------------------------------------------------------

    def pid(self, n: ClusterNode) -> int | None:
        """The node's pid while it runs; only a process whose command line names this node's
        data dir counts (a reused pid is someone else's process)."""
        pid = single.running_pid(n.home)
        if pid is None:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if f"-Epath.data={n.home.data}".encode() in cmdline else None

    def node_states(self) -> list[NodeState]:
        return [
            NodeState(n.name, n.url, self.pid(n), str(single.log_file(n.home))) for n in self.nodes
        ]

    def status(self, request_timeout: float = 5.0) -> ClusterStatus:
        """Which nodes run, and, when any does, the cluster's health as they answer it."""
        st = ClusterStatus(str(self.shared.root), self.node_states())
        if not st.running:
            return st
        try:
            with self.client(request_timeout) as es:
                health = es.options(max_retries=len(self.nodes)).cluster.health()
        except (ApiError, TransportError, OSError) as e:
            return replace(st, error=single._short_error(e))
        return replace(st, answering=True, health=health["status"])

    def up(
        self, timeout: float = single.DEFAULT_TIMEOUT, progress: single.Progress = single._quiet
    ) -> single.NodeInfo:
        """Start every node that is not running and wait until all have joined and the
        cluster is yellow or better; writes connection.json."""
        deadline = time.monotonic() + timeout
        with single._locked(self.shared):
            if (pid := single.running_pid(self.shared)) is not None:
                raise NodeError(
                    f"a single node (pid {pid}) runs in {self.shared.root}",
                    hint="`iiswatch es down` first, or give the cluster another IISWATCH_HOME",
                )
            install = self._prepare(progress)
            self._record_shape()
            for n in self.nodes:
                if self.pid(n) is None:
                    self._start(n, install)
            self.wait_for(len(self.nodes), deadline, progress)
            info = self.info()
            single._write_private(
                self.shared.connection_file, json.dumps(asdict(info), indent=2) + "\n"
            )
            return info

    def start_node(
        self,
        n: ClusterNode,
        timeout: float = single.DEFAULT_TIMEOUT,
        progress: single.Progress = single._quiet,
    ) -> None:
        """Start one node again (after stop_node) and wait until the cluster has all nodes."""
        deadline = time.monotonic() + timeout
        with single._locked(self.shared):
            if self.pid(n) is None:
                self._start(n, single.install_dir(self.version))
            self.wait_for(len(self.nodes), deadline, progress)

    def stop_node(self, n: ClusterNode, timeout: float = 60.0, *, crash: bool = False) -> bool:
        """Stop one node: SIGTERM (SIGKILL after `timeout`), or SIGKILL at once with `crash`.
        False when it was not running."""
        pid = self.pid(n)
        if pid is None:
            return False
        single.stop_group(pid, timeout, first=signal.SIGKILL if crash else signal.SIGTERM)
        if (proc := self._procs.pop(n.name, None)) is not None:
            proc.wait(timeout)
        n.home.pid_file.unlink(missing_ok=True)
        return True

    def down(self, timeout: float = 60.0) -> None:
        for n in self.nodes:
            self.stop_node(n, timeout)
        self.shared.connection_file.unlink(missing_ok=True)

    # --- state ----------------------------------------------------------------------------

    def master(self, es: Elasticsearch) -> ClusterNode:
        """The elected master, as the cluster sees it now."""
        state = es.cluster.state(metric="master_node,nodes")
        master_id = state["master_node"]
        return self.node(state["nodes"][master_id]["name"])

    def wait_for(self, nodes: int, deadline: float, progress: single.Progress) -> None:
        """Until `nodes` nodes are in the cluster and it is yellow or better."""
        start = time.monotonic()
        with self.client(request_timeout=10) as es:
            while True:
                dead = [n for n in self.nodes if n.home.pid_file.exists() and self.pid(n) is None]
                if dead:
                    raise NodeError(
                        f"Elasticsearch {dead[0].name} exited:\n"
                        + single.log_excerpt(dead[0].home),
                        hint=f"full log: {single.log_file(dead[0].home)}",
                    )
                try:
                    health = es.options(max_retries=len(self.nodes)).cluster.health(
                        wait_for_nodes=str(nodes), wait_for_status="yellow", timeout="2s"
                    )
                    if not health["timed_out"] and health["number_of_nodes"] >= nodes:
                        return
                except ApiError as e:
                    if e.status_code == 401:
                        raise NodeError(
                            "the cluster rejects the elastic password in "
                            f"{self.shared.password_file}",
                            hint=f"delete {self.shared.root} to start over",
                        ) from None
                except (TransportError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise NodeError(
                        f"the local cluster did not have {nodes} nodes within "
                        f"{time.monotonic() - start:.0f}s",
                        hint=f"the nodes' logs: {self.shared.root / 'nodes'}/*/logs",
                    )
                progress(f"waiting for {nodes} nodes ({time.monotonic() - start:.0f}s)")
                time.sleep(0.5)

    # --- start ----------------------------------------------------------------------------

    def _prepare(self, progress: single.Progress) -> Path:
        run_as = single._run_as()
        for d in (paths.cache_dir(), self.shared.root):
            d.mkdir(parents=True, exist_ok=True)
        single._check_reachable(
            run_as, [(paths.cache_dir(), "-x"), (self.shared.root.parent, "-x")]
        )
        for n in self.nodes:
            if self.pid(n) is None:
                for port in (n.http_port, n.transport_port):
                    if not single._port_free(port):
                        raise NodeError(
                            f"port {port} on 127.0.0.1 is already in use by another program",
                            hint="pick other ports for the local cluster",
                        )
        install = single.ensure_installed(self.version, progress)
        env = self._env(install)
        single.prepare_state_dir(self.shared, install, run_as)
        yml = self.shared.config / "elasticsearch.yml"
        yml.write_text(_cluster_yml(self.nodes))
        run_as.chown(yml)
        homes = [n.home for n in self.nodes]
        (self.shared.root / "nodes").mkdir(exist_ok=True)
        for d in [self.shared.config] + [p for h in homes for p in (h.root, h.data, h.logs)]:
            d.mkdir(exist_ok=True)
            d.chmod(0o750)
            run_as.chown(d)
        single.ensure_keystore(
            self.shared, install, env, run_as, progress, data_dirs=[h.data for h in homes]
        )
        return install

    def _env(self, install: Path) -> dict[str, str]:
        return single._node_env(install, find_java().home, self.shared, self.heap, single._run_as())

    def _start(self, n: ClusterNode, install: Path) -> int:
        run_as = single._run_as()
        with open(n.home.console_log, "ab") as console:
            run_as.chown(n.home.console_log)
            proc = subprocess.Popen(
                [str(install / "bin" / "elasticsearch"), "--quiet", *n.settings()],
                env=self._env(install),
                cwd=n.home.root,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop_group signals only it
                close_fds=True,
                **run_as.popen_kwargs(),
            )
        n.home.pid_file.write_text(f"{proc.pid}\n")
        self._procs[n.name] = proc  # reaped when stopped, so no zombie outlives it
        return proc.pid
