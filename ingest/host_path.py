"""Which host wrote a log file, for `iiswatch ingest` and `parse`: the `--host-name` flag, or
the path when it says so, else a usage error.

The host is part of every document id, so guessing it wrong (this machine's name, a folder
that merely holds logs) files the same events a second time under another host. Hence one
explicit rule, the archive's own layout (`ARCHIVE/hosts/<host>/<site>/...`): the folder right
below the innermost folder named `hosts` names the host, as in
`/cases/0412/hosts/web01/W3SVC1/u_ex240514.log`. No other folder is read as a host name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePath

from iiswatch.errors import UsageError
from iiswatch.ingest.archive.layout import HOSTS, valid_name

LAYOUT_HINT = f".../{HOSTS}/<host>/..."


def host_from_path(path: PurePath) -> str | None:
    """The host named by the innermost `hosts/<host>/` folder above the file, or None.

    Only folders count (the file's own name never names a host), and the name must be one
    the archive accepts as a host folder."""
    folders = path.parent.parts
    for i in range(len(folders) - 2, -1, -1):
        if folders[i].lower() == HOSTS:
            name = folders[i + 1]
            return name if valid_name(name) else None
    return None


def hosts_for(files: Iterable[Path], given: str | None) -> dict[Path, str]:
    """The host of each file: `given` for all when set, else each file's path; a file whose
    path names no host is a usage error that teaches both ways out."""
    files = list(files)
    if given is not None:
        if not given.strip():
            raise UsageError(
                "--host-name is empty", "give the name of the server that wrote the logs"
            )
        return dict.fromkeys(files, given)
    hosts: dict[Path, str] = {}
    unnamed: list[Path] = []
    for path in files:
        host = host_from_path(Path(path).absolute())
        if host is None:
            unnamed.append(path)
        else:
            hosts[path] = host
    if unnamed:
        shown = ", ".join(str(p) for p in unnamed[:3])
        more = f" and {len(unnamed) - 3} more" if len(unnamed) > 3 else ""
        raise UsageError(
            f"no host name for {shown}{more}: the host is part of every document id, "
            "so it is never guessed",
            "give --host-name NAME (the server that wrote these logs), or keep the logs "
            f"under a folder {LAYOUT_HINT} (the archive's layout), which names it",
        )
    return hosts
