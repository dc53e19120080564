"""The agent's side of response: a thread that asks the collector for this host's actions
every `poll_seconds`, applies the kinds `[actions] allow` lists (refusing the others, and
saying so), reports each result, and removes its own blocks when they expire.

Its memory is a small JSON file in the agent's state dir (`actions.json`): the blocks it
added (to lift them at expiry, even while the collector is unreachable) and the reports not
yet acknowledged (sent again on the next round). A block that was already in the config
before the agent came is never removed by it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
from urllib3.exceptions import HTTPError

from iiswatch.errors import IiswatchError
from iiswatch.ingest.archive.layout import write_atomic
from iiswatch.respond.agent_config import ActionsConfig
from iiswatch.respond.model import ALLOWED_BY, Kind, Result, State

log = logging.getLogger(__name__)
STATE_FILE = "actions.json"
KEEP_DONE = 500


class CollectorError(Exception):
    """The collector did not take the request; tried again next round."""


class ActionsClient:
    """The three calls to the collector, with the agent's token and TLS settings."""

    def __init__(
        self, url: str, token: Callable[[], str], *, ca: Path | None, timeout: float
    ) -> None:
        self.base = url.rstrip("/")
        self._token = token
        tls: dict[str, Any] = {}
        if url.startswith("https:"):
            tls = {"cert_reqs": "CERT_REQUIRED"}
            if ca is not None:
                tls["ca_certs"] = str(ca)
        self._http = urllib3.PoolManager(
            num_pools=1, maxsize=1, retries=False, timeout=timeout, **tls
        )

    def _call(
        self,
        method: str,
        route: str,
        body: bytes | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        url = self.base + route + ("?" + urlencode(query) if query else "")
        headers = {"Authorization": f"Bearer {self._token()}", "Content-Type": "application/json"}
        try:
            resp = self._http.request(method, url, body=body, headers=headers)
        except HTTPError as e:
            raise CollectorError(f"cannot reach the collector: {e}") from e
        if resp.status != 200:
            raise CollectorError(
                f"collector answered {resp.status} to {route}: {resp.data[:300]!r}"
            )
        return json.loads(resp.data)

    def poll(self, host: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/actions", query={"host": host}).get("actions") or [])

    def report(self, host: str, action_id: str, result: dict[str, Any]) -> None:
        self._call(
            "POST",
            "/v1/actions/result",
            orjson.dumps({"id": action_id, "host": host, "result": result}),
        )

    def evidence(self, host: str, action_id: str, path: str, sha256: str, data: bytes) -> None:
        query = {"host": host, "action": action_id, "path": path, "sha256": sha256}
        self._call("POST", "/v1/evidence", data, query)

    def close(self) -> None:
        self._http.clear()


def _now() -> datetime:
    return datetime.now(UTC)


class ActionRunner:
    """Applies actions for one host. `round()` does one poll-apply-report-expire pass (the
    thread calls it every `poll_seconds`; tests call it directly)."""

    def __init__(
        self,
        cfg: ActionsConfig,
        host: str,
        state_dir: Path,
        client: ActionsClient,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.cfg, self.host, self.client, self.clock = cfg, host, client, clock
        self.state_path = state_dir / STATE_FILE
        self.quarantine_dir = cfg.quarantine_dir or state_dir / "quarantine"
        self.state = self._load()

    # -- local state ---------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as e:
            log.error(
                "actions: %s unreadable (%s): starting with an empty record", self.state_path, e
            )
            data = {}
        data.setdefault("blocks", {})
        data.setdefault("done", [])
        data.setdefault("reports", [])
        return data

    def _save(self) -> None:
        self.state["done"] = self.state["done"][-KEEP_DONE:]
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state_path, orjson.dumps(self.state, option=orjson.OPT_INDENT_2))

    # -- the round -------------------------------------------------------------------------

    def round(self) -> None:
        self._send_reports()
        self._expire()
        try:
            actions = self.client.poll(self.host)
        except CollectorError as e:
            log.warning("actions: poll failed: %s", e)
            return
        for a in actions:
            if a.get("id") in self.state["done"]:
                continue  # handed out twice: it was applied (or refused) once already
            result = self._run(a)
            self.state["done"].append(a.get("id"))
            self._queue_report(str(a.get("id")), result)
        self._send_reports()

    def _queue_report(self, action_id: str, result: Result) -> None:
        self.state["reports"].append(
            {"id": action_id, "result": result.model_dump(mode="json", exclude_none=True)}
        )
        self._save()
        log.info("action %s: %s: %s", action_id, result.state, result.message)

    def _send_reports(self) -> None:
        while self.state["reports"]:
            r = self.state["reports"][0]
            try:
                self.client.report(self.host, r["id"], r["result"])
            except CollectorError as e:
                log.warning("actions: report of %s not delivered: %s", r["id"], e)
                return
            self.state["reports"].pop(0)
            self._save()

    def _run(self, a: dict[str, Any]) -> Result:
        try:
            kind = Kind(str(a.get("kind")))
        except ValueError:
            return Result(state=State.FAILED, message=f"unknown action kind {a.get('kind')!r}")
        needed = ALLOWED_BY[kind]
        if needed not in self.cfg.allow:
            return Result(
                state=State.REFUSED,
                message=f"agent of {self.host} does not allow {needed!r} actions "
                f"(its [actions] allow = {list(self.cfg.allow)})",
            )
        target = a.get("target") or {}
        try:
            if kind is Kind.BLOCK_IP:
                return self._block(str(a["id"]), target, a.get("expires_at"))
            if kind is Kind.UNBLOCK_IP:
                return self._lift(str(a.get("lifts") or ""), target)
            return self._quarantine(str(a["id"]), target)
        except IiswatchError as e:
            msg = e.message + (f" ({e.hint})" if e.hint else "")
            return Result(state=State.FAILED, message=msg[:4000])
        except (OSError, KeyError, ValueError) as e:
            return Result(state=State.FAILED, message=f"{type(e).__name__}: {e}"[:4000])

    # -- blocking --------------------------------------------------------------------------

    def _site(self, target: dict[str, Any]) -> str:
        site = target.get("site") or self.cfg.site
        if site:
            return str(site)
        from iiswatch.respond.sites import pick_site, read_sites

        return pick_site(read_sites(self.cfg.application_host_path()), None).name

    def _ip_change(self, block: bool, site: str, ip: str) -> tuple[bool, str]:
        from iiswatch.respond import ipsecurity as ips

        if self.cfg.ip_backend == "appcmd":
            make = ips.appcmd_block_args if block else ips.appcmd_unblock_args
            args = make(site, ip, self.cfg.appcmd)
            done = ips.run_appcmd(args)
            if done.returncode != 0:
                text = (done.stdout + done.stderr).strip()
                # appcmd says "duplicate" / "Cannot find" for an entry there / not there
                if block and "duplicate" in text.lower():
                    return False, f"{ip} was already denied for {site} (appcmd: {text})"
                if not block and "cannot find" in text.lower():
                    return False, f"{ip} was not denied for {site} (appcmd: {text})"
                raise ips.IpSecurityError(f"appcmd failed ({done.returncode}): {text}", None)
            return True, ips.appcmd_display(args)
        path = self.cfg.web_config or self.cfg.application_host_path()
        editor = ips.XmlIpSecurity(path, None if self.cfg.web_config else site)
        edit = editor.block(ip) if block else editor.unblock(ip)
        return edit.changed, edit.description

    def _block(self, action_id: str, target: dict[str, Any], expires_at: str | None) -> Result:
        ip, site = str(target["ip"]), self._site(target)
        changed, what = self._ip_change(True, site, ip)
        self.state["blocks"][action_id] = {
            "ip": ip,
            "site": site,
            "expires_at": expires_at,
            "added": changed,
        }
        self._save()
        until = f" until {expires_at}" if expires_at else ""
        return Result(
            state=State.APPLIED, message=f"{ip} denied on site {site}{until}", changes=[what]
        )

    def _unblock(self, block_id: str, target: dict[str, Any], state: State) -> Result:
        entry = self.state["blocks"].pop(block_id, None)
        ip = str(target.get("ip") or (entry or {}).get("ip"))
        site = str((entry or {}).get("site") or self._site(target))
        if entry is not None and not entry.get("added"):
            self._save()
            return Result(
                state=state, message=f"{ip} was denied on {site} before iiswatch: left as it was"
            )
        changed, what = self._ip_change(False, site, ip)
        self._save()
        return Result(
            state=state,
            message=f"{ip} no longer denied on site {site}",
            changes=[what] if changed else [],
        )

    def _lift(self, block_id: str, target: dict[str, Any]) -> Result:
        """`respond unblock`: lift a block this agent applied; the block's own document is
        told too (state `lifted`). A block this agent has no record of is left alone."""
        if block_id not in self.state["blocks"]:
            return Result(
                state=State.FAILED,
                message=f"no block {block_id} applied by this agent on {self.host}: unchanged",
            )
        lifted = self._unblock(block_id, target, State.LIFTED)
        self._queue_report(block_id, lifted)
        return Result(state=State.APPLIED, message=lifted.message, changes=lifted.changes)

    def _expire(self) -> None:
        now = self.clock()
        for action_id, b in list(self.state["blocks"].items()):
            expires = b.get("expires_at")
            if not expires or datetime.fromisoformat(expires.replace("Z", "+00:00")) > now:
                continue
            try:
                result = self._unblock(action_id, {"ip": b["ip"], "site": b["site"]}, State.EXPIRED)
            except IiswatchError as e:
                log.error("actions: could not lift expired block %s: %s", action_id, e.message)
                continue
            self._queue_report(action_id, result)

    # -- quarantine ------------------------------------------------------------------------

    def _quarantine(self, action_id: str, target: dict[str, Any]) -> Result:
        from iiswatch.respond.quarantine import Located, quarantine
        from iiswatch.respond.sites import pick_site, read_sites

        sites = read_sites(self.cfg.application_host_path())
        site = pick_site(sites, target.get("site") or self.cfg.site)

        def send(found: Located, data: bytes) -> None:
            try:
                self.client.evidence(self.host, action_id, str(found.path), found.sha256, data)
            except CollectorError as e:
                raise IiswatchError(f"evidence not stored, file left in place: {e}", "retry") from e

        found, dest = quarantine(
            site, str(target["url_path"]), self.quarantine_dir, action_id, sites, send
        )
        return Result(
            state=State.APPLIED,
            message=f"{found.path} ({found.size} bytes) archived as evidence and moved out "
            "of the web root",
            changes=[f"moved {found.path} -> {dest}"],
            sha256=found.sha256,
            size=found.size,
            quarantined_to=str(dest),
        )


def start_action_runner(
    cfg: ActionsConfig,
    host: str,
    state_dir: Path,
    collector: str,
    token: Callable[[], str],
    stop: threading.Event,
    *,
    ca: Path | None = None,
    timeout: float = 30.0,
) -> threading.Thread:
    client = ActionsClient(collector, token, ca=ca, timeout=timeout)
    runner = ActionRunner(cfg, host, state_dir, client)
    log.info(
        "actions: polling every %.0fs; allowed: %s",
        cfg.poll_seconds,
        ", ".join(cfg.allow) or "none",
    )

    def loop() -> None:
        while not stop.is_set():
            try:
                runner.round()
            except Exception:  # never let the responder take the shipping agent down
                log.exception("actions: round failed")
            stop.wait(cfg.poll_seconds)
        client.close()

    t = threading.Thread(target=loop, name="iiswatch-actions", daemon=True)
    t.start()
    return t
