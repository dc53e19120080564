"""docker/compose.yaml and its offline override are valid Compose files: Debian's
docker-compose 1.29 (what CI has) resolves them with `config`, which fails on any error."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _need_compose() -> None:
    # .ci/run installs it: in CI a missing docker-compose is a failure, not a skip
    if shutil.which("docker-compose") is None:
        missing = "docker-compose is not installed (apt-get install docker-compose)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.mark.parametrize(
    "files", [["compose.yaml"], ["compose.yaml", "compose.offline.yaml"]], ids=["online", "offline"]
)
def test_compose_config_is_valid(files: list[str]) -> None:
    _need_compose()
    args = [a for f in files for a in ("-f", f)]
    done = subprocess.run(
        ["docker-compose", *args, "config", "-q"], cwd=DOCKER, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_offline_stack_leaves_kibana_to_its_profile() -> None:
    """Kibana cannot be built offline: with the override it starts only with --profile kibana;
    Elasticsearch and the iiswatch services are built from the local base."""
    _need_compose()
    done = subprocess.run(
        ["docker-compose", "-f", "compose.yaml", "-f", "compose.offline.yaml", "config"],
        cwd=DOCKER, capture_output=True, text=True, check=True,
    )  # fmt: skip
    services = yaml.safe_load(done.stdout)["services"]
    for name in ("kibana", "kibana-password", "kibana-objects"):
        assert services[name]["profiles"] == ["kibana"]
    for name in ("elasticsearch", "setup", "collector", "alerting-a", "alerting-b"):
        assert services[name]["build"]["args"]["BASE"] == "iiswatch/debian:trixie", name
        assert "profiles" not in services[name]
    # the demo RT (servicedesk profile) too: RT 5 from Debian 13 on the same local base
    assert services["rt"]["build"]["args"]["BASE"] == "iiswatch/debian:trixie"
