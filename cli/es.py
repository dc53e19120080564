"""`iiswatch es up | status | down | logs`: the local Elasticsearch node (iiswatch.elastic.node)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from iiswatch.cli.output import err, out, print_json
from iiswatch.elastic import node
from iiswatch.environment import env
from iiswatch.errors import EXIT_BACKEND, IiswatchError, UsageError

if TYPE_CHECKING:
    from iiswatch.elastic.local_cluster import ClusterStatus

app = typer.Typer(
    help="Run a local single-node Elasticsearch for iiswatch.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """One line for what went wrong, one for what to do, and the error's exit code."""
    try:
        yield
    except IiswatchError as e:
        if env("IISWATCH_DEBUG"):
            raise  # `iiswatch --debug`: the main CLI prints the traceback and the same two lines
        # Text, not markup: messages can quote log lines, which may contain [brackets].
        err.print(Text.assemble(("error: ", "bold red"), e.message), soft_wrap=True)
        if e.hint:
            err.print(Text.assemble(("hint: ", "bold"), e.hint), soft_wrap=True)
        raise typer.Exit(e.exit_code) from None


@app.command()
def up(
    version: Annotated[
        str | None,
        typer.Option(help="Elasticsearch version.", envvar="IISWATCH_ES_VERSION",
                     show_default=node.DEFAULT_VERSION),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="HTTP port on 127.0.0.1.", envvar="IISWATCH_ES_PORT",
                     show_default=str(node.DEFAULT_PORT)),
    ] = None,
    heap: Annotated[str, typer.Option(help="JVM heap (-Xms/-Xmx), e.g. 1g.")] = node.DEFAULT_HEAP,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the node to answer.")
    ] = node.DEFAULT_TIMEOUT,
) -> None:  # fmt: skip
    """Fetch, configure and start the node; a no-op when it already runs."""
    with _errors(), err.status("starting Elasticsearch") as spinner:
        result = node.up(version, port, heap, timeout, progress=spinner.update)
    info = result.node
    if result.already_running:
        out.print(f"Elasticsearch {info.version} already running at {info.url} (pid {info.pid})")
    else:
        out.print(
            f"Elasticsearch {info.version} is up at {info.url} (pid {info.pid}, "
            f"{result.seconds:.0f}s)"
        )
    out.print(f"user {info.username}, password in {info.password_file}", highlight=False)
    if result.note:
        err.print(f"note: {result.note}")


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MB"


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Is the node running, and how is it? A local cluster (`es cluster up`) under the same
    IISWATCH_HOME is shown instead when it runs. Exit code 3 when neither runs or answers."""
    from iiswatch.elastic.local_cluster import LocalCluster

    with _errors():
        st = node.status()
        recorded = LocalCluster.recorded()
        cluster = recorded.status() if recorded is not None else None
    code = 0 if st.answering or (cluster is not None and cluster.answering) else EXIT_BACKEND
    if as_json:
        print_json({**st.to_dict(), "cluster": cluster.to_dict() if cluster else None})
        raise typer.Exit(code)
    if not st.running and cluster is not None and cluster.running:
        _print_cluster(cluster)
        raise typer.Exit(code)
    if not st.running:
        out.print("Elasticsearch is [bold]not running[/] (start it with `iiswatch es up`)")
        if cluster is not None:
            out.print("a local cluster was set up here: `iiswatch es cluster up` starts it")
        raise typer.Exit(code)
    colour = {"green": "green", "yellow": "yellow", "red": "red"}.get(st.health or "", "red")
    table = Table(show_header=False, box=None)
    table.add_row("state", "running" if st.answering else f"[red]not answering[/] ({st.error})")
    table.add_row("pid", str(st.pid))
    table.add_row("url", st.url or "-")
    table.add_row("version", st.version or "-")
    table.add_row("health", f"[{colour}]{st.health or '-'}[/]")
    table.add_row("heap", f"{_mb(st.heap_used_bytes)} of {_mb(st.heap_max_bytes)}")
    table.add_row("docs", "-" if st.docs is None else f"{st.docs:,}")
    table.add_row("state dir", st.state_dir)
    out.print(table)
    raise typer.Exit(code)


def _print_cluster(cluster: ClusterStatus) -> None:
    out.print(
        f"a local cluster runs here: {cluster.running} of {len(cluster.nodes)} nodes "
        "(the elected master: `iiswatch es cluster status`; a node's log: "
        "`iiswatch es logs --node N`)",
        highlight=False,
    )
    colour = {"green": "green", "yellow": "yellow", "red": "red"}.get(cluster.health or "", "red")
    table = Table(show_header=False, box=None)
    table.add_row(
        "state", "answering" if cluster.answering else f"[red]not answering[/] ({cluster.error})"
    )
    table.add_row("health", f"[{colour}]{cluster.health or '-'}[/]")
    table.add_row("state dir", cluster.state_dir)
    out.print(table)
    nodes = Table("node", "pid", "url")
    for n in cluster.nodes:
        nodes.add_row(n.name, str(n.pid or "[red]not running[/]"), n.url)
    out.print(nodes)


@app.command()
def down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the node's data, config and password.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --purge.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds before SIGKILL.")] = 60.0,
) -> None:
    """Stop the node (SIGTERM, SIGKILL after --timeout seconds)."""
    with _errors():
        if purge:
            state = node.layout().root
            if not yes:
                typer.confirm(f"Delete {state} (all indexed data)?", abort=True)
        with err.status("stopping Elasticsearch") as spinner:
            stopped = node.down(timeout, progress=spinner.update)
        out.print("Elasticsearch stopped" if stopped else "Elasticsearch was not running")
        if purge:
            out.print(f"deleted {node.purge()}", highlight=False)


@app.command()
def logs(
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    node_name: Annotated[
        str | None,
        typer.Option("--node", help="A node of the local cluster (`es cluster up`): node-2 or 2."),
    ] = None,
) -> None:  # fmt: skip
    """Print the end of the node's log (or of one local cluster node's, with --node)."""
    from iiswatch.elastic.local_cluster import LocalCluster

    with _errors():
        cluster = LocalCluster.recorded()
        if node_name is not None:
            if cluster is None:
                raise UsageError(
                    f"no local cluster in {node.layout().root}",
                    "--node is for the nodes of `iiswatch es cluster up`; without it, the "
                    "single node's log",
                )
            path = node.log_file(cluster.node(node_name).home)
        else:
            path = node.log_file()
            if not path.exists() and cluster is not None:
                names = ", ".join(n.name for n in cluster.nodes)
                raise UsageError(
                    f"no single-node log at {path}: a local cluster lives here",
                    f"show one node's: `iiswatch es logs --node N` (its nodes: {names})",
                )
    if not path.exists():
        started_by = "es cluster up" if node_name is not None else "es up"
        err.print(f"no log yet at {path} (has `iiswatch {started_by}` run?)", highlight=False)
        raise typer.Exit(EXIT_BACKEND)
    # Plain print, not rich: log lines are data and may contain [markup]-like text.
    for line in node.tail(path, lines):
        print(line)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            for line in node.follow(path):
                print(line, flush=True)


# --- `iiswatch es cluster`: several local nodes (iiswatch.elastic.local_cluster) ----------------

cluster_app = typer.Typer(
    help="Run a local multi-node Elasticsearch (replicas, node loss) instead of one node.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("up")
def cluster_up(
    nodes: Annotated[int, typer.Option("--nodes", min=1, help="How many nodes.")] = 3,
    port: Annotated[
        int, typer.Option(help="HTTP port of the first node (the next ones follow).")
    ] = 9271,
    transport_port: Annotated[
        int | None, typer.Option(help="Transport port of the first node (default: HTTP + 100).")
    ] = None,
    heap: Annotated[str, typer.Option(help="JVM heap of each node.")] = "512m",
    version: Annotated[
        str | None,
        typer.Option(help="Elasticsearch version.", envvar="IISWATCH_ES_VERSION",
                     show_default=node.DEFAULT_VERSION),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait until every node has joined.")
    ] = 300.0,
) -> None:  # fmt: skip
    """Start N nodes on 127.0.0.1 with their own data dirs, one shared config and password;
    `iiswatch setup --replicas 1` then spreads every index over them."""
    from iiswatch.elastic.local_cluster import LocalCluster

    with _errors(), err.status("starting the local cluster") as spinner:
        cluster = LocalCluster(nodes, port, transport_port, heap, version)
        info = cluster.up(timeout, progress=spinner.update)
    out.print(f"Elasticsearch {info.version}: {nodes} nodes at {info.url}", highlight=False)
    out.print(f"user {info.username}, password in {info.password_file}", highlight=False)


@cluster_app.command("status")
def cluster_status() -> None:
    """Each node's pid and URL, and which one is the elected master. Exit 3 when none runs."""
    from iiswatch.elastic.local_cluster import LocalCluster

    cluster = LocalCluster.recorded()
    if cluster is None:
        out.print("no local cluster here (start one with `iiswatch es cluster up`)")
        raise typer.Exit(EXIT_BACKEND)
    master = None
    with contextlib.suppress(Exception), cluster.client(request_timeout=5) as es:
        master = cluster.master(es).name
    table = Table("node", "pid", "url", "master")
    running = 0
    for n in cluster.nodes:
        pid = cluster.pid(n)
        running += pid is not None
        table.add_row(n.name, str(pid or "-"), n.url, "*" if n.name == master else "")
    out.print(table)
    raise typer.Exit(0 if running else EXIT_BACKEND)


@cluster_app.command("down")
def cluster_down(
    timeout: Annotated[float, typer.Option(help="Seconds before SIGKILL.")] = 60.0,
) -> None:
    """Stop every node of the local cluster (only the processes it started)."""
    from iiswatch.elastic.local_cluster import LocalCluster

    cluster = LocalCluster.recorded()
    if cluster is None:
        out.print("no local cluster here")
        return
    with _errors(), err.status("stopping the local cluster"):
        cluster.down(timeout)
    out.print("local cluster stopped")
