"""One access-log request, as W3C field values, to an ECS event with the field names Elastic's
IIS integration emits (`source.ip`, `url.path`, `iis.access.sub_status`, ...).

Every access format ends here: the W3C parser passes its `#Fields` values straight in, and the
IIS-native and NCSA parsers rename their columns to the W3C names first. Values are raw strings
as IIS logs them: `-` means empty and `+` stands for a space inside the user agent, referrer and
cookie. Fields with no value are left out, never set to null or "-".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from datetime import date
from functools import lru_cache
from typing import Any, Final

from iiswatch.ingest.model import Event, LineError, Source
from iiswatch.ingest.normalize import detection_url
from iiswatch.ingest.useragent import parse_user_agent

ECS_VERSION: Final = "8.11.0"

# The W3C names this module understands; any other key is an IIS 8.5+ custom field and lands
# in `iis.access.custom.<name>`. "@timestamp" lets a non-W3C format pass a finished timestamp.
KNOWN_FIELDS: Final = frozenset(
    {
        "@timestamp",
        "date",
        "time",
        "s-sitename",
        "s-computername",
        "s-ip",
        "cs-method",
        "cs-uri-stem",
        "cs-uri-query",
        "s-port",
        "cs-username",
        "c-ip",
        "c-port",
        "cs-version",
        "cs(User-Agent)",
        "cs(Cookie)",
        "cs(Referer)",
        "cs-host",
        "sc-status",
        "sc-substatus",
        "sc-win32-status",
        "sc-bytes",
        "cs-bytes",
        "time-taken",
        "X-Forwarded-For",
        "cs(X-Forwarded-For)",
        "x-session",
    }
)

_TIME: Final = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?")
# A corpus artefact Elastic's pipeline accepts: an address pasted through Markdown,
# "[10.0.0.1](http://10.0.0.1)". Unwrapped only when the value is not an address as it stands.
_MARKDOWN_LINK: Final = re.compile(r"\[([^\]\s]+)\]\(https?://\1/?\)")


class AccessFieldError(LineError):
    """A value cannot stand in an event (no valid timestamp, a count that is not a number).

    Parsers turn it into a dead letter with this message as the reason.
    """


@lru_cache(maxsize=4096)
def _valid_date(value: str) -> bool:
    if len(value) != 10 or value[4] != "-" or value[7] != "-" or not value.isascii():
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=65_536)
def _w3c_timestamp(day: str, clock: str) -> str:
    # Cached: a busy log repeats the same second on many lines.
    if not _valid_date(day):
        raise AccessFieldError(f"date: not a calendar date (got {day[:40]!r})")
    match = _TIME.fullmatch(clock)
    if match is None:
        raise AccessFieldError(f"time: not HH:MM:SS (got {clock[:40]!r})")
    # W3C extended logs are always UTC, whatever the server's time zone.
    return f"{day}T{clock}Z" if match.group(1) else f"{day}T{clock}.000Z"


def _timestamp(values: dict[str, str]) -> str:
    given = values.get("@timestamp")
    if given and given != "-":
        return given
    day = values.get("date")
    clock = values.get("time")
    if not day or not clock or day == "-" or clock == "-":
        raise AccessFieldError("no date and time fields (W3C times are required)")
    return _w3c_timestamp(day, clock)


_NUMERIC: Final = (
    "s-port",
    "c-port",
    "sc-status",
    "sc-substatus",
    "sc-win32-status",
    "sc-bytes",
    "cs-bytes",
    "time-taken",
)


def _numeric_error(values: dict[str, str]) -> AccessFieldError:
    # The slow path after int() failed somewhere: name the field for the dead letter.
    for name in _NUMERIC:
        value = values.get(name)
        if value and value != "-":
            try:
                int(value)
            except ValueError:
                return AccessFieldError(f"{name}: expected a whole number (got {value[:40]!r})")
    return AccessFieldError("a numeric field is not a number")


@lru_cache(maxsize=65_536)
def ip_of(address: str) -> str | None:
    """The IP in an address as logged, without an IPv6 zone id (`fe80::1%4` -> `fe80::1`);
    None when it is not an IP. Kept as written (no re-compression), as Elastic does."""
    text = address.split("%", 1)[0]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


def _address(value: str) -> tuple[str, str | None]:
    ip = ip_of(value)
    if ip is None and value[:1] == "[":
        match = _MARKDOWN_LINK.fullmatch(value)
        if match is not None:
            value = match.group(1)
            ip = ip_of(value)
    return value, ip


def _forwarded(value: str) -> list[str]:
    # "a,+b" is how IIS writes the header "a, b".
    return [p for p in (x.strip(" +") for x in value.split(",")) if p and p != "-"]


def _forwarded_ip(entry: str) -> str | None:
    ip = ip_of(entry)
    if ip is not None:
        return ip
    if entry[:1] == "[" and "]" in entry:  # "[2001:db8::1]:443"
        return ip_of(entry[1 : entry.index("]")])
    if entry.count(":") == 1:  # "203.0.113.9:51234"
        return ip_of(entry.split(":", 1)[0])
    return None


def _split_user(name: str) -> tuple[str, str | None]:
    # Elastic's order: DOMAIN\user@realm, user@realm, DOMAIN\user.
    if "@" in name:
        user, _, realm = name.partition("@")
        if "\\" in user:
            user = user.split("\\", 1)[1]
        return user, realm or None
    if "\\" in name:
        domain, _, user = name.partition("\\")
        return user, domain or None
    return name, None


def _host_and_port(host: str) -> tuple[str, int | None]:
    head, sep, tail = host.rpartition(":")
    if sep and head and tail.isascii() and tail.isdigit() and len(tail) <= 5:
        if head.count(":") == 0:
            return head, int(tail)
        if head[0] == "[" and head[-1] == "]":
            return head[1:-1], int(tail)
    return host, None


def _custom_key(name: str) -> str:
    # A dot would make Elasticsearch nest the field; keep each custom field one key.
    return name.replace(".", "_").strip() or "_"


def build_access_event(
    values: dict[str, str],
    *,
    raw: bytes,
    offset: int,
    source: Source,
    fmt: str = "w3c",
) -> Event:
    """The ECS event for one request.

    `values` maps W3C field names (`date`, `time`, `c-ip`, `cs-uri-stem`, `cs(User-Agent)`,
    `X-Forwarded-For` or `cs(X-Forwarded-For)`, IIS 8.5+ custom fields ...) to values as logged.
    Formats whose time is not a W3C UTC `date`/`time` pair pass a finished ISO 8601 value as
    `values["@timestamp"]` instead (used as given). `raw` is the line without its terminator;
    it becomes `event.original`. Raises `AccessFieldError` when a value cannot be represented
    (missing or invalid date/time, a non-numeric status, port, byte count or time-taken).
    """
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    return build_from_text(values, text=text, offset=offset, source=source, fmt=fmt)


def build_from_text(
    values: dict[str, str],
    *,
    text: str,
    offset: int,
    source: Source,
    fmt: str = "w3c",
    custom: Collection[str] | None = None,
) -> Event:
    """`build_access_event` for a caller that already decoded the line (saves a decode).

    `custom` names the keys of `values` that are custom fields, when the caller knows them
    already (the W3C parser works them out once per `#Fields`); None works them out here.
    """
    try:
        return _build(values, text, offset, source, fmt, custom)
    except AccessFieldError:
        raise
    except ValueError:
        raise _numeric_error(values) from None


def _build(
    values: dict[str, str],
    text: str,
    offset: int,
    source: Source,
    fmt: str,
    custom: Collection[str] | None,
) -> Event:
    g = values.get
    # W3C logs write a space inside a value as '+'; NCSA logs keep real spaces (and real '+')
    plus_is_space = fmt != "ncsa"
    event: dict[str, Any] = {
        "kind": "event",
        "category": ["web"],
        "module": "iis",
        "dataset": "iis.access",
        "original": text,
    }
    doc: Event = {
        "@timestamp": _timestamp(values),
        "ecs": {"version": ECS_VERSION},
        "event": event,
        "log": {"file": {"path": source.path}, "offset": offset},
        "iiswatch": {"file_id": source.file_id, "format": fmt},
    }
    iis: dict[str, Any] = {}
    related_ip: list[str] = []

    src: dict[str, Any] = {}
    v = g("c-ip")
    if v and v != "-":
        src["address"], ip = _address(v)
        if ip:
            src["ip"] = ip
            related_ip.append(ip)
    v = g("c-port")
    if v and v != "-":
        src["port"] = int(v)
    if src:
        doc["source"] = src

    dst: dict[str, Any] = {}
    v = g("s-ip")
    if v and v != "-":
        dst["address"], ip = _address(v)
        if ip:
            dst["ip"] = ip
            if ip not in related_ip:
                related_ip.append(ip)
    v = g("s-port")
    if v and v != "-":
        dst["port"] = int(v)
    domain: str | None = None
    host_port: int | None = None
    v = g("cs-host")
    if v and v != "-":
        domain, host_port = _host_and_port(v)
        dst["domain"] = domain
    if dst:
        doc["destination"] = dst
    if "ip" in src and "ip" in dst:
        event["category"] = ["web", "network"]
        event["type"] = ["connection"]

    # -- HTTP
    request: dict[str, Any] = {}
    response: dict[str, Any] = {}
    v = g("cs-method")
    if v and v != "-":
        request["method"] = v
    v = g("cs(Referer)")
    if v and v != "-":
        request["referrer"] = v.replace("+", " ") if plus_is_space else v
    v = g("cs-bytes")
    if v and v != "-":
        request["body"] = {"bytes": int(v)}
    v = g("sc-bytes")
    if v and v != "-":
        response["body"] = {"bytes": int(v)}
    v = g("sc-status")
    if v and v != "-":
        status = int(v)
        response["status_code"] = status
        event["outcome"] = "success" if status < 400 else "failure"
    http: dict[str, Any] = {}
    if request:
        http["request"] = request
    if response:
        http["response"] = response
    v = g("cs-version")
    if v and v != "-":
        http["version"] = v[5:] if v[:5].upper() == "HTTP/" and len(v) > 5 else v
    if http:
        doc["http"] = http

    # -- URL: raw as logged; the decoded forms for detection go to iiswatch.url
    url: dict[str, Any] = {}
    stem = g("cs-uri-stem")
    if stem == "-":
        stem = None
    query = g("cs-uri-query")
    if query == "-":
        query = None
    if stem:
        url["original"] = stem
        url["path"] = stem
        last = stem.rpartition("/")[2]
        dot = last.rfind(".")
        if 0 <= dot < len(last) - 1:
            url["extension"] = last[dot + 1 :].lower()
    if query:
        url["query"] = query
    if domain:
        url["domain"] = domain
        if host_port is not None:
            url["port"] = host_port
    if url:
        doc["url"] = url
    if stem or query:
        doc["iiswatch"]["url"] = detection_url(stem, query)

    v = g("cs-username")
    if v and v != "-":
        name, user_domain = _split_user(v)
        user = {"name": name}
        if user_domain:
            user["domain"] = user_domain
        doc["user"] = user
        doc["related"] = {"user": [name]}

    v = g("cs(User-Agent)")
    if v and v != "-":
        doc["user_agent"] = parse_user_agent(v.replace("+", " ") if plus_is_space else v)

    v = g("time-taken")
    if v and v != "-":
        event["duration"] = int(v) * 1_000_000

    # -- iis.access
    v = g("sc-substatus")
    if v and v != "-":
        iis["sub_status"] = int(v)
    v = g("sc-win32-status")
    if v and v != "-":
        iis["win32_status"] = int(v)
    v = g("s-sitename")
    if v and v != "-":
        iis["site_name"] = v
    host_name = source.host_name
    v = g("s-computername")
    if v and v != "-":
        iis["server_name"] = v
        host_name = v.lower()
    v = g("cs(Cookie)")
    if v and v != "-":
        iis["cookie"] = v.replace("+", " ") if plus_is_space else v
    v = g("x-session")
    if v and v != "-":
        iis["session_id"] = v
    v = g("X-Forwarded-For") or g("cs(X-Forwarded-For)")
    if v and v != "-":
        forwarded = _forwarded(v)
        if forwarded:
            iis["forwarded_for"] = forwarded
            fip = _forwarded_ip(forwarded[0])
            if fip:
                # Not added to related.ip: Elastic's pipeline leaves it out, and rules
                # written for it look at network.forwarded_ip.
                doc["network"] = {"forwarded_ip": fip}
    extra = values.keys() - KNOWN_FIELDS if custom is None else custom
    if extra:
        found = {_custom_key(k): values[k] for k in extra if values.get(k) not in (None, "", "-")}
        if found:
            iis["custom"] = found
    if iis:
        doc["iis"] = {"access": iis}

    if host_name:
        doc["host"] = {"name": host_name}
    if related_ip or host_name:
        related = doc.setdefault("related", {})
        if related_ip:
            related["ip"] = related_ip
        if host_name:
            related["hosts"] = [host_name]
    return doc
