"""Turn the fields of one HTTP.sys HTTPERR line into an ECS document shaped like the one
Elastic's IIS `error` data stream produces, plus iiswatch's own detection fields."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from iiswatch.ingest.ecs_access import ECS_VERSION, ip_of
from iiswatch.ingest.model import Event, LineError, Source
from iiswatch.ingest.normalize import detection_url

DATASET = "iis.error"
_VERSION = re.compile(r"^HTTP/(\d+(?:\.\d+)?)$", re.IGNORECASE)
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_INT = re.compile(r"^\d+$")


class FieldError(LineError):
    """A field holds a value its column cannot hold; the parser turns it into a dead letter."""


def present(values: dict[str, str], name: str) -> str | None:
    """The value of column `name`, or None when the column is absent or holds "-"."""
    value = values.get(name)
    if value is None or value == "" or value == "-":
        return None
    return value


def parse_int(name: str, value: str, *, maximum: int | None = None) -> int:
    if not _INT.match(value) or len(value) > 19:
        raise FieldError(f"{name} {value!r} is not a non-negative integer")
    number = int(value)
    if maximum is not None and number > maximum:
        raise FieldError(f"{name} {value!r} is out of range (max {maximum})")
    return number


def utc_timestamp(date: str, time: str) -> str:
    """ISO-8601 UTC with milliseconds from W3C `date` and `time` (already UTC)."""
    try:
        moment = datetime.strptime(f"{date} {time}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise FieldError(f"date/time {date!r} {time!r} is not YYYY-MM-DD HH:MM:SS") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def url_parts(uri: str) -> dict[str, Any]:
    """ECS `url.*` from the cooked URL HTTP.sys logged (path and query in one field).

    Elastic runs the `uri_parts` processor, which gives up on anything java.net.URI rejects
    (a backslash, for one); we split on the first "?" instead, so traversal attempts such as
    `/..\\win.ini` still get a `url.path` that detections can match.
    """
    url: dict[str, Any] = {"original": uri}
    rest = uri
    if _ABSOLUTE.match(uri):
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is not None:
            url["scheme"] = parts.scheme
            if parts.hostname:
                url["domain"] = parts.hostname
            if port is not None:
                url["port"] = port
            rest = uri[len(parts.scheme) + 3 + len(parts.netloc) :]
    path, sep, query = rest.partition("?")
    if path:
        url["path"] = path
        extension = _extension(path)
        if extension:
            url["extension"] = extension
    if sep and query:
        url["query"] = query
    return url


def _extension(path: str) -> str | None:
    # Like Elastic's uri_parts: the text after the last dot of the last path segment.
    segment = path[path.rfind("/") + 1 :]
    dot = segment.rfind(".")
    if dot < 0 or dot == len(segment) - 1:
        return None
    return segment[dot + 1 :]


def build_error_event(values: dict[str, str], *, raw: bytes, offset: int, source: Source) -> Event:
    """ECS document for one HTTPERR line. `values` maps the #Fields names to raw strings
    ("-" meaning empty). Raises FieldError when a value cannot be what its column says."""
    get = values.get
    event: Event = {
        "@timestamp": utc_timestamp(get("date", "-"), get("time", "-")),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "event",
            "module": "iis",
            "dataset": DATASET,
            "original": raw.decode("utf-8", errors="replace"),
        },
        "log": {"file": {"path": source.path}, "offset": offset},
        "host": {"name": source.host_name},
        "iiswatch": {"file_id": source.file_id, "format": "httperr"},
    }

    related: list[str] = []
    for side, ip_field, port_field in (
        ("source", "c-ip", "c-port"),
        ("destination", "s-ip", "s-port"),
    ):
        endpoint: dict[str, Any] = {}
        address = present(values, ip_field)
        if address is not None:
            # As for access logs: keep what was logged in `address` (zone id and all), and
            # set `ip` only when it is one, so a mangled column does not lose the event.
            endpoint["address"] = address
            ip = ip_of(address)
            if ip is not None:
                endpoint["ip"] = ip
                if ip not in related:
                    related.append(ip)
        port = present(values, port_field)
        if port is not None:
            endpoint["port"] = parse_int(port_field, port, maximum=65535)
        if endpoint:
            event[side] = endpoint

    http: dict[str, Any] = {}
    version = present(values, "cs-version")
    if version is not None:
        match = _VERSION.match(version)
        if match:  # "HTTP/?.?" (a version of 10 or more) carries no number to keep
            http["version"] = match.group(1)
    method = present(values, "cs-method")
    if method is not None:
        http.setdefault("request", {})["method"] = method
    status = present(values, "sc-status")
    if status is not None:
        code = parse_int("sc-status", status, maximum=999)
        http.setdefault("response", {})["status_code"] = code
        event["event"]["outcome"] = "failure" if code >= 400 else "success"
    _optional_http(values, http, event)
    if http:
        event["http"] = http

    uri = present(values, "cs-uri")
    if uri is not None:
        url = url_parts(uri)
        host = present(values, "cs-host")
        if host is not None and "domain" not in url:
            url["domain"] = host
        event["url"] = url
        event["iiswatch"]["url"] = detection_url(url.get("path"), url.get("query"))

    error: dict[str, str] = {}
    for name, key in (
        ("s-reason", "reason_phrase"),
        ("s-queuename", "queue_name"),
        ("s-siteid", "site_id"),
        ("streamid", "streamid"),
        ("streamid_ex", "streamid_ex"),
        ("transport", "transport"),
    ):
        value = present(values, name)
        if value is not None:
            error[key] = value
    if error:
        event["iis"] = {"error": error}

    # Elastic's rule: "web" always; "network" and a "connection" type when both ends are known.
    event["event"]["category"] = ["web"]
    if "ip" in event.get("source", {}) and "ip" in event.get("destination", {}):
        event["event"]["category"].append("network")
        event["event"]["type"] = ["connection"]
    if related:
        event["related"] = {"ip": related}
    return event


def _optional_http(values: dict[str, str], http: dict[str, Any], event: Event) -> None:
    """Fields later HTTP.sys versions can add to #Fields (Log Parser's HTTPERR list)."""
    agent = present(values, "cs(User-Agent)")
    if agent is not None:
        event["user_agent"] = {"original": agent.replace("+", " ")}
    referrer = present(values, "cs(Referer)")
    if referrer is not None:
        http.setdefault("request", {})["referrer"] = referrer.replace("+", " ")
    for name, side in (("cs-bytes", "request"), ("sc-bytes", "response")):
        value = present(values, name)
        if value is not None:
            http.setdefault(side, {})["body"] = {"bytes": parse_int(name, value)}
    taken = present(values, "time-taken")
    if taken is not None:
        event["event"]["duration"] = parse_int("time-taken", taken) * 1_000_000
