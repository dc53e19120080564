"""Finding a Java >= 21 for Elasticsearch: version parsing, and the search over fake JDK
directories built from real files (a `release` file, or a `bin/java` script that prints what a
real JDK prints on stderr)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from iiswatch.elastic.java import (
    _os_release,
    candidates,
    find_java,
    inspect,
    install_hint,
    major_version,
    parse_release,
    parse_version_output,
)
from iiswatch.errors import NodeError

TEMURIN_25_RELEASE = textwrap.dedent("""\
    IMPLEMENTOR="Eclipse Adoptium"
    IMPLEMENTOR_VERSION="Temurin-25.0.3+9"
    JAVA_RUNTIME_VERSION="25.0.3+9-LTS"
    JAVA_VERSION="25.0.3"
    JAVA_VERSION_DATE="2026-04-21"
    MODULES="java.base java.compiler"
""")

OPENJDK_17_OUTPUT = textwrap.dedent("""\
    openjdk version "17.0.15" 2025-04-15
    OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)
    OpenJDK 64-Bit Server VM (build 17.0.15+6-Debian-1deb12u1, mixed mode, sharing)
""")


def fake_jdk(root: Path, name: str, release: str | None = None, prints: str | None = None) -> Path:
    """A JDK directory: `release` becomes its release file, `prints` what `bin/java -version`
    writes to stderr."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    body = "" if prints is None else f"cat >&2 <<'EOF'\n{prints}EOF\n"
    java.write_text(f"#!/bin/sh\n{body}exit 0\n")
    java.chmod(0o755)
    if release is not None:
        (home / "release").write_text(release)
    return home


def test_release_file_version_is_read_quoted_or_not() -> None:
    assert parse_release(TEMURIN_25_RELEASE) == "25.0.3"
    assert parse_release("JAVA_VERSION=21.0.4\n") == "21.0.4"
    assert parse_release('IMPLEMENTOR="x"\n') is None


def test_java_version_output_is_parsed_in_old_and_new_formats() -> None:
    assert parse_version_output(OPENJDK_17_OUTPUT) == "17.0.15"
    assert parse_version_output('java version "1.8.0_412"\n') == "1.8.0_412"
    assert parse_version_output('openjdk version "26-ea" 2026-03-17\n') == "26-ea"
    assert parse_version_output("bash: java: command not found") is None


@pytest.mark.parametrize(
    ("version", "major"),
    [("25.0.3", 25), ("21", 21), ("17.0.15", 17), ("1.8.0_412", 8), ("26-ea", 26)],
)
def test_major_version_follows_both_numbering_schemes(version: str, major: int) -> None:
    assert major_version(version) == major


def test_a_jdk_is_identified_by_its_release_file_without_running_java(tmp_path: Path) -> None:
    # The script prints Java 17: if it were run, the answer would be wrong.
    home = fake_jdk(tmp_path, "temurin-25", TEMURIN_25_RELEASE, prints=OPENJDK_17_OUTPUT)
    java = inspect(home)
    assert java is not None
    assert (java.major, java.version) == (25, "25.0.3")


def test_a_jdk_without_a_release_file_is_asked_for_its_version(tmp_path: Path) -> None:
    home = fake_jdk(tmp_path, "openjdk-17", prints=OPENJDK_17_OUTPUT)
    java = inspect(home)
    assert java is not None
    assert java.major == 17


def test_a_directory_without_bin_java_is_not_a_jdk(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    assert inspect(tmp_path / "docs") is None


def test_the_newest_jdk_of_21_or_later_is_chosen(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-17-openjdk-amd64", prints=OPENJDK_17_OUTPUT)
    fake_jdk(tmp_path, "java-21-openjdk-amd64", 'JAVA_VERSION="21.0.4"\n')
    fake_jdk(tmp_path, "temurin-25-jdk-amd64", TEMURIN_25_RELEASE)
    assert find_java(tmp_path, env={}).home == tmp_path / "temurin-25-jdk-amd64"


def test_symlinked_aliases_of_one_jdk_are_listed_once(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-21-openjdk-amd64", 'JAVA_VERSION="21.0.4"\n')
    (tmp_path / "java-1.21.0-openjdk-amd64").symlink_to(tmp_path / "java-21-openjdk-amd64")
    assert len(candidates(tmp_path)) == 1


def test_only_old_jdks_is_an_error_that_says_what_to_install(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-17-openjdk-amd64", prints=OPENJDK_17_OUTPUT)
    with pytest.raises(NodeError) as err:
        find_java(tmp_path, env={})
    assert "no Java 21 or newer" in err.value.message
    assert err.value.hint and "ES_JAVA_HOME" in err.value.hint
    assert err.value.exit_code == 3


def test_es_java_home_wins_over_newer_jdks(tmp_path: Path) -> None:
    fake_jdk(tmp_path / "jvm", "temurin-25-jdk-amd64", TEMURIN_25_RELEASE)
    mine = fake_jdk(tmp_path, "my-jdk-21", 'JAVA_VERSION="21.0.4"\n')
    assert find_java(tmp_path / "jvm", env={"ES_JAVA_HOME": str(mine)}).home == mine


def test_es_java_home_pointing_at_java_17_is_refused(tmp_path: Path) -> None:
    old = fake_jdk(tmp_path, "jdk17", prints=OPENJDK_17_OUTPUT)
    with pytest.raises(NodeError, match=r"is Java 17\.0\.15"):
        find_java(tmp_path / "none", env={"ES_JAVA_HOME": str(old)})


def test_es_java_home_without_java_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="does not contain a working bin/java"):
        find_java(tmp_path, env={"ES_JAVA_HOME": str(tmp_path / "nowhere")})


# --- what `es up` tells a user with no Java 21 -------------------------------------------

DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
DEBIAN_13 = 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_ID="13"\n'
UBUNTU_2404 = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
ROCKY_9 = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.5"\n'


@pytest.mark.parametrize("release", [DEBIAN_13, UBUNTU_2404])
def test_hint_names_the_distribution_package_where_there_is_one(release: str) -> None:
    hint = install_hint(release)
    assert hint.startswith("apt-get install openjdk-21-jre-headless")
    assert "ES_JAVA_HOME" in hint


def test_hint_on_debian_12_says_there_is_no_package_and_what_instead() -> None:
    hint = install_hint(DEBIAN_12)
    assert "Debian 12 has no Java 21 package" in hint
    assert "temurin-21-jre" in hint and "docker/elasticsearch" in hint
    assert "openjdk-21" not in hint


def test_hint_on_rhel_family_uses_dnf() -> None:
    assert install_hint(ROCKY_9).startswith("dnf install java-21-openjdk-headless")


def test_hint_without_os_release_still_says_what_to_do() -> None:
    assert "temurin-21-jre" in install_hint("")


def test_no_java_error_carries_this_systems_hint(tmp_path: Path) -> None:
    with pytest.raises(NodeError) as err:
        find_java(tmp_path / "empty", env={})
    assert err.value.hint == install_hint(_os_release())
