"""The demo Request Tracker image (docker/rt/Dockerfile) run the way the README runs it:
docker-compose builds it from the local Debian base and starts the `servicedesk` profile's `rt`
with the stack's rt_token secret; it must turn healthy and take a ticket from iiswatch's own RT
destination through REST 2, with iiswatch's custom fields. About 2.5 min cold (the RT packages)
and 15 s cached. Every step that fails says which one broke and shows what it printed.

The published port is IISWATCH_TEST_DOCKER_PORT + 2 (default 18412); the Compose project,
its volumes and the image tag (`iiswatch/rt:test`) are the test's own and removed after it,
except the image (the layer cache for the next run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iiswatch.alerting.config import parse_config
from iiswatch.alerting.destinations import build
from iiswatch.errors import DeliveryError
from tests.docker.stack import PORT_BASE, ROOT, build_base, wait_for
from tests.integration.alerting_support import Rt, unique_alert

RT_PORT = PORT_BASE + 2
PROJECT = f"iiswatch-rt-test-{os.getpid()}"
TAIL = 3000  # characters of a failed step's output in the failure message


class Servicedesk:
    """docker-compose on docker/compose.yaml + the offline file (the local base; no registry)
    + an override of the test's own: secrets from tmp files, and the stack's fixed-name
    certs volume renamed, so `down -v` cannot remove another stack's `iiswatch-certs`."""

    def __init__(self, tmp: Path) -> None:
        self.token = "1-14-" + os.urandom(16).hex()  # RT's form; what generate.sh writes
        self.token_file = tmp / "rt_token"
        self.token_file.write_text(self.token)
        files = {"rt_token": self.token_file}
        for name in ("elastic_password", "kibana_password"):  # unused by rt, declared in the file
            files[name] = tmp / name
            files[name].write_text(os.urandom(12).hex())
        for f in files.values():
            f.chmod(0o644)
        self.override = tmp / "compose.test.yaml"
        self.override.write_text(
            json.dumps(  # JSON is YAML
                {
                    "secrets": {k: {"file": str(v)} for k, v in files.items()},
                    "volumes": {"certs": {"name": f"{PROJECT}-certs"}},
                }
            )
        )
        self.url = f"http://127.0.0.1:{RT_PORT}"

    def _run(self, args: tuple[str, ...], timeout: float) -> tuple[list[str], Any]:
        cmd = [
            "docker-compose",
            "-p",
            PROJECT,
            "-f",
            "compose.yaml",
            "-f",
            "compose.offline.yaml",
            "-f",
            str(self.override),
            "--profile",
            "servicedesk",
            *args,
        ]
        env = {**os.environ, "RT_PORT": str(RT_PORT), "RT_IMAGE": "iiswatch/rt:test"}
        return cmd, subprocess.run(
            cmd, cwd=ROOT / "docker", env=env, capture_output=True, text=True, timeout=timeout
        )

    def compose(self, *args: str, what: str, timeout: float = 900) -> str:
        try:
            cmd, done = self._run(args, timeout)
        except subprocess.TimeoutExpired as e:
            pytest.fail(
                f"{what}: `{' '.join(map(str, e.cmd))}` still running after {timeout:.0f}s",
                pytrace=False,
            )
        if done.returncode != 0:
            out = (done.stdout + done.stderr)[-TAIL:]
            pytest.fail(
                f"{what}: `{' '.join(cmd)}` exited {done.returncode}:\n{out}", pytrace=False
            )
        return done.stdout

    def container(self) -> str:
        cid = self.compose("ps", "-q", "rt", what="finding the rt container").strip()
        if not cid:
            pytest.fail("docker-compose started no rt container", pytrace=False)
        return cid

    def logs(self) -> str:
        _, done = self._run(("logs", "--no-color", "--tail", "40", "rt"), timeout=60)
        return str(done.stdout + done.stderr)[-TAIL:]

    def wait_healthy(self, timeout: float) -> None:
        cid = self.container()

        def healthy() -> bool:
            state = json.loads(
                subprocess.run(
                    ["docker", "inspect", "-f", "{{json .State}}", cid],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            if state["Status"] == "exited":
                pytest.fail(
                    f"rt exited ({state['ExitCode']}) before it was healthy:\n{self.logs()}",
                    pytrace=False,
                )
            return bool(state.get("Health", {}).get("Status") == "healthy")

        try:
            wait_for(healthy, timeout, "rt healthy", poll=2)
        except AssertionError as e:
            pytest.fail(
                f"{e} (the healthcheck: REST 2 with root's token):\n{self.logs()}", pytrace=False
            )

    def down(self) -> None:
        self.compose("down", "-v", what="removing the test's compose project", timeout=120)


@pytest.fixture
def servicedesk(tmp_path: Path) -> Iterator[Servicedesk]:
    if shutil.which("docker-compose") is None:
        pytest.fail(
            "docker-compose is not installed (apt-get install docker-compose)", pytrace=False
        )
    subprocess.run(["bash", "docker/engine.sh"], cwd=ROOT, check=True)
    sd = Servicedesk(tmp_path)
    try:
        yield sd
    finally:
        sd.down()


def test_rt_image_builds_turns_healthy_and_takes_a_ticket(servicedesk: Servicedesk) -> None:
    build_base()
    servicedesk.compose("build", "rt", what="building the RT image (docker/rt/Dockerfile)")
    servicedesk.compose("up", "-d", "rt", what="starting rt (--profile servicedesk)", timeout=300)
    servicedesk.wait_healthy(timeout=300)

    # the alerting service's way: the token comes from the rt_token secret's file
    cfg = parse_config(f"""
[destinations.servicedesk]
type = "request_tracker"
url = "{servicedesk.url}"
queue = "General"
token = "${{file:{servicedesk.token_file}}}"
timeout = "30s"
""")
    alert = unique_alert()
    try:
        result = build("servicedesk", cfg).deliver(alert)
    except DeliveryError as e:
        pytest.fail(
            f"iiswatch's RT destination could not open a ticket in the container: {e}\n"
            f"{servicedesk.logs()}",
            pytrace=False,
        )
    assert result.action == "created", result

    rt = Rt(servicedesk.url, servicedesk.token)
    fields = rt.custom_fields(str(result.ticket_id))
    assert fields.get("IiswatchAlertId") == [alert["alert_id"]], (
        f"the ticket lacks the alert id custom field (start-rt.sh's initialdata): {fields}"
    )
    assert rt.tickets_for_alert(str(alert["alert_id"])) == [str(result.ticket_id)], (
        "TicketSQL on the alert id custom field does not find the ticket"
    )
