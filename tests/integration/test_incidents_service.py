"""Incidents through `iiswatch alerting run` as real processes: two services share the
work, the leader is killed after it opened the attacker's ticket, and the standby carries
on — the attacker's later finding is a comment on the same ticket, never a second ticket.
The `command` destination writes one file per message id (ticket: the incident id;
comment: incident id + alert id) and logs every call, so a duplicate shows."""

from __future__ import annotations

import random
import signal
import time

from iiswatch.alerting.risk import incident_id
from tests.integration.test_alerting_service import Workspace, ws  # noqa: F401


def test_two_services_give_one_ticket_per_attacker_across_a_leader_takeover(
    ws: Workspace,  # noqa: F811
) -> None:
    ws.write_config(incidents={"enabled": True, "threshold": 100}, default_destinations=["tickets"])
    shell = ws.add_rule(
        f"iiswatch.url.query.text:whoami AND host.name:{ws.host}",
        extra="opens_incident: always\n",
    )
    probe = ws.add_rule(f"iiswatch.url.query.text:probe AND host.name:{ws.host}")
    noise = ws.add_rule(f"iiswatch.url.query.text:noise AND host.name:{ws.host}")
    attacker, bystander = (f"10.66.{random.randrange(256)}.{random.randrange(1, 255)}",) * 2
    while bystander == attacker:
        bystander = f"10.67.{random.randrange(256)}.{random.randrange(1, 255)}"
    iid = incident_id("source.ip", attacker, 1)
    try:
        _takeover(ws, attacker, bystander, iid, shell, probe, noise)
    finally:
        for ip in (attacker, bystander):
            ws.es.options(ignore_status=404).delete(
                index="iiswatch-incidents", id=incident_id("source.ip", ip, 1)
            )


def _takeover(
    ws: Workspace,  # noqa: F811
    attacker: str,
    bystander: str,
    iid: str,
    shell: str,
    probe: str,
    noise: str,
) -> None:
    a, b = ws.start(), ws.start()
    ws.wait_first_runs()

    ws.ingest(attacker)  # cmd=whoami: the web-shell rule opens the incident at once
    ws.ingest(bystander, query="noise=1")  # one 70-risk rule alone: no ticket
    ws.wait_tickets(lambda t: iid in {x["alert_id"] for x in t}, timeout=60)
    # kill the leader once it recorded the ticket (killed between the command and the
    # record, the next leader would hand the ticket over again: the same id, which RT, or
    # this ticket script, turns into the same ticket - but one more call)
    deadline = time.monotonic() + 60
    while not _recorded(ws, iid):
        assert time.monotonic() < deadline, "the ticket was never recorded"
        time.sleep(0.2)
    leader = next(p for p in (a, b) if "holding the lease" in ws.log(p))
    leader.send_signal(signal.SIGKILL)
    leader.wait(10)

    ws.ingest(attacker, query="probe=1")  # a later finding, for the standby to deliver
    ws.wait_tickets(lambda t: len([x for x in t if x["alert_id"].startswith(iid)]) == 2, 60)
    time.sleep(3)  # anything extra would show by now
    mine = [t for t in ws.delivered() if t["alert_id"].startswith(iid)]
    assert sorted(t["alert_id"] for t in mine)[0] == iid  # one ticket, then one comment
    comment = next(t for t in mine if t["alert_id"] != iid)
    assert comment["finding"]["rule"]["id"] == probe
    assert {r["id"] for r in comment["incident"]["rules"]} == {shell, probe}
    assert all(n == 1 for k, n in ws.calls().items() if k.startswith(iid))
    assert [t for t in ws.delivered() if not t["alert_id"].startswith(iid)] == []
    assert noise not in {r["id"] for t in mine for r in t["incident"]["rules"]}


def _recorded(ws: Workspace, iid: str) -> bool:  # noqa: F811
    doc = ws.es.get(index="iiswatch-incidents", id=iid)["_source"]
    state = (doc["delivery"].get("states") or {}).get("tickets") or {}
    return bool(state.get("opened")) and not doc["delivery"].get("claim")
