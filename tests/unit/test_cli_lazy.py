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


def test_root_help_imports_no_sub_app_elasticsearch_or_rich() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['iiswatch', '--help']\n"
        "from iiswatch.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('elasticsearch', 'rich') "
        "or m.startswith('iiswatch.cli.')"
        " and m not in ('iiswatch.cli.main', 'iiswatch.cli.lazy')]\n"
        "print('HEAVY', sorted(heavy))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "search" in p.stdout and "HEAVY []" in p.stdout, p.stdout[-500:] + p.stderr


def test_search_help_imports_no_elasticsearch_client() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['iiswatch', 'search', '--help']\n"
        "from iiswatch.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] == 'elasticsearch'))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "--kql" in p.stdout and "HEAVY []" in p.stdout, p.stdout[-500:] + p.stderr
