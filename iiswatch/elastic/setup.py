"""`iiswatch setup`: install or update index templates, roles and least-privilege users, and
say what changed. Idempotent: a second run reports everything unchanged.

Uses nothing the minimal distribution lacks: plain index templates (no data streams, no ILM,
no ingest pipelines, no scripts).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from iiswatch import paths
from iiswatch.config import Credentials, Purpose, local_credentials, save_local_credentials
from iiswatch.elastic import indices
from iiswatch.elastic.client import backend_errors, make_client
from iiswatch.elastic.file_realm import FileRealm
from iiswatch.errors import NodeError

COMPONENT = "iiswatch-ecs-common"
INDEX_TEMPLATES = {
    "iiswatch-iis-access": "template-iis-access.json",
    "iiswatch-iis-error": "template-iis-error.json",
    "iiswatch-deadletter": "template-deadletter.json",
    "iiswatch-alerting-state": "template-alerting-state.json",
    "iiswatch-alerts": "template-alerts.json",
    "iiswatch-integrity": "template-integrity.json",
    "iiswatch-incidents": "template-incidents.json",
    "iiswatch-actions": "template-actions.json",
}

# Roles: what each purpose may do, and nothing more. The writer can create documents (and
# the monthly index a new document needs) but cannot read, update or delete.
ROLES: dict[str, dict[str, Any]] = {
    "iiswatch_writer": {
        "cluster": [],
        "indices": [
            {"names": list(indices.WRITE_PATTERNS), "privileges": ["create_doc", "auto_configure"]},
            # the collector hands agents their actions and records what they report
            {"names": list(indices.ACTION_PATTERNS), "privileges": ["read", "index"]},
        ],
    },
    "iiswatch_reader": {
        "cluster": [],
        "indices": [
            {"names": list(indices.READ_PATTERNS), "privileges": ["read", "view_index_metadata"]}
        ],
    },
    "iiswatch_alerting": {
        "cluster": ["monitor"],
        "indices": [
            {"names": list(indices.READ_PATTERNS), "privileges": ["read", "view_index_metadata"]},
            {"names": list(indices.STATE_PATTERNS), "privileges": ["all"]},
        ],
    },
    # `iiswatch respond`: the only role that may create actions; reads the evidence
    "iiswatch_responder": {
        "cluster": [],
        "indices": [
            {"names": list(indices.ACTION_PATTERNS), "privileges": ["all"]},
            {"names": list(indices.RESPONDER_READ_PATTERNS), "privileges": ["read"]},
        ],
    },
}
RELOAD_SECONDS = 6  # the node's file-watch interval (resource.reload.interval.high) plus slack
USERS = {
    Purpose.WRITER: ("iiswatch_writer", ["iiswatch_writer"]),
    Purpose.READER: ("iiswatch_reader", ["iiswatch_reader"]),
    Purpose.ALERTING: ("iiswatch_alerting", ["iiswatch_alerting"]),
    Purpose.RESPONDER: ("iiswatch_responder", ["iiswatch_responder"]),
}


@dataclass(frozen=True)
class Change:
    kind: str  # "component template", "index template", "role", "user", ...
    name: str
    action: str  # created | updated | unchanged

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "action": self.action}


def load_mapping(filename: str) -> dict[str, Any]:
    text = resources.files("iiswatch.mappings").joinpath(filename).read_text()
    return dict(json.loads(text))


def _put_if_changed(
    kind: str, name: str, wanted: dict[str, Any], current: dict[str, Any] | None, put: Any
) -> Change:
    if current is not None and _normalised(current) == _normalised(wanted):
        return Change(kind, name, "unchanged")
    put()
    return Change(kind, name, "created" if current is None else "updated")


_SERVER_KEYS = {"created_date_millis", "modified_date_millis", "created_date", "modified_date"}


def _normalised(d: Any) -> Any:
    # Elasticsearch echoes settings as strings and nests them under "index"; compare on a
    # canonical JSON form of both sides with scalars as strings.
    if isinstance(d, dict):
        return {k: _normalised(v) for k, v in sorted(d.items()) if k not in _SERVER_KEYS}
    if isinstance(d, list):
        return [_normalised(v) for v in d]
    if isinstance(d, bool):
        return str(d).lower()
    return str(d)


@dataclass(frozen=True)
class Layout:
    """Shards and replicas for every iiswatch index (None: the template's own, 1 and 0).
    On a cluster, replicas >= 1 keep every index whole when a node is lost."""

    shards: int | None = None
    replicas: int | None = None

    def apply(self, template: dict[str, Any]) -> dict[str, Any]:
        if self.shards is None and self.replicas is None:
            return template
        t = json.loads(json.dumps(template))
        index = t.setdefault("template", {}).setdefault("settings", {}).setdefault("index", {})
        if self.shards is not None:
            index["number_of_shards"] = self.shards
        if self.replicas is not None:
            index["number_of_replicas"] = self.replicas
        return dict(t)


def install_templates(es: Elasticsearch, layout: Layout = Layout()) -> list[Change]:
    changes = []
    body = load_mapping("component-ecs-common.json")
    try:
        cur = es.cluster.get_component_template(name=COMPONENT)["component_templates"][0][
            "component_template"
        ]
    except NotFoundError:
        cur = None
    changes.append(
        _put_if_changed(
            "component template",
            COMPONENT,
            body,
            cur,
            lambda: es.cluster.put_component_template(name=COMPONENT, **body),
        )
    )
    for name, filename in INDEX_TEMPLATES.items():
        body = layout.apply(load_mapping(filename))
        try:
            cur = es.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
        except NotFoundError:
            cur = None
        # Elasticsearch echoes an index template with `composed_of: []` when it has none
        expected = {"composed_of": []} | body
        changes.append(
            _put_if_changed(
                "index template",
                name,
                expected,
                cur,
                lambda b=body, n=name: es.indices.put_index_template(name=n, **b),
            )
        )
    return changes


def ensure_indices(es: Elasticsearch) -> list[Change]:
    """Create the dead-letter index (it has no date in its name) so searches on it work
    before the first dead letter arrives. Monthly log indices are made on first write."""
    name = indices.DEADLETTER_INDEX
    if es.indices.exists(index=name):
        return [Change("index", name, "unchanged")]
    es.indices.create(index=name)
    return [Change("index", name, "created")]


def install_security(es: Elasticsearch) -> list[Change]:
    """Roles and one user per purpose. The local node keeps them in its file realm (it has
    no `.security` index); a full cluster gets them through the security API."""
    conn = getattr(es, "_iiswatch_conn", None)
    if conn is not None and conn.source == "local node":
        return _file_realm_security(es, FileRealm(paths.es_state_dir() / "config"))
    return _native_roles(es) + _native_users(es)


def _file_realm_security(es: Elasticsearch, realm: FileRealm) -> list[Change]:
    changes = [Change("role", n, a) for n, a in realm.put_roles(ROLES).items()]
    fresh: list[Credentials] = []
    for purpose, (username, roles) in USERS.items():
        saved = local_credentials(purpose)
        password = saved.password if saved and saved.username == username else None
        if realm.user_matches(username, password, roles):
            changes.append(Change("user", username, "unchanged"))
            continue
        existed = username in realm.users()
        password = secrets.token_urlsafe(24)
        realm.put_user(username, password, roles)
        creds = Credentials(username=username, password=password)
        save_local_credentials(purpose, creds)
        fresh.append(creds)
        changes.append(Change("user", username, "updated" if existed else "created"))
    if any(c.action != "unchanged" for c in changes):
        _wait_for_reload(es, fresh)
    return changes


def _wait_for_reload(es: Elasticsearch, fresh: list[Credentials], timeout: float = 30.0) -> None:
    """The node re-reads realm files on a timer: wait until the new users authenticate."""
    deadline = time.monotonic() + timeout
    pending = list(fresh)
    while pending:
        if _works(es, pending[0]):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise NodeError(
                f"the local node did not pick up user {pending[0].username} within {timeout:.0f}s",
                "check `iiswatch es logs` for errors reading the users file",
            )
        time.sleep(0.5)
    # role changes have no user to probe: give the file watcher one reload period
    time.sleep(0 if fresh else RELOAD_SECONDS)


def _native_roles(es: Elasticsearch) -> list[Change]:
    changes = []
    for name, body in ROLES.items():
        try:
            cur = es.security.get_role(name=name)[name]
            cur = {
                "cluster": cur.get("cluster", []),
                "indices": [
                    {"names": i["names"], "privileges": i["privileges"]}
                    for i in cur.get("indices", [])
                ],
            }
        except NotFoundError:
            cur = None
        changes.append(
            _put_if_changed(
                "role", name, body, cur, lambda n=name, b=body: es.security.put_role(name=n, **b)
            )
        )
    return changes


def _native_users(es: Elasticsearch) -> list[Change]:
    """A password is generated only when the user or its local credentials file is new;
    existing working credentials are left alone."""
    changes = []
    for purpose, (username, roles) in USERS.items():
        try:
            cur = es.security.get_user(username=username)[username]
        except NotFoundError:
            cur = None
        saved = local_credentials(purpose)
        if (
            cur is not None
            and saved is not None
            and saved.username == username
            and _works(es, saved)
        ):
            if sorted(cur.get("roles", [])) == sorted(roles):
                changes.append(Change("user", username, "unchanged"))
            else:
                es.security.put_user(username=username, roles=roles)  # keeps the password
                changes.append(Change("user", username, "updated"))
            continue
        password = secrets.token_urlsafe(24)
        es.security.put_user(username=username, password=password, roles=roles)
        save_local_credentials(purpose, Credentials(username=username, password=password))
        changes.append(Change("user", username, "created" if cur is None else "updated"))
    return changes


def _works(es: Elasticsearch, creds: Credentials) -> bool:
    conn = getattr(es, "_iiswatch_conn", None)
    if conn is None:  # a client built by hand: we cannot tell, so keep what is there
        return True
    probe = make_client(conn.model_copy(update={"credentials": creds}))
    try:
        probe.options(max_retries=0).security.authenticate()
        return True
    except Exception:
        return False
    finally:
        probe.close()


def set_replicas(es: Elasticsearch, replicas: int) -> list[Change]:
    """Replicas are dynamic: existing iiswatch indices get the new count too (shards are
    fixed at creation; a new count applies from the next monthly index)."""
    changes = []
    current = es.indices.get_settings(
        index="iis-*,iiswatch-*", name="index.number_of_replicas", expand_wildcards="open"
    )
    for index, body in sorted(current.items()):
        have = body["settings"]["index"]["number_of_replicas"]
        if str(have) == str(replicas):
            continue
        es.indices.put_settings(index=index, settings={"index.number_of_replicas": replicas})
        changes.append(Change("index replicas", index, "updated"))
    return changes


def run_setup(es: Elasticsearch, layout: Layout = Layout()) -> list[Change]:
    with backend_errors(es):
        # not ping()/info(): the minimal distribution has no `GET /` (rest-root module)
        es.cluster.health()
        changes = install_templates(es, layout) + ensure_indices(es)
        if layout.replicas is not None:
            changes += set_replicas(es, layout.replicas)
        return changes + install_security(es)
