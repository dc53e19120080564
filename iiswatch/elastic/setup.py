"""`iiswatch setup`: install or update index templates, roles and least-privilege users, and
say what changed. Idempotent: a second run reports everything unchanged.

Uses nothing the minimal distribution lacks: plain index templates (no data streams, no ILM,
no ingest pipelines, no scripts).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from iiswatch.config import Credentials, Purpose, local_credentials, save_local_credentials
from iiswatch.elastic import indices
from iiswatch.elastic.client import backend_errors, make_client
from iiswatch.errors import BackendUnavailable

COMPONENT = "iiswatch-ecs-common"
INDEX_TEMPLATES = {
    "iiswatch-iis-access": "template-iis-access.json",
    "iiswatch-iis-error": "template-iis-error.json",
    "iiswatch-deadletter": "template-deadletter.json",
}

# Roles: what each purpose may do, and nothing more. The writer can create documents (and
# the monthly index a new document needs) but cannot read, update or delete.
ROLES: dict[str, dict[str, Any]] = {
    "iiswatch_writer": {
        "cluster": [],
        "indices": [
            {"names": list(indices.WRITE_PATTERNS), "privileges": ["create_doc", "auto_configure"]}
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
}
USERS = {
    Purpose.WRITER: ("iiswatch_writer", ["iiswatch_writer"]),
    Purpose.READER: ("iiswatch_reader", ["iiswatch_reader"]),
    Purpose.ALERTING: ("iiswatch_alerting", ["iiswatch_alerting"]),
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


def _normalised(d: Any) -> Any:
    # Elasticsearch echoes settings as strings and nests them under "index"; compare on a
    # canonical JSON form of both sides with scalars as strings.
    if isinstance(d, dict):
        return {k: _normalised(v) for k, v in sorted(d.items())}
    if isinstance(d, list):
        return [_normalised(v) for v in d]
    if isinstance(d, bool):
        return str(d).lower()
    return str(d)


def install_templates(es: Elasticsearch) -> list[Change]:
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
        body = load_mapping(filename)
        try:
            cur = es.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
        except NotFoundError:
            cur = None
        changes.append(
            _put_if_changed(
                "index template",
                name,
                body,
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


def install_roles(es: Elasticsearch) -> list[Change]:
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


def install_users(es: Elasticsearch) -> list[Change]:
    """One user per purpose. A password is generated only when the user or its local
    credentials file is new; existing working credentials are left alone."""
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
        probe.security.authenticate()
        return True
    except Exception:
        return False
    finally:
        probe.close()


def run_setup(es: Elasticsearch) -> list[Change]:
    with backend_errors(es):
        if not es.ping():
            # ping swallows the reason; ask again with a real call to get it
            es.info()
            raise BackendUnavailable("Elasticsearch did not answer", "iiswatch es status")
        return install_templates(es) + ensure_indices(es) + install_roles(es) + install_users(es)
