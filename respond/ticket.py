"""Telling the incident's Request Tracker ticket what response did: one comment per event
(requested, applied, failed, refused, expired), through RT's REST 2 API as alerting does."""

from __future__ import annotations

import urllib3

from iiswatch.alerting.config import RequestTrackerDestination, resolve_secret
from iiswatch.alerting.destinations.http import pool, request
from iiswatch.respond.model import Action, Result
from iiswatch.times import iso


def comment_on_ticket(
    rt: RequestTrackerDestination,
    ticket_id: str,
    subject: str,
    text: str,
    http: urllib3.PoolManager | None = None,
) -> None:
    """POST /REST/2.0/ticket/ID/comment; DeliveryError when RT refuses or is unreachable."""
    if rt.token is not None:
        headers = {"Authorization": "token " + resolve_secret(rt.token, "Request Tracker token")}
    else:
        assert rt.user is not None and rt.password is not None
        password = resolve_secret(rt.password, "Request Tracker password")
        headers = urllib3.make_headers(basic_auth=f"{rt.user}:{password}")
    request(
        http or pool(rt.ca_certs),
        "POST",
        f"{str(rt.url).rstrip('/')}/REST/2.0/ticket/{ticket_id}/comment",
        what=f"Request Tracker ({rt.url})",
        timeout=rt.timeout.total_seconds(),
        headers=headers,
        json={"Subject": subject, "Content": text, "ContentType": "text/plain"},
    )


def _what(action: Action) -> str:
    t = action.target
    if t.ip:
        return f"block {t.ip}" if action.kind.value == "block_ip" else f"unblock {t.ip}"
    return f"quarantine {t.url_path}"


def requested_text(action: Action) -> tuple[str, str]:
    lines = [
        f"iiswatch respond: {_what(action)} on {action.host} was requested.",
        "",
        f"action:    {action.id}",
        f"by:        {action.requested_by}",
        f"at:        {iso(action.requested_at)}",
        f"reason:    {action.reason}",
    ]
    if action.expires_at:
        lines.append(f"expires:   {iso(action.expires_at)}")
    if action.auto_rule:
        lines.append(f"automatic: policy for rule {action.auto_rule}")
    lines.append("")
    lines.append(f"The agent on {action.host} applies it if its [actions] allow it.")
    return f"Response requested: {_what(action)} on {action.host}", "\n".join(lines)


def result_text(action: Action, result: Result) -> tuple[str, str]:
    lines = [
        f"iiswatch respond: {_what(action)} on {action.host}: {result.state.value}.",
        "",
        f"action:    {action.id}",
        f"at:        {iso(result.at)}",
        f"result:    {result.message}",
    ]
    lines += [f"changed:   {c}" for c in result.changes]
    if result.sha256:
        lines.append(f"sha256:    {result.sha256} ({result.size} bytes, archived as evidence)")
    if result.quarantined_to:
        lines.append(f"now at:    {result.quarantined_to}")
    return f"Response {result.state.value}: {_what(action)} on {action.host}", "\n".join(lines)
