"""Quarantine a file of a site: find it under the site's physical path (never outside), hash
it, hand its bytes over as evidence, then move it out of the web root into a folder IIS cannot
serve (inheritance removed, Administrators and SYSTEM only on Windows; 0700/0400 elsewhere)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from iiswatch.errors import IiswatchError
from iiswatch.respond.sites import Site, SiteError, physical_file

MAX_EVIDENCE_BYTES = 32 << 20  # web shells are small; a bigger file is not one to ship whole
# Well-known SIDs, so the command works on any Windows language: Administrators, SYSTEM.
ICACLS_GRANTS = ("*S-1-5-32-544:(OI)(CI)F", "*S-1-5-18:(OI)(CI)F")


class QuarantineError(IiswatchError):
    """The file cannot be quarantined safely; nothing was moved."""


@dataclass(frozen=True)
class Located:
    site: str
    root: Path  # the virtual directory's physical path (resolved)
    path: Path  # the file (resolved, inside root)
    sha256: str
    size: int


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def locate(site: Site, url_path: str) -> Located:
    """The file `url_path` of `site`, checked: a regular file, not a link, inside the site's
    physical path once every link on the way is resolved."""
    try:
        vdir, candidate = physical_file(site, url_path)
    except SiteError as e:
        raise QuarantineError(e.message, e.hint) from e
    root = vdir.physical_path.resolve()
    try:
        st = candidate.lstat()
    except FileNotFoundError:
        raise QuarantineError(
            f"{url_path} is not there: no file {candidate}",
            "it may have been removed already; check the site's folder",
        ) from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise QuarantineError(
            f"{candidate} is not a regular file (a link, a folder or a device)",
            "only plain files are quarantined; look at it by hand",
        )
    real = candidate.resolve(strict=True)
    if not _inside(real, root) or real == root:
        raise QuarantineError(
            f"{candidate} resolves to {real}, outside the site's physical path {root}",
            "a file outside the web root is not quarantined from here",
        )
    digest, size = file_digest(real)
    return Located(site.name, root, real, digest, size)


def file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def read_evidence(found: Located) -> bytes:
    """The file's bytes, checked against the hash taken when it was located."""
    if found.size > MAX_EVIDENCE_BYTES:
        raise QuarantineError(
            f"{found.path} is {found.size} bytes, more than {MAX_EVIDENCE_BYTES} for evidence",
            "copy it by hand; a web shell is rarely this large",
        )
    data = found.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != found.sha256:
        raise QuarantineError(f"{found.path} changed while it was being quarantined", "retry")
    return data


def icacls_args(folder: Path) -> list[str]:
    """Remove inherited permissions (IIS_IUSRS, the app pool identity) and grant only
    Administrators and SYSTEM, on the quarantine folder and what it will hold."""
    grants = [a for g in ICACLS_GRANTS for a in ("/grant:r", g)]
    return ["icacls", str(folder), "/inheritance:r", *grants]


def prepare_folder(folder: Path, sites: Mapping[str, Site]) -> Path:
    """The quarantine folder, created and locked down; never inside a site's files."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    real = folder.resolve()
    for s in sites.values():
        for d in s.directories:
            if _inside(real, d.physical_path.resolve()):
                raise QuarantineError(
                    f"the quarantine folder {real} is inside site {s.name!r} ({d.physical_path})",
                    "set [actions] quarantine_dir outside every web root",
                )
    if os.name == "nt":
        done = subprocess.run(icacls_args(real), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise QuarantineError(
                f"icacls could not lock {real}: {done.stdout.strip()} {done.stderr.strip()}",
                "run the agent as an administrator",
            )
    else:
        real.chmod(0o700)
    return real


def move_out(found: Located, folder: Path, action_id: str) -> Path:
    """Move the file into `folder` as `ACTION-NAME.quarantined` with a JSON note beside it;
    the copy is checked against the hash before the original goes."""
    dest = folder / f"{action_id}-{found.path.name}.quarantined"
    note = dest.with_name(dest.name + ".json")
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(found.path, tmp)
    if file_digest(tmp)[0] != found.sha256:
        tmp.unlink(missing_ok=True)
        raise QuarantineError(f"{found.path} changed while it was copied", "retry")
    if os.name != "nt":
        tmp.chmod(0o400)
    os.replace(tmp, dest)
    note.write_bytes(
        orjson.dumps(
            {"action": action_id, "site": found.site, "original": str(found.path),
             "sha256": found.sha256, "size": found.size},
            option=orjson.OPT_INDENT_2,
        )
    )  # fmt: skip
    found.path.unlink()
    return dest


def quarantine(
    site: Site,
    url_path: str,
    folder: Path,
    action_id: str,
    sites: Mapping[str, Site],
    send_evidence: Callable[[Located, bytes], None],
) -> tuple[Located, Path]:
    """Locate, hash, hand over the evidence (`send_evidence` must return only once it is
    stored), then move the file out. Raises before anything moved if any step fails."""
    found = locate(site, url_path)
    data = read_evidence(found)
    dest_folder = prepare_folder(folder, sites)
    send_evidence(found, data)
    return found, move_out(found, dest_folder, action_id)
