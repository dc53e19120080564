"""Shared pieces of the delivery tests: the alerting service's Elasticsearch client, a
throwaway outbox index, alerts unique to a test, and the real Request Tracker that
`scripts/test` starts (found through RT_URL / RT_TOKEN; a test fails when it is missing)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import urllib3
from elasticsearch import Elasticsearch

from iiswatch.alerting.templates import sample_alert
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for

ROOT = Path(__file__).resolve().parents[2]


def alerting_client() -> Elasticsearch:
    try:
        es = client_for(Purpose.ALERTING)
        es.security.authenticate()
    except Exception as e:
        pytest.fail(
            f"delivery tests need the local test Elasticsearch ({e}); run `bash scripts/test`",
            pytrace=False,
        )
    return es


def outbox_index() -> str:
    """An outbox index of its own for one test (the iiswatch-alerts template applies)."""
    return f"iiswatch-alerts-test-{uuid.uuid4().hex[:12]}"


def unique_alert(**changes: Any) -> dict[str, Any]:
    """The sample alert with its own id and group, so tests never meet each other's
    tickets or outbox documents."""
    alert = sample_alert(suffix=uuid.uuid4().hex)
    alert["group"] = {"source.ip": "203.0.113.9", "test.run": uuid.uuid4().hex}
    alert.update(changes)
    return alert


@dataclass
class Rt:
    url: str
    token: str

    @property
    def port(self) -> str:
        return str(urlsplit(self.url).port)

    @property
    def rest(self) -> str:
        return self.url.rstrip("/") + "/REST/2.0"

    def call(self, method: str, path: str, body: Any = None, **fields: str) -> Any:
        http = urllib3.PoolManager(retries=False)
        r = http.request(
            method,
            self.rest + path,
            body=None if body is None else orjson.dumps(body),
            fields=fields or None,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            timeout=15,
        )
        assert r.status < 300, (r.status, r.data[:300])
        return orjson.loads(r.data) if r.data else None

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/ticket/{ticket_id}"))

    def custom_fields(self, ticket_id: str) -> dict[str, list[str]]:
        return {c["name"]: c["values"] for c in self.ticket(ticket_id)["CustomFields"]}

    def contents(self, ticket_id: str) -> list[dict[str, Any]]:
        """The messages sent through REST (create, comments), oldest first; not the mail RT
        records (autoreplies, notifications). Subjects unfolded."""
        items = self.call(
            "GET",
            f"/ticket/{ticket_id}/attachments",
            fields="Content,ContentType,Subject,Headers",
            per_page="100",
        )["items"]
        return [
            i | {"Subject": " ".join(i.get("Subject", "").split())}
            for i in items
            if "X-RT-Interface: REST" in i.get("Headers", "") and i.get("Content")
        ]

    def tickets_for_alert(self, alert_id: str) -> list[str]:
        found = self.call("GET", "/tickets", query=f"CF.{{IiswatchAlertId}} = '{alert_id}'")
        return [str(i["id"]) for i in found["items"]]

    def delete(self, ticket_id: str) -> None:
        self.call("DELETE", f"/ticket/{ticket_id}")

    def stop(self) -> None:
        subprocess.run(["bash", "scripts/rt/stop-rt.sh", self.port], cwd=ROOT, check=True)

    def start(self) -> None:
        subprocess.run(
            ["bash", "scripts/rt/start-rt.sh", self.port],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def up(self) -> bool:
        try:
            self.call("GET", "/rt")
            return True
        except Exception:
            return False


def rt_from_env() -> Rt:
    url, token = os.environ.get("RT_URL"), os.environ.get("RT_TOKEN")
    if not url or not token:
        pytest.fail(
            "the Request Tracker tests need RT_URL and RT_TOKEN; run `bash scripts/test` "
            "(it starts RT with scripts/rt/start-rt.sh and exports them)",
            pytrace=False,
        )
    rt = Rt(url, token)
    deadline = time.monotonic() + 10
    while not rt.up():
        if time.monotonic() > deadline:
            pytest.fail(
                f"Request Tracker at {url} does not answer; run `bash scripts/test` "
                f"(or `bash scripts/rt/start-rt.sh {rt.port}`)",
                pytrace=False,
            )
        time.sleep(0.5)
    return rt
