"""Which addresses may be blocked. Never one in the allow-list (own NATs, monitors, verified
crawlers' ranges), and never a private, loopback, link-local or otherwise non-global address
unless forced: blocking the corporate NAT or the load balancer's health check takes the site
down for everyone behind it.

The policy file (`--policy FILE`, `$IISWATCH_RESPOND_POLICY`, or
`~/.config/iiswatch/respond.toml`) is optional:

    never_block = ["198.51.100.7", "192.0.2.0/24"]   # addresses or networks

    [auto]                      # off unless rules are named here; every action is recorded
    rules = ["webshell_exec"]   # alerts of these rules block their source for `block_for`
    block_for = "24h"
    hosts = ["web01"]           # where (alerts do not say which host)
    site = "Default Web Site"   # optional
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from iiswatch.errors import ConfigError, UsageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AutoPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[str, ...] = ()
    block_for: str = "24h"
    hosts: tuple[str, ...] = ()
    site: str | None = None


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    never_block: tuple[str, ...] = Field(default=())
    auto: AutoPolicy = AutoPolicy()

    @field_validator("never_block")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as e:
                raise ValueError(f"{entry!r} is not an address or network ({e})") from None
        return v

    def networks(self) -> list[Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.never_block]


# Own networks, not the internet's: RFC 1918, carrier-grade NAT, loopback, link-local,
# "this network", multicast, unique-local and their IPv6 kin. (Documentation ranges such as
# 203.0.113.0/24 are not here: they stand for public addresses in examples and the demo.)
PRIVATE_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)  # fmt: skip


def default_policy_path() -> Path:
    if env := os.environ.get("IISWATCH_RESPOND_POLICY"):
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "iiswatch" / "respond.toml"


def load_policy(path: Path | None = None) -> Policy:
    """The policy file, or the built-in policy (nothing allow-listed, no automation) when
    no file was named and the default one does not exist."""
    explicit = path is not None
    path = path or default_policy_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"no respond policy at {path}", "check --policy") from None
        return Policy()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", "check its permissions") from e
    try:
        return Policy.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}", "fix the TOML syntax") from e
    except ValidationError as e:
        problems = [f"{path}: {'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()]
        raise ConfigError(
            "problem(s) in the respond policy:\n  " + "\n  ".join(problems),
            "see README 'Response on the IIS host'",
        ) from e


def parse_ip(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise UsageError(
            f"{text!r} is not an IP address", "give one address, e.g. 203.0.113.9 or 2001:db8::1"
        ) from None


def refusal(ip: IPAddress, policy: Policy, *, force: bool = False) -> str | None:
    """Why `ip` must not be blocked, or None when it may be."""
    for net in policy.networks():
        if ip.version == net.version and ip in net:
            return f"{ip} is in the allow-list ({net}): never blocked"
    if force:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    check = mapped or ip
    for net in PRIVATE_NETWORKS:
        if check.version == net.version and check in net:
            return (
                f"{ip} is in a private or local range ({net}): blocking it may cut off your own "
                "users or the load balancer; add --force if you are sure"
            )
    return None
