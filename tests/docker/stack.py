"""The iiswatch stack in containers, driven by the Docker SDK for the tests: images built
from docker/ on the local Debian base, Elasticsearch on a private bridge network with its
HTTP port published on loopback, and the iiswatch containers (setup, collector, alerting)
on the host's network so that they also reach the test Request Tracker on 127.0.0.1.

Why the host network for iiswatch: the test RT listens on loopback only, and a container on
a bridge cannot reach the host's loopback. docker/compose.yaml puts everything on one bridge
network instead; the images and their entrypoints are the same."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BASE = "iiswatch/debian:trixie"
IIS_IMAGE = "iiswatch/iiswatch:test"
ES_IMAGE = "iiswatch/elasticsearch:test"
PORT_BASE = int(os.environ.get("IISWATCH_TEST_DOCKER_PORT", "18410"))


def wait_for(cond: Callable[[], bool], timeout: float, what: str, poll: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def build_base() -> None:
    """The local Debian base every image here starts from (debootstrap; skipped when present)."""
    subprocess.run(["bash", "docker/base/build.sh", "trixie", BASE], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def build_images(client: Any) -> dict[str, float]:
    """Base, iiswatch and Elasticsearch images; seconds each (layer cache makes reruns fast)."""
    took: dict[str, float] = {}
    t = time.monotonic()
    build_base()
    took["base"] = time.monotonic() - t
    # a TLS-inspecting proxy's CA, if this machine trusts one (see docker/site-ca/README.md)
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        dest = ROOT / "docker" / "site-ca" / crt.name
        if not dest.exists():
            shutil.copy(crt, dest)
    for tag, path, dockerfile in (
        (IIS_IMAGE, ROOT, "docker/iiswatch/Dockerfile"),
        (ES_IMAGE, ROOT / "docker" / "elasticsearch", "Dockerfile"),
    ):
        t = time.monotonic()
        client.images.build(path=str(path), dockerfile=dockerfile, tag=tag,
                            buildargs={"BASE": BASE}, network_mode="host", rm=True)  # fmt: skip
        took[tag] = time.monotonic() - t
    return took


@dataclass
class Stack:
    client: Any
    workdir: Path
    prefix: str = field(default_factory=lambda: f"iiswatch-test-{os.getpid()}")
    containers: list[Any] = field(default_factory=list)

    @property
    def es_port(self) -> int:
        return PORT_BASE

    @property
    def collector_port(self) -> int:
        return PORT_BASE + 1

    @property
    def password_file(self) -> Path:
        return self.workdir / "elastic_password"

    def volume(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def iiswatch_env(self) -> dict[str, str]:
        return {
            "IISWATCH_STACK_ES_URL": f"http://127.0.0.1:{self.es_port}",
            "ELASTIC_PASSWORD_FILE": "/run/secrets/elastic_password",
        }

    def secret_mount(self) -> dict[str, dict[str, str]]:
        return {str(self.password_file): {"bind": "/run/secrets/elastic_password", "mode": "ro"}}

    # --- lifecycle ----------------------------------------------------------------------

    def start_elasticsearch(self) -> Any:
        self.password_file.write_text(secrets.token_urlsafe(18))
        self.password_file.chmod(0o644)  # read by uid 1000 in the containers
        self.client.networks.create(self.prefix, driver="bridge")
        es = self.client.containers.run(
            ES_IMAGE, name=f"{self.prefix}-es", detach=True, network=self.prefix,
            environment={"discovery.type": "single-node", "ES_JAVA_OPTS": "-Xms512m -Xmx512m",
                         "ELASTIC_PASSWORD_FILE": "/run/secrets/elastic_password"},
            volumes={**self.secret_mount(),
                     self.volume("es-config"): {"bind": "/usr/share/elasticsearch/config",
                                                "mode": "rw"}},
            ports={"9200/tcp": ("127.0.0.1", self.es_port)},
        )  # fmt: skip
        self.containers.append(es)
        return es

    def wait_healthy(self, container: Any, timeout: float) -> None:
        def healthy() -> bool:
            container.reload()
            state = container.attrs["State"]
            if state["Status"] == "exited":
                raise AssertionError(f"{container.name} exited:\n{self.logs(container)}")
            return bool(state.get("Health", {}).get("Status") == "healthy")

        wait_for(healthy, timeout, f"{container.name} healthy")

    def one_shot(self, image: str, command: list[str], **kwargs: Any) -> str:
        """Run a container to completion; its output, or an AssertionError with it."""
        c = self.client.containers.run(image, command, detach=True, **kwargs)
        try:
            rc = c.wait(timeout=600)["StatusCode"]
            out = c.logs(stdout=True, stderr=False).decode()
            assert rc == 0, f"{command} exited {rc}:\n{c.logs().decode()[-3000:]}"
            return str(out)
        finally:
            c.remove(force=True, v=True)  # and its anonymous volumes (the images declare some)

    def make_certs(self) -> None:
        script = (
            "set -e; cd /usr/share/elasticsearch; "
            "bin/elasticsearch-certutil ca --silent --pem --out /tmp/ca.zip; "
            "unzip -qo /tmp/ca.zip -d /certs; "
            "printf 'instances:\\n  - name: collector\\n    dns: [collector, localhost]\\n"
            "    ip: [127.0.0.1]\\n' > /tmp/i.yml; "
            "bin/elasticsearch-certutil cert --silent --pem --ca-cert /certs/ca/ca.crt "
            "--ca-key /certs/ca/ca.key --in /tmp/i.yml --out /tmp/c.zip; "
            "unzip -qo /tmp/c.zip -d /certs; chown -R 1000:1000 /certs"
        )
        self.one_shot(ES_IMAGE, ["-c", script], entrypoint=["bash"], user="0",
                      environment={"ES_JAVA_OPTS": "-Xms64m -Xmx256m"},
                      volumes={self.volume("certs"): {"bind": "/certs", "mode": "rw"}})  # fmt: skip

    def read_file(self, volume: str, path: str) -> bytes:
        """A file from a named volume (through a throwaway container)."""
        c = self.client.containers.create(
            IIS_IMAGE, ["true"], volumes={self.volume(volume): {"bind": "/v", "mode": "ro"}}
        )
        try:
            stream, _ = c.get_archive(f"/v/{path}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.getmembers()[0]
                f = tar.extractfile(member)
                assert f is not None
                return f.read()
        finally:
            c.remove(force=True, v=True)  # and its anonymous volumes (the images declare some)

    def iiswatch(self, command: list[str], **volumes: str) -> str:
        """A one-shot iiswatch command on the host network with the state volume."""
        mounts = {**self.secret_mount(),
                  self.volume("state"): {"bind": "/var/lib/iiswatch", "mode": "rw"}}  # fmt: skip
        for vol, path in volumes.items():
            mounts[self.volume(vol.replace("_", "-"))] = {"bind": path, "mode": "rw"}
        return self.one_shot(IIS_IMAGE, command, network_mode="host",
                             environment=self.iiswatch_env(), volumes=mounts)  # fmt: skip

    def start_service(self, name: str, command: list[str], volumes: dict[str, Any],
                      env: dict[str, str] | None = None) -> Any:  # fmt: skip
        c = self.client.containers.run(
            IIS_IMAGE, command, name=f"{self.prefix}-{name}", detach=True, network_mode="host",
            environment={**self.iiswatch_env(), **(env or {})},
            volumes={**self.secret_mount(),
                     self.volume("state"): {"bind": "/var/lib/iiswatch", "mode": "rw"},
                     **volumes},
        )  # fmt: skip
        self.containers.append(c)
        return c

    def logs(self, container: Any, tail: int = 60) -> str:
        try:
            return str(container.logs(tail=tail).decode(errors="replace"))
        except Exception as e:  # already removed
            return f"(no logs: {e})"

    def teardown(self) -> None:
        for c in self.containers:
            with contextlib.suppress(Exception):
                c.remove(force=True, v=True)
        for net in self.client.networks.list(names=[self.prefix]):
            net.remove()
        for vol in self.client.volumes.list(filters={"name": self.prefix}):
            with contextlib.suppress(Exception):
                vol.remove(force=True)
