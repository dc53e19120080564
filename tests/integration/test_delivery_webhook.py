"""Webhooks against a real HTTP server on 127.0.0.1: every shipped template arrives as
valid JSON with the product's required fields, secrets travel only in headers, and 5xx,
429 and 4xx answers are retried, waited for or given up on as they should."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from elasticsearch import Elasticsearch

from iiswatch.alerting.config import AlertingConfig, parse_config
from iiswatch.alerting.delivery import Deliverer, retry
from iiswatch.alerting.outbox import Outbox
from iiswatch.alerting.templates import SHIPPED_JSON
from tests.integration.alerting_support import alerting_client, outbox_index, unique_alert
from tests.unit.test_alerting_templates import REQUIRED

pytestmark = pytest.mark.integration

HOSTILE = '{{7*7}} {% raw %}{% if %}{% endraw %} "}, "injected": true, "x": {"'


class Receiver:
    """A real HTTP server that records requests and answers from a script of
    (status, headers, body) tuples, then 200s."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                receiver.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": body,
                    }
                )
                status, headers, answer = (
                    receiver.script.pop(0) if receiver.script else (200, {}, b'{"ok": true}')
                )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def es() -> Elasticsearch:
    return alerting_client()


@pytest.fixture
def index(es: Elasticsearch) -> Iterator[str]:
    name = outbox_index()
    yield name
    es.indices.delete(index=name, ignore_unavailable=True)


def config(
    url: str, body: str = "slack.json", extra: str = "", delivery: str = ""
) -> AlertingConfig:
    return parse_config(
        f"""
kibana_url = "https://kibana.example.org:5601"
[delivery]
backoff_base = "10ms"
backoff_max = "50ms"
{delivery}
[destinations.hook]
type = "webhook"
url = "{url}"
body = "{body}"
timeout = "5s"
vars = {{ project = "SEC" }}
{extra}
"""
    )


@pytest.mark.parametrize("template", SHIPPED_JSON)
def test_each_shipped_template_arrives_as_json_with_the_products_fields(
    receiver: Receiver, es: Elasticsearch, index: str, template: str
) -> None:
    cfg = config(receiver.url + "/api/hook", template)
    alert = unique_alert()
    alert["samples"][0]["event"]["original"] += " " + HOSTILE
    Outbox(es, index).put_new(alert, destinations=["hook"])
    [report] = Deliverer(es, cfg, index=index).deliver_pending(ids=[alert["alert_id"]])

    assert report.status == "delivered"
    [req] = receiver.requests
    assert req["method"] == "POST" and req["path"] == "/api/hook"
    assert req["headers"]["Content-Type"] == "application/json"
    payload = orjson.loads(req["body"])
    assert REQUIRED[template](payload)
    assert "injected" not in payload
    raw = req["body"].decode().replace("\\\\", "")  # Teams: Markdown backslash escapes
    assert "{{7*7}}" in raw and "{% raw %}" in raw


def test_secrets_travel_in_headers_and_nowhere_else(
    receiver: Receiver, es: Elasticsearch, index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IISWATCH_TEST_HOOK_PATH", "T000/B000/s3cretpath")
    monkeypatch.setenv("IISWATCH_TEST_API_KEY", "k3y-value")
    monkeypatch.setenv("IISWATCH_TEST_BEARER", "b3arer-value")
    cfg = config(
        receiver.url + "/${env:IISWATCH_TEST_HOOK_PATH}",
        "thehive.json",
        'headers = { "X-Api-Key" = "${env:IISWATCH_TEST_API_KEY}" }\n'
        'auth = { type = "bearer", token = "${env:IISWATCH_TEST_BEARER}" }\n'
        'ticket_field = "_id"\n',
    )
    receiver.script.append((201, {}, b'{"_id": "~4096", "status": "New"}'))
    alert = unique_alert()
    outbox = Outbox(es, index)
    outbox.put_new(alert, destinations=["hook"])
    [report] = Deliverer(es, cfg, index=index).deliver_pending(ids=[alert["alert_id"]])

    assert report.results[0].ticket_id == "~4096"
    [req] = receiver.requests
    assert req["path"] == "/T000/B000/s3cretpath"
    assert req["headers"]["X-Api-Key"] == "k3y-value"
    assert req["headers"]["Authorization"] == "Bearer b3arer-value"
    stored = orjson.dumps(outbox.get(alert["alert_id"]).doc).decode()  # type: ignore[union-attr]
    for secret in ("s3cretpath", "k3y-value", "b3arer-value"):
        assert secret not in stored


def test_a_5xx_then_200_is_one_delivery_with_two_attempts(
    receiver: Receiver, es: Elasticsearch, index: str
) -> None:
    receiver.script.append((503, {}, b"upstream busy"))
    cfg = config(receiver.url, delivery="quick_attempts = 2")
    alert = unique_alert()
    outbox = Outbox(es, index)
    outbox.put_new(alert, destinations=["hook"])
    [report] = Deliverer(es, cfg, index=index).deliver_pending(ids=[alert["alert_id"]])

    assert report.status == "delivered"
    assert len(receiver.requests) == 2
    rec = outbox.get(alert["alert_id"])
    assert rec is not None and rec.status == "delivered"
    attempts = rec.delivery["attempts"]
    assert [a["outcome"] for a in attempts] == ["retryable", "delivered"]
    assert attempts[0]["detail"] == {"status": 503}
    assert "answered 503: upstream busy" in attempts[0]["error"]
    assert rec.delivery["attempt_count"] == 2


def test_a_429_waits_at_least_as_long_as_retry_after(
    receiver: Receiver, es: Elasticsearch, index: str
) -> None:
    receiver.script.append((429, {"Retry-After": "120"}, b"slow down"))
    cfg = config(receiver.url, delivery="quick_attempts = 1")
    alert = unique_alert()
    Outbox(es, index).put_new(alert, destinations=["hook"])
    now = datetime.now(UTC)
    [report] = Deliverer(es, cfg, index=index).deliver_pending(now, ids=[alert["alert_id"]])

    assert report.status == "new"
    assert report.next_attempt_at is not None
    assert report.next_attempt_at >= now + timedelta(seconds=120)
    assert len(receiver.requests) == 1


def test_a_4xx_fails_at_once_and_retry_replays_it(
    receiver: Receiver, es: Elasticsearch, index: str
) -> None:
    receiver.script.append((400, {}, b'{"errors": {"project": "project is required"}}'))
    cfg = config(receiver.url, delivery="quick_attempts = 3")
    alert = unique_alert()
    outbox = Outbox(es, index)
    outbox.put_new(alert, destinations=["hook"])
    [report] = Deliverer(es, cfg, index=index).deliver_pending(ids=[alert["alert_id"]])

    assert report.status == "failed" and len(receiver.requests) == 1
    es.indices.refresh(index=index)
    assert [r.alert_id for r in outbox.list("failed")] == [alert["alert_id"]]

    replay = retry(es, cfg, alert["alert_id"], index=index)
    assert replay is not None and replay.status == "delivered"
    rec = outbox.get(alert["alert_id"])
    assert rec is not None
    assert [a["outcome"] for a in rec.delivery["attempts"]] == ["permanent", "delivered"]


def test_past_the_deadline_the_alert_is_failed(
    receiver: Receiver, es: Elasticsearch, index: str
) -> None:
    receiver.script.extend([(502, {}, b"bad gateway")] * 3)
    cfg = config(receiver.url, delivery='quick_attempts = 1\ndeadline = "1m"')
    alert = unique_alert()
    outbox = Outbox(es, index)
    start = datetime.now(UTC)
    outbox.put_new(alert, destinations=["hook"], now=start)
    first = Deliverer(es, cfg, index=index).deliver_pending(start, ids=[alert["alert_id"]])
    assert first[0].status == "new"
    late = start + timedelta(minutes=2)
    [report] = Deliverer(es, cfg, index=index).deliver_pending(late, ids=[alert["alert_id"]])

    assert report.status == "failed"
    rec = outbox.get(alert["alert_id"])
    assert rec is not None and rec.status == "failed"
    assert "gave up after 2 attempt(s)" in rec.delivery["last_error"]


def test_a_connection_refused_is_retryable(es: Elasticsearch, index: str) -> None:
    receiver = Receiver()
    url = receiver.url
    receiver.close()  # nothing listens there any more
    cfg = config(url, delivery="quick_attempts = 1")
    alert = unique_alert()
    Outbox(es, index).put_new(alert, destinations=["hook"])
    [report] = Deliverer(es, cfg, index=index).deliver_pending(ids=[alert["alert_id"]])
    assert report.status == "new"
    assert report.errors["hook"].startswith("cannot reach webhook hook (127.0.0.1:")
