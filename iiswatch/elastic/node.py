"""The local single-node Elasticsearch behind `iiswatch es`: fetch the distribution with Maven,
unpack it once into the cache, keep its config, data and logs in the state dir, start it
detached, wait until it answers, report on it, stop it.

The install (`paths.cache_dir()/elasticsearch-<version>/`) is read-only and shared; everything
the node writes lives under `paths.es_state_dir()`. Elasticsearch refuses to run as root, so
when we are root the node runs as the system user `iiswatch-es`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch import ConnectionTimeout as ESConnectionTimeout

from iiswatch import environment, paths
from iiswatch.config import split_urls
from iiswatch.elastic.java import find_java
from iiswatch.errors import NodeError, UsageError

DEFAULT_VERSION = "9.5.4"
DEFAULT_PORT = 9200
DEFAULT_HEAP = "2g"
DEFAULT_TIMEOUT = 120.0
NODE_USER = "iiswatch-es"
CLUSTER_NAME = "iiswatch"
USERNAME = "elastic"
MAVEN_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Layout:
    """Where one node keeps its mutable files."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def password_file(self) -> Path:
        return self.root / "elastic.password"

    @property
    def connection_file(self) -> Path:
        return self.root / "connection.json"

    @property
    def pid_file(self) -> Path:
        return self.root / "node.pid"

    @property
    def console_log(self) -> Path:
        """The launcher's stdout/stderr: startup failures that happen before logging is up."""
        return self.logs / "console.log"

    @property
    def main_log(self) -> Path:
        return self.logs / f"{CLUSTER_NAME}.log"


def layout() -> Layout:
    return Layout(paths.es_state_dir())


@dataclass(frozen=True)
class NodeInfo:
    """What `connection.json` holds: how to reach the node we started."""

    url: str
    username: str
    password_file: str
    version: str
    pid: int

    def password(self) -> str:
        return Path(self.password_file).read_text().strip()

    def client(self, request_timeout: float = 10.0) -> Elasticsearch:
        return Elasticsearch(
            split_urls(self.url),  # a local cluster records all its nodes' URLs
            basic_auth=(self.username, self.password()),
            request_timeout=request_timeout,
            max_retries=0,
        )


@dataclass(frozen=True)
class UpResult:
    node: NodeInfo
    already_running: bool
    seconds: float
    note: str | None = None


@dataclass(frozen=True)
class NodeStatus:
    running: bool
    answering: bool
    pid: int | None
    url: str | None
    version: str | None
    health: str | None
    heap_used_bytes: int | None
    heap_max_bytes: int | None
    docs: int | None
    state_dir: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- settings ---------------------------------------------------------------------------------


def resolve_version(version: str | None = None) -> str:
    v = version or environment.env("IISWATCH_ES_VERSION") or DEFAULT_VERSION
    if not re.fullmatch(r"\d+\.\d+\.\d+", v):
        raise UsageError(f"not an Elasticsearch version: {v!r}", hint="use e.g. 9.5.4")
    return v


def resolve_port(port: int | None = None) -> int:
    if port is None:
        env = environment.env("IISWATCH_ES_PORT")
        try:
            port = int(env) if env else DEFAULT_PORT
        except ValueError:
            raise UsageError(f"IISWATCH_ES_PORT={env!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} is out of range", hint="use a port between 1 and 65535")
    return port


def check_heap(heap: str) -> str:
    if not re.fullmatch(r"\d+[kmgKMG]?", heap):
        raise UsageError(f"not a heap size: {heap!r}", hint="use e.g. 512m or 2g")
    return heap


# --- processes --------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True when `pid` runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X")


def _is_elasticsearch(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return _alive(pid) and b"elasticsearch" in cmdline.lower()


def running_pid(lay: Layout | None = None) -> int | None:
    """The pid of our node when it runs; a stale pid file (and connection.json) is removed."""
    lay = lay or layout()
    try:
        pid = int(lay.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if _is_elasticsearch(pid):
        return pid
    for f in (lay.pid_file, lay.connection_file):
        f.unlink(missing_ok=True)
    return None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg succeeds while zombies remain in the group; look for a live member.
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(proc.name)) == pgid and _alive(int(proc.name)):
                    return True
    return False


@contextlib.contextmanager
def _locked(lay: Layout) -> Iterator[None]:
    """One `es up`/`es down` at a time per state dir; a second caller waits for the first."""
    lay.root.mkdir(parents=True, exist_ok=True)
    with open(lay.root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- install ----------------------------------------------------------------------------------


def install_dir(version: str) -> Path:
    return paths.cache_dir() / f"elasticsearch-{version}"


def ensure_installed(version: str, progress: Progress = _quiet) -> Path:
    """The unpacked distribution for `version`, fetched with Maven and unpacked when missing."""
    target = install_dir(version)
    if (target / "bin" / "elasticsearch").is_file():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise NodeError(
            "Maven (mvn) is not installed; it fetches the Elasticsearch distribution",
            hint="apt-get install maven",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".elasticsearch-{version}-", dir=target.parent) as tmp:
        progress(f"downloading Elasticsearch {version} (Maven Central)")
        proc = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy",
                f"-Dartifact={MAVEN_ARTIFACT.format(version=version)}",
                f"-DoutputDirectory={tmp}",
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        zips = list(Path(tmp).glob("*.zip"))
        if proc.returncode != 0 or not zips:
            raise NodeError(
                f"could not download Elasticsearch {version}: {_maven_error(proc.stdout)}",
                hint="check the version (`--version`, IISWATCH_ES_VERSION) and network access "
                "to Maven Central",
            )
        progress(f"unpacking Elasticsearch {version}")
        unpacked = Path(tmp) / "unpacked"
        _unzip(zips[0], unpacked)
        top = unpacked / f"elasticsearch-{version}"
        if not (top / "bin" / "elasticsearch").is_file():
            raise NodeError(f"the Elasticsearch {version} zip has an unexpected layout")
        with contextlib.suppress(FileExistsError, OSError):
            top.rename(target)  # atomic; a concurrent unpack that won is just as good
    if not (target / "bin" / "elasticsearch").is_file():
        raise NodeError(f"could not unpack Elasticsearch {version} into {target}")
    return target


def _maven_error(output: str) -> str:
    """Maven's first error line, without colour codes and the goal boilerplate."""
    for raw in output.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", raw).strip()
        if line.startswith("[ERROR]") and line[7:].strip():
            msg = line[7:].strip()
            return msg.split("on project standalone-pom: ", 1)[-1]
    return output.strip().splitlines()[-1] if output.strip() else "mvn failed without a message"


def _unzip(archive: Path, dest: Path) -> None:
    """Extract keeping the Unix modes (zipfile drops them), readable by everyone."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if info.is_dir():
                path.chmod(0o755)
            else:
                path.chmod((mode or 0o644) | 0o444)


# --- configuration ----------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # The node binds with SO_REUSEADDR too, so a TIME_WAIT leftover is not "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _transport_port(http_port: int) -> int:
    """9300 for 9200: the first free port from http_port + 100 on."""
    start = http_port + 100 if http_port + 100 <= 65535 else 1024
    for port in range(start, min(start + 100, 65536)):
        if port != http_port and _port_free(port):
            return port
    raise NodeError(f"no free transport port in {start}..{start + 99}")


def _elasticsearch_yml(lay: Layout, http_port: int, transport_port: int) -> str:
    q = json.dumps  # a JSON string is a valid YAML scalar, whatever the path holds
    return f"""\
# Written by `iiswatch es up` on every start; edits here are overwritten.
cluster.name: {CLUSTER_NAME}
node.name: {CLUSTER_NAME}-local
discovery.type: single-node
http.port: {http_port}
transport.port: {transport_port}
path.data: {q(str(lay.data))}
path.logs: {q(str(lay.logs))}
{LOOPBACK_SECURITY_YML}"""


# Shared by the single node and the local cluster (iiswatch/elastic/local_cluster.py).
LOOPBACK_SECURITY_YML = """\
network.host: 127.0.0.1
xpack.security.enabled: true
# TLS is off on purpose: the node listens on 127.0.0.1 only, so nothing crosses a network.
# Passwords are still required (basic auth); do not change network.host without enabling TLS.
# (Bound to loopback, Elasticsearch stays in development mode: its bootstrap checks, the one
# that demands transport TLS between the nodes of a cluster included, only warn.)
xpack.security.http.ssl.enabled: false
xpack.security.transport.ssl.enabled: false
action.destructive_requires_name: true
"""


def _configured_http_port(lay: Layout) -> int | None:
    try:
        m = re.search(r"^http\.port: (\d+)$", (lay.config / "elasticsearch.yml").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class _RunAs:
    """Who the node runs as: None for ourselves, else the `iiswatch-es` system user."""

    uid: int | None = None
    gid: int | None = None

    def popen_kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path, recursive: bool = False) -> None:
        if self.uid is None or self.gid is None:
            return
        os.chown(path, self.uid, self.gid)
        if recursive:
            for dirpath, dirnames, filenames in os.walk(path):
                for name in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, name), self.uid, self.gid)


def _run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs()
    try:
        entry = pwd.getpwnam(NODE_USER)
    except KeyError:
        proc = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NODE_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise NodeError(
                f"could not create the system user {NODE_USER}: {proc.stderr.strip()}",
                hint="Elasticsearch refuses to run as root; create the user or run as non-root",
            ) from None
        entry = pwd.getpwnam(NODE_USER)
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _check_reachable(run_as: _RunAs, checks: list[tuple[Path, str]]) -> None:
    """As root, make sure `iiswatch-es` can get at the install and the state dir: a home
    directory such as /root is usually closed to other users. `checks` are `test` operators."""
    if run_as.uid is None:
        return
    for path, op in checks:
        ok = subprocess.run(["test", op, str(path)], check=False, **run_as.popen_kwargs())
        if ok.returncode != 0:
            blocker = next(
                (p for p in [*reversed(path.parents), path] if not p.stat().st_mode & stat.S_IXOTH),
                path,
            )
            raise NodeError(
                f"the node user {NODE_USER} cannot reach {path} ({blocker} is closed to others)",
                hint="as root, keep iiswatch's files outside /root: export "
                "IISWATCH_HOME=/var/lib/iiswatch IISWATCH_CACHE=/var/cache/iiswatch",
            )


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by the owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _node_env(
    install: Path, java_home: Path, lay: Layout, heap: str, run_as: _RunAs
) -> dict[str, str]:
    # The launcher warns about (and ignores) these; keep the node's log free of that noise.
    ignored = ("JAVA_HOME", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JAVA_OPTS")
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    env.update(
        ES_HOME=str(install),
        ES_JAVA_HOME=str(java_home),
        ES_PATH_CONF=str(lay.config),
        ES_JAVA_OPTS=f"-Xms{heap} -Xmx{heap}",
    )
    if run_as.uid is not None:
        env.update(HOME=str(lay.root), USER=NODE_USER, LOGNAME=NODE_USER)
    return env


def _prepare(
    lay: Layout,
    install: Path,
    env: dict[str, str],
    run_as: _RunAs,
    http_port: int,
    progress: Progress,
) -> None:
    prepare_state_dir(lay, install, run_as)
    for d in (lay.config, lay.data, lay.logs):
        d.mkdir(exist_ok=True)
        d.chmod(0o750)
        run_as.chown(d)
    yml = lay.config / "elasticsearch.yml"
    yml.write_text(_elasticsearch_yml(lay, http_port, _transport_port(http_port)))
    run_as.chown(yml)
    _check_reachable(run_as, [(install / "bin" / "elasticsearch", "-x"), (lay.data, "-w")])
    ensure_keystore(lay, install, env, run_as, progress, data_dirs=[lay.data])


def prepare_state_dir(lay: Layout, install: Path, run_as: _RunAs) -> None:
    """The state dir and its config dir (a copy of the distribution's), owned so that the
    node user can read them and only root (or we) can read the password."""
    lay.root.mkdir(parents=True, exist_ok=True)
    if run_as.uid is not None:
        # root owns the state dir (the password stays root's); the node user gets in by group.
        os.chown(lay.root, 0, run_as.gid or 0)
        lay.root.chmod(0o750)
    else:
        lay.root.chmod(0o700)
    if not (lay.config / "jvm.options").is_file():
        shutil.rmtree(lay.config, ignore_errors=True)
        shutil.copytree(install / "config", lay.config)
        run_as.chown(lay.config, recursive=True)


def ensure_keystore(
    lay: Layout,
    install: Path,
    env: dict[str, str],
    run_as: _RunAs,
    progress: Progress,
    data_dirs: list[Path],
) -> None:
    """The elastic password (generated once) and the keystore that holds it as the bootstrap
    password. Every node started from `lay.config` shares both: the `elastic` user then
    authenticates the same on each of them."""
    keystore = lay.config / "elasticsearch.keystore"
    if not lay.password_file.exists():
        if keystore.exists() or any(any(d.iterdir()) for d in data_dirs if d.is_dir()):
            raise NodeError(
                f"{lay.password_file} is missing but the node was set up before",
                hint="`iiswatch es down --purge` starts over (deletes the node's data)",
            )
        _write_private(lay.password_file, secrets.token_urlsafe(24) + "\n")
    if not keystore.exists():
        progress("creating the keystore (bootstrap password)")
        password = lay.password_file.read_text().strip()
        tool = str(install / "bin" / "elasticsearch-keystore")
        for args, stdin in (
            (["create", "-s"], ""),
            (["add", "-x", "bootstrap.password"], password),
        ):
            proc = subprocess.run(
                [tool, *args],
                input=stdin,
                env=env,
                cwd=lay.root,
                capture_output=True,
                text=True,
                check=False,
                **run_as.popen_kwargs(),
            )
            if proc.returncode != 0:
                keystore.unlink(missing_ok=True)
                last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise NodeError(f"elasticsearch-keystore {args[0]} failed: {last[0]}")


# --- start and wait ---------------------------------------------------------------------------


def _answers(info: NodeInfo) -> bool:
    try:
        with info.client(request_timeout=3) as es:
            es.cluster.health()
    except (ApiError, TransportError, OSError):
        return False
    return True


def _wait_ready(
    lay: Layout,
    info: NodeInfo,
    deadline: float,
    progress: Progress,
    proc: subprocess.Popen[bytes] | None,
) -> None:
    """Block until the cluster is yellow or better; NodeError when it dies or time runs out."""
    start = time.monotonic()
    with info.client(request_timeout=10) as es:
        while True:
            died = proc.poll() is not None if proc else not _alive(info.pid)
            if died:
                lay.pid_file.unlink(missing_ok=True)
                raise NodeError(
                    "Elasticsearch exited during startup:\n" + log_excerpt(lay),
                    hint=f"full log: {log_file(lay)}",
                )
            try:
                health = es.cluster.health(wait_for_status="yellow", timeout="2s")
                if health["status"] in ("yellow", "green"):
                    return
            except ApiError as e:
                if e.status_code == 401:
                    raise NodeError(
                        "the node answers but rejects the elastic password in "
                        f"{info.password_file}",
                        hint="`iiswatch es down --purge` starts over (deletes the node's data)",
                    ) from None
            except (TransportError, OSError):
                pass
            if time.monotonic() > deadline:
                raise NodeError(
                    f"Elasticsearch did not answer on {info.url} within "
                    f"{time.monotonic() - start:.0f}s (pid {info.pid} still runs)",
                    hint="`iiswatch es logs` shows why; `iiswatch es down` stops it",
                )
            progress(f"waiting for Elasticsearch on {info.url} ({time.monotonic() - start:.0f}s)")
            time.sleep(0.5)


def up(
    version: str | None = None,
    port: int | None = None,
    heap: str = DEFAULT_HEAP,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress = _quiet,
) -> UpResult:
    """Start the local node (or find it running) and wait until it answers.

    `version` and `port` default to $IISWATCH_ES_VERSION / $IISWATCH_ES_PORT, then 9.5.4 / 9200.
    """
    t0 = time.monotonic()
    version = resolve_version(version)
    port = resolve_port(port)
    check_heap(heap)
    lay = layout()
    with _locked(lay):
        if (pid := running_pid(lay)) is not None:
            info = read_node_info(lay) or _info_from_running(lay, pid)
            if not _answers(info):
                progress("the node is running but not answering yet; waiting")
                _wait_ready(lay, info, t0 + timeout, progress, None)
            if not lay.connection_file.exists():  # an interrupted `es up`: record it now
                _write_private(lay.connection_file, json.dumps(asdict(info), indent=2) + "\n")
            note = None
            if info.url != f"http://127.0.0.1:{port}":
                note = f"already running on {info.url}; `iiswatch es down` first to change port"
            return UpResult(info, True, time.monotonic() - t0, note)

        if _cluster_running(lay):
            raise NodeError(
                f"a local cluster runs in {lay.root}",
                hint="`iiswatch es cluster down` first, or use another IISWATCH_HOME",
            )
        if not _port_free(port):
            raise NodeError(
                f"port {port} on 127.0.0.1 is already in use by another program",
                hint="stop it, or pick another port with --port / IISWATCH_ES_PORT",
            )
        java = find_java()
        run_as = _run_as()
        # Before a 130 MB download: can the node user get into the cache and state dirs?
        for d in (paths.cache_dir(), lay.root):
            d.mkdir(parents=True, exist_ok=True)
        _check_reachable(run_as, [(paths.cache_dir(), "-x"), (lay.root.parent, "-x")])
        install = ensure_installed(version, progress)
        env = _node_env(install, java.home, lay, heap, run_as)
        progress("configuring the node")
        _prepare(lay, install, env, run_as, port, progress)

        progress(f"starting Elasticsearch {version} (Java {java.version})")
        with open(lay.console_log, "ab") as console:
            run_as.chown(lay.console_log)
            proc = subprocess.Popen(
                [str(install / "bin" / "elasticsearch"), "--quiet"],
                env=env,
                cwd=lay.root,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                **run_as.popen_kwargs(),
            )
        lay.pid_file.write_text(f"{proc.pid}\n")
        info = NodeInfo(
            url=f"http://127.0.0.1:{port}",
            username=USERNAME,
            password_file=str(lay.password_file),
            version=version,
            pid=proc.pid,
        )
        _wait_ready(lay, info, time.monotonic() + timeout, progress, proc)
        _write_private(lay.connection_file, json.dumps(asdict(info), indent=2) + "\n")
        return UpResult(info, False, time.monotonic() - t0)


def _cluster_running(lay: Layout) -> bool:
    """A node of a local cluster (iiswatch/elastic/local_cluster.py) runs from this state dir:
    its config dir is shared, so a single node must not rewrite it."""
    nodes = lay.root / "nodes"
    return nodes.is_dir() and any(running_pid(Layout(d)) for d in nodes.iterdir() if d.is_dir())


def _info_from_running(lay: Layout, pid: int) -> NodeInfo:
    """For a node whose `es up` was interrupted before connection.json was written: the port
    from the elasticsearch.yml we wrote, the version from the install path it runs from."""
    port = _configured_http_port(lay) or DEFAULT_PORT
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        cmdline = ""
    m = re.search(r"elasticsearch-(\d+\.\d+\.\d+)/", cmdline)
    version = m.group(1) if m else resolve_version()
    return NodeInfo(f"http://127.0.0.1:{port}", USERNAME, str(lay.password_file), version, pid)


def read_node_info(lay: Layout | None = None) -> NodeInfo | None:
    """connection.json, or None when the node was never brought up (or was purged)."""
    lay = lay or layout()
    try:
        data = json.loads(lay.connection_file.read_text())
        return NodeInfo(**{k: data[k] for k in NodeInfo.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --- status, down, logs -----------------------------------------------------------------------


def status() -> NodeStatus:
    lay = layout()
    pid = running_pid(lay)
    info = read_node_info(lay)
    if pid is not None and info is None:
        info = _info_from_running(lay, pid)
    base: dict[str, Any] = {
        "pid": pid,
        "url": info.url if info else None,
        "version": info.version if info else None,
        "health": None,
        "heap_used_bytes": None,
        "heap_max_bytes": None,
        "docs": None,
        "state_dir": str(lay.root),
    }
    if pid is None or info is None:
        return NodeStatus(running=False, answering=False, **base)
    try:
        with info.client(request_timeout=5) as es:
            health = es.cluster.health()
            stats = es.nodes.stats(node_id="_local", metric="jvm")
            docs = es.count(index="*", allow_no_indices=True, expand_wildcards="open")
    except (ApiError, TransportError, OSError) as e:
        return NodeStatus(running=True, answering=False, error=_short_error(e), **base)
    jvm = next(iter(stats["nodes"].values()))["jvm"]["mem"]
    base.update(
        health=health["status"],
        heap_used_bytes=jvm["heap_used_in_bytes"],
        heap_max_bytes=jvm["heap_max_in_bytes"],
        docs=docs["count"],
    )
    return NodeStatus(running=True, answering=True, **base)


def _short_error(e: Exception) -> str:
    if isinstance(e, ApiError):
        return f"HTTP {e.status_code}: {e.message}"
    if isinstance(e, ESConnectionError | ESConnectionTimeout):
        return "connection refused or timed out (starting, or hung: see `iiswatch es logs`)"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def down(timeout: float = 60.0, progress: Progress = _quiet) -> bool:
    """Stop the node: SIGTERM, then SIGKILL after `timeout` seconds. False if it was not running."""
    lay = layout()
    if not lay.pid_file.exists():
        return False
    with _locked(lay):
        pid = running_pid(lay)
        if pid is None:
            return False
        progress(f"stopping Elasticsearch (pid {pid})")
        stop_group(pid, timeout, progress)
        lay.pid_file.unlink(missing_ok=True)
        lay.connection_file.unlink(missing_ok=True)
        return True


def stop_group(
    pid: int, timeout: float, progress: Progress = _quiet, first: int = signal.SIGTERM
) -> None:
    """Stop a node we started: `first` (SIGTERM, or SIGKILL for a crash) to its process group
    (the launcher and the server JVM share the session we gave them, and nothing else is in
    it), SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, first)
    deadline = time.monotonic() + timeout
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _group_alive(pid):
        progress("Elasticsearch did not stop in time; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _group_alive(pid):
            time.sleep(0.2)


def purge() -> Path:
    """Delete the node's state (config, data, logs, password). Stops the node first."""
    down()
    lay = layout()
    shutil.rmtree(lay.root, ignore_errors=True)
    return lay.root


def log_file(lay: Layout | None = None) -> Path:
    """The node's main log, or the console log when the node never got as far as logging."""
    lay = lay or layout()
    return lay.main_log if lay.main_log.exists() else lay.console_log


def tail(path: Path, n: int) -> list[str]:
    """The last `n` lines of `path`, reading backwards from the end (logs grow large)."""
    if n <= 0:
        return []
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        pos, buf = fh.tell(), b""
        while pos > 0 and buf.count(b"\n") <= n:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
    return [line.decode(errors="replace") for line in buf.splitlines()[-n:]]


def follow(path: Path, poll: float = 0.5) -> Iterator[str]:
    """Lines appended to `path` from now on; reopens it when the log rotates."""
    fh = open(path, "rb")  # noqa: SIM115 -- reopened on rotation below
    try:
        fh.seek(0, os.SEEK_END)
        ino = os.fstat(fh.fileno()).st_ino
        while True:
            line = fh.readline()
            if line.endswith(b"\n"):
                yield line.decode(errors="replace").rstrip("\n")
                continue
            if line:
                fh.seek(-len(line), os.SEEK_CUR)  # half a line: wait for the rest
            time.sleep(poll)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_ino != ino or st.st_size < fh.tell():
                fh.close()
                fh = open(path, "rb")  # noqa: SIM115
                ino = os.fstat(fh.fileno()).st_ino
    finally:
        fh.close()


def log_excerpt(lay: Layout, n: int = 20) -> str:
    """The last lines of the console output and of the main log, for startup errors."""
    parts = []
    for f in (lay.console_log, lay.main_log):
        with contextlib.suppress(OSError):
            if lines := tail(f, n):
                parts.append(f"--- {f} ---\n" + "\n".join(lines))
    return "\n".join(parts) or "(the node wrote no log)"
