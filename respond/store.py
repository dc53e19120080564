"""The `iiswatch-actions` index: record an action, hand a host its pending ones, record what
the agent reported. State changes are compare-and-set (`if_seq_no`/`if_primary_term`), so two
collectors answering polls of the same agent cannot hand one action out twice."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError

from iiswatch.errors import BackendUnavailable
from iiswatch.respond.model import ACTIONS_INDEX, Action, Result, State

CLAIM_ATTEMPTS = 3


def record(es: Elasticsearch, action: Action) -> None:
    """Store a new action; refresh so the agent's next poll sees it."""
    es.index(
        index=ACTIONS_INDEX,
        id=action.id,
        document=action.to_doc(),
        op_type="create",
        refresh="wait_for",
    )


def get(es: Elasticsearch, action_id: str) -> Action | None:
    try:
        hit = es.get(index=ACTIONS_INDEX, id=action_id)
    except NotFoundError:
        return None
    return Action.from_doc(_action_fields(hit["_source"]))


def _action_fields(src: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in src.items() if k != "ticket_told"}


def search(
    es: Elasticsearch,
    *,
    host: str | None = None,
    states: Iterable[State] | None = None,
    ip: str | None = None,
    size: int = 100,
) -> list[Action]:
    """Actions, newest first."""
    filters: list[dict[str, Any]] = []
    if host:
        filters.append({"term": {"host": host}})
    if states is not None:
        filters.append({"terms": {"state": [s.value for s in states]}})
    if ip:
        filters.append({"term": {"target.ip": ip}})
    hits = es.search(
        index=ACTIONS_INDEX,
        ignore_unavailable=True,
        query={"bool": {"filter": filters}},
        sort=[{"requested_at": "desc"}],
        size=size,
    )["hits"]["hits"]
    return [Action.from_doc(_action_fields(h["_source"])) for h in hits]


def claim_pending(es: Elasticsearch, host: str, limit: int = 20) -> list[Action]:
    """The host's pending actions, each moved to `delivered` by this call; an action another
    collector claimed first is left out."""
    # writes refresh (wait_for), so a search sees them; the collector's role has no
    # `indices.exists`/`refresh` privileges, hence ignore_unavailable instead
    hits = es.search(
        index=ACTIONS_INDEX,
        ignore_unavailable=True,
        query={"bool": {"filter": [{"term": {"host": host}}, {"term": {"state": "pending"}}]}},
        sort=[{"requested_at": "asc"}],
        size=limit,
        seq_no_primary_term=True,
    )["hits"]["hits"]
    claimed = []
    for h in hits:
        try:
            es.update(
                index=ACTIONS_INDEX,
                id=h["_id"],
                doc={"state": State.DELIVERED.value},
                if_seq_no=h["_seq_no"],
                if_primary_term=h["_primary_term"],
                refresh="wait_for",
            )
        except ConflictError:
            continue
        claimed.append(
            Action.from_doc(_action_fields(h["_source"])).model_copy(
                update={"state": State.DELIVERED}
            )
        )
    return claimed


def add_result(es: Elasticsearch, action_id: str, host: str, result: Result) -> Action | None:
    """Append the agent's result and move the action to its state. None when there is no
    such action for this host (an agent may only report on its own actions)."""
    for _ in range(CLAIM_ATTEMPTS):
        try:
            hit = es.get(index=ACTIONS_INDEX, id=action_id)
        except NotFoundError:
            return None
        action = Action.from_doc(_action_fields(hit["_source"]))
        if action.host != host:
            return None
        results = [r.model_dump(mode="json", exclude_none=True) for r in action.results]
        results.append(result.model_dump(mode="json", exclude_none=True))
        try:
            es.update(
                index=ACTIONS_INDEX,
                id=action_id,
                doc={"state": result.state.value, "results": results},
                if_seq_no=hit["_seq_no"],
                if_primary_term=hit["_primary_term"],
                refresh="wait_for",
            )
        except ConflictError:
            continue
        return action.model_copy(
            update={"state": result.state, "results": [*action.results, result]}
        )
    raise BackendUnavailable(
        f"action {action_id} kept changing while its result was recorded",
        "the agent sends the result again on its next round",
    )


def untold(es: Elasticsearch, size: int = 100) -> list[tuple[Action, list[str]]]:
    """Actions with a ticket and results the ticket has not been told about, with the
    states already told."""
    hits = es.search(
        index=ACTIONS_INDEX,
        ignore_unavailable=True,
        query={
            "bool": {
                "filter": [{"exists": {"field": "ticket"}}, {"exists": {"field": "results.state"}}]
            }
        },
        sort=[{"requested_at": "asc"}],
        size=size,
    )["hits"]["hits"]
    out = []
    for h in hits:
        action = Action.from_doc(_action_fields(h["_source"]))
        told = list(h["_source"].get("ticket_told") or [])
        if len(told) < len(action.results):
            out.append((action, told))
    return out


def mark_told(es: Elasticsearch, action_id: str, told: list[str]) -> None:
    es.update(index=ACTIONS_INDEX, id=action_id, doc={"ticket_told": told}, refresh="wait_for")
