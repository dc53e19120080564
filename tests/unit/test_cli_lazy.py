"""The root help lists every command from cli/lazy.py without importing it; each entry
loads, and its short help is the real command's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from iiswatch.cli.lazy import LAZY, load_command


@pytest.mark.parametrize("name", sorted(LAZY))
def test_each_lazy_command_loads_and_its_listed_help_is_its_own(name: str) -> None:
    cmd = load_command(name)
    assert cmd.name == name
    real = " ".join((cmd.help or "").split("\n\n")[0].split())
    assert real == LAZY[name][2]


def _modules_after(argv: list[str]) -> tuple[str, list[str]]:
    """Run the CLI with `argv` in a fresh interpreter: its output and the modules it loaded."""
    code = (
        "import sys\n"
        f"sys.argv = {['iiswatch', *argv]!r}\n"
        "from iiswatch.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    out, _, modules = p.stdout.rpartition("MODULES ")
    assert modules, p.stdout[-500:] + p.stderr
    return out, modules.split()


# Each of these costs more to import than the whole answer to `--help` (pydantic: Typer
# builds a pydantic adapter for any option whose value is not already a bool).
HEAVY = ("elasticsearch", "rich", "pydantic")


def test_root_help_imports_no_sub_app_elasticsearch_rich_or_pydantic() -> None:
    out, modules = _modules_after(["--help"])
    heavy = [
        m
        for m in modules
        if m.split(".")[0] in HEAVY
        or (m.startswith("iiswatch.cli.") and m not in ("iiswatch.cli.main", "iiswatch.cli.lazy"))
    ]
    assert "search" in out and heavy == []


def test_search_help_imports_no_elasticsearch_client_and_no_pydantic() -> None:
    out, modules = _modules_after(["search", "--help"])
    assert "--kql" in out
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []


def test_search_count_and_its_error_import_no_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    """A count prints one number and an unreachable backend two plain lines: neither needs
    rich, whose import costs more than the rest of the command."""
    monkeypatch.setenv("IISWATCH_CONFIG", "/nonexistent/iiswatch.toml")
    monkeypatch.setenv("IISWATCH_ES_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("IISWATCH_ES_API_KEY", "unused")
    _, modules = _modules_after(["search", "*", "--count"])
    assert "elasticsearch" in modules  # it did get as far as the client
    assert [m for m in modules if m.split(".")[0] == "rich"] == []
