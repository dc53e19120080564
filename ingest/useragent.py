"""User-agent strings to ECS `user_agent.*`, with ua-parser (uap-core rules) behind an LRU cache.

A busy site sees a few thousand distinct user agents a day, so caching the parsed result by
string makes the parse cost vanish for almost every line. Field shapes follow Elasticsearch's
`user_agent` processor, as Elastic's IIS pipeline emits them: `name` is "Other" when unknown,
`version` joins the version parts with dots, `os.full` is name and version, and `device.name`
is "Other" when unknown.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ua_parser import parse

UA_CACHE_SIZE = 10_000

_Parsed = tuple[str, str | None, str | None, str | None, str]


def _join(*parts: str | None) -> str | None:
    out = [p for p in parts if p]
    return ".".join(out) if out else None


@lru_cache(maxsize=UA_CACHE_SIZE)
def _parse_cached(ua: str) -> _Parsed:
    result = parse(ua)
    name, version, os_name, os_version, device = "Other", None, None, None, "Other"
    agent = result.user_agent
    if agent is not None and agent.family != "Other":
        name = agent.family
        version = _join(agent.major, agent.minor, agent.patch, agent.patch_minor)
    os = result.os
    if os is not None and os.family != "Other":
        os_name = os.family
        os_version = _join(os.major, os.minor, os.patch, os.patch_minor)
    if result.device is not None and result.device.family:
        device = result.device.family
    return name, version, os_name, os_version, device


def parse_user_agent(ua: str) -> dict[str, Any]:
    """ECS `user_agent` for `ua` (already decoded: spaces, not IIS's `+`). A fresh dict each
    call, so callers may change it."""
    name, version, os_name, os_version, device = _parse_cached(ua)
    out: dict[str, Any] = {"original": ua, "name": name, "device": {"name": device}}
    if version:
        out["version"] = version
    if os_name:
        os: dict[str, str] = {"name": os_name}
        if os_version:
            os["version"] = os_version
            os["full"] = f"{os_name} {os_version}"
        else:
            os["full"] = os_name
        out["os"] = os
    return out


def cache_info() -> Any:
    """Hit/miss counters of the parse cache (for benchmarks and diagnostics)."""
    return _parse_cached.cache_info()
