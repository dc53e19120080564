"""One HTTP call to a ticket system or webhook, with its failure classified: connection
errors, timeouts, 408, 429 and 5xx may work later (retryable, with the server's
Retry-After); any other 4xx will not (permanent)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from iiswatch.alerting.templates import one_line
from iiswatch.errors import DeliveryError

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    data: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.data) if self.data else None
        except orjson.JSONDecodeError:
            return None


def pool(ca_certs: Path | None = None) -> urllib3.PoolManager:
    # retries=False: the outbox decides when to try again, and records every attempt;
    # maxsize: incidents are delivered a few at a time, each keeping its connection
    kwargs: dict[str, Any] = {"retries": False, "maxsize": 4}
    if ca_certs is not None:
        kwargs["ca_certs"] = str(ca_certs)
    return urllib3.PoolManager(**kwargs)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def request(
    http: urllib3.PoolManager,
    method: str,
    url: str,
    *,
    what: str,
    timeout: float,
    headers: dict[str, str] | None = None,
    json: Any = None,
    fields: dict[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201, 202, 204),
) -> Response:
    """Send one request; DeliveryError unless the status is in `ok`. `what` names the
    destination in messages (never the URL: a webhook URL may be a secret)."""
    hdrs = {"Accept": "application/json", "User-Agent": "iiswatch-alerting"}
    hdrs.update(headers or {})
    body = None
    if json is not None:
        body = orjson.dumps(json)
        hdrs["Content-Type"] = "application/json"
    try:
        r = http.request(
            method,
            url,
            body=body,
            fields=fields,
            headers=hdrs,
            timeout=urllib3.Timeout(total=timeout),
            redirect=False,
        )
    except Urllib3Error as e:
        reason = getattr(e, "reason", None) or e
        raise DeliveryError(
            f"cannot reach {what}: {one_line(reason, 200)}",
            "is it running and reachable from this host? the delivery is retried",
            retryable=True,
            detail={"error": type(e).__name__},
        ) from e
    resp = Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.data or b"")
    if resp.status in ok:
        return resp
    raise status_error(resp, what)


def status_error(resp: Response, what: str) -> DeliveryError:
    snippet = one_line(resp.data.decode("utf-8", "replace"), 300)
    detail: dict[str, object] = {"status": resp.status}
    if resp.status in RETRYABLE_STATUS:
        wait = retry_after(resp.headers.get("retry-after"))
        if wait is not None:
            detail["retry_after"] = wait
        return DeliveryError(
            f"{what} answered {resp.status}: {snippet}",
            "a temporary failure: the delivery is retried with backoff",
            retryable=True,
            retry_after=wait,
            detail=detail,
        )
    hint = {
        401: "the credentials were refused: check the token or password in the config",
        403: "the credentials lack a permission (or the queue/project does not exist)",
        404: "check the URL in the destination's config",
    }.get(
        resp.status,
        "the request was refused; fix the config or template, then `iiswatch alerts retry ID`",
    )
    return DeliveryError(
        f"{what} answered {resp.status}: {snippet}", hint, retryable=False, detail=detail
    )
