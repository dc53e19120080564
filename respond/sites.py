"""Where a site's files are: its applications and virtual directories, with their physical
paths, as `applicationHost.config` (`system.applicationHost/sites`) declares them."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

from iiswatch.errors import IiswatchError
from iiswatch.ingest.agent.discover import expand, windows_environment


class SiteError(IiswatchError):
    """The site or the URL cannot be mapped to a file safely."""


@dataclass(frozen=True)
class VirtualDirectory:
    url_path: str  # "/" or "/app/vdir", no trailing slash except the root
    physical_path: Path


@dataclass(frozen=True)
class Site:
    name: str
    directories: tuple[VirtualDirectory, ...]

    @property
    def root(self) -> Path:
        for d in self.directories:
            if d.url_path == "/":
                return d.physical_path
        raise SiteError(f"site {self.name!r} has no root virtual directory", None)


def _join(app: str, vdir: str) -> str:
    joined = posixpath.join(app.rstrip("/") or "/", vdir.lstrip("/"))
    return joined.rstrip("/") or "/"


def read_sites(config: Path, env: Mapping[str, str] | None = None) -> dict[str, Site]:
    """Every site of an applicationHost.config, by name."""
    env = env if env is not None else windows_environment()
    try:
        root = etree.parse(str(config), etree.XMLParser(resolve_entities=False, no_network=True))
    except (OSError, etree.XMLSyntaxError) as e:
        raise SiteError(
            f"cannot read the sites of {config}: {e}",
            "point [actions] application_host at IIS's applicationHost.config",
        ) from e
    sites: dict[str, Site] = {}
    for site in root.iterfind("system.applicationHost/sites/site"):
        name = site.get("name")
        if not name:
            continue
        dirs = []
        for app in site.iterfind("application"):
            for vd in app.iterfind("virtualDirectory"):
                physical = vd.get("physicalPath")
                if not physical:
                    continue
                url = _join(app.get("path", "/"), vd.get("path", "/"))
                dirs.append(VirtualDirectory(url, Path(expand(physical, env))))
        sites[name] = Site(name, tuple(dirs))
    return sites


def pick_site(sites: Mapping[str, Site], name: str | None) -> Site:
    if name is None:
        if len(sites) == 1:
            return next(iter(sites.values()))
        raise SiteError(
            f"this server has {len(sites)} sites ({', '.join(sorted(sites)) or 'none'})",
            "name one with --site",
        )
    try:
        return sites[name]
    except KeyError:
        raise SiteError(
            f"no site named {name!r} here (sites: {', '.join(sorted(sites)) or 'none'})",
            "check --site against applicationHost.config",
        ) from None


def url_parts(url_path: str) -> list[str]:
    """The segments of a URL path, percent-decoded once; refuses anything that could step
    out of a directory (`..`, `.`, backslashes, drive letters, NUL)."""
    if not url_path.startswith("/"):
        raise SiteError(f"{url_path!r} is not a URL path", "give it as logged: /uploads/x.aspx")
    path = unquote(url_path.split("?", 1)[0])
    parts = path.strip("/").split("/")
    for p in parts:
        if p in ("", ".", "..") or "\\" in p or "\0" in p or ":" in p:
            raise SiteError(
                f"{url_path!r} has a segment {p!r} that could leave the web root",
                "give the file's plain URL path, e.g. /uploads/x.aspx",
            )
    return parts


def physical_file(site: Site, url_path: str) -> tuple[VirtualDirectory, Path]:
    """The virtual directory serving `url_path` (the longest matching one) and the file's
    physical path, which is checked to stay inside that directory."""
    parts = url_parts(url_path)
    url = "/" + "/".join(parts)
    best: VirtualDirectory | None = None
    for d in site.directories:
        prefix = d.url_path.rstrip("/")
        if (url == prefix or url.startswith(prefix + "/")) and (
            best is None or len(d.url_path) > len(best.url_path)
        ):
            best = d
    if best is None:
        raise SiteError(f"no virtual directory of site {site.name!r} serves {url_path}", None)
    rest = url[len(best.url_path.rstrip("/")) :].strip("/").split("/")
    return best, best.physical_path.joinpath(*rest)
