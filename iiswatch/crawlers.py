"""Verified crawlers: the networks search engines and SEO crawlers publish for their bots.

A user agent saying "Googlebot" proves nothing; the source address being in Google's published
ranges does. Rules drop verified crawlers with an exception `networks: [verified_crawlers]`
on `source.ip`. The ranges ship with iiswatch (`crawler_ranges.json`) and `iiswatch crawlers
update` refreshes them from the publishers into the state directory, which then wins.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from iiswatch.errors import BackendUnavailable, ConfigError
from iiswatch.paths import state_dir

SHIPPED = Path(__file__).with_name("crawler_ranges.json")
STATE_FILE = "crawler_ranges.json"
NETWORK_LISTS = ("verified_crawlers",)  # the names an exception's `networks:` may use


def ranges_file() -> Path:
    """The refreshed list in the state directory if there is one, else the shipped one."""
    updated = state_dir() / STATE_FILE
    return updated if updated.is_file() else SHIPPED


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path}: cannot read the crawler ranges ({e})",
            hint="run `iiswatch crawlers update`, or delete the file to use the shipped list",
        ) from e
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
        raise ConfigError(f"{path}: no `sources` object", hint="run `iiswatch crawlers update`")
    return data


@cache
def _networks(path: Path) -> tuple[str, ...]:
    out: list[str] = []
    for source in _read(path)["sources"].values():
        out.extend(str(ipaddress.ip_network(p, strict=False)) for p in source.get("prefixes", []))
    return tuple(sorted(set(out)))


def verified_crawler_networks() -> tuple[str, ...]:
    return _networks(ranges_file())


def network_list(name: str) -> tuple[str, ...]:
    """The CIDRs of a named network list (an exception's `networks:` entry)."""
    if name == "verified_crawlers":
        return verified_crawler_networks()
    raise ConfigError(f"unknown network list {name!r}", hint=f"one of {', '.join(NETWORK_LISTS)}")


def prefixes_in(document: Any) -> list[str]:
    """Every IP network in a publisher's JSON. Google, Bing and Apple publish
    `{"prefixes": [{"ipv4Prefix": ...}, {"ipv6Prefix": ...}]}`; others lists of strings or
    objects: any string value that is an address or a network counts."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
        elif isinstance(node, str):
            try:
                yield str(ipaddress.ip_network(node.strip(), strict=False))
            except ValueError:
                return

    return sorted(set(walk(document)))


Fetch = Callable[[str], bytes]


def _fetch(url: str) -> bytes:
    import urllib3  # already a dependency (the agent's HTTP client)

    try:
        resp = urllib3.request("GET", url, timeout=urllib3.Timeout(total=30), retries=2)
    except urllib3.exceptions.HTTPError as e:  # no route, no DNS, TLS: say why, keep going
        raise OSError(str(getattr(e, "reason", None) or e)) from e
    if resp.status != 200:
        raise OSError(f"HTTP {resp.status}")
    return bytes(resp.data)


def update(fetch: Fetch = _fetch, *, target: Path | None = None) -> dict[str, int | str]:
    """Fetch every source's list into the state directory: name → prefix count, or the
    error for a source that could not be fetched (its previous prefixes are kept). When
    none could be fetched nothing is written (BackendUnavailable)."""
    current = _read(ranges_file())
    result: dict[str, int | str] = {}
    for name, source in current["sources"].items():
        try:
            prefixes = prefixes_in(json.loads(fetch(source["url"])))
            if not prefixes:
                raise ValueError("no networks in the answer")
        except (OSError, ValueError) as e:
            result[name] = f"kept {len(source.get('prefixes', []))} ({e})"
            continue
        source["prefixes"] = prefixes
        result[name] = len(prefixes)
    if not any(isinstance(v, int) for v in result.values()):
        raise BackendUnavailable(
            "no crawler list could be fetched: "
            + "; ".join(f"{name}: {why}" for name, why in result.items()),
            hint="check the network or proxy; the lists in use are unchanged",
        )
    from datetime import UTC, datetime

    current["updated"] = datetime.now(UTC).date().isoformat()
    path = target or state_dir() / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    _networks.cache_clear()
    return result
