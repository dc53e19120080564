"""The config loader: every config file and every `IISWATCH_*` environment variable is read
here, and every problem in them is reported the same way, `FILE:LINE: a.b.c: what is wrong`,
all at once, with a hint.

The models stay with their subjects (Elasticsearch connection: iiswatch/config.py; alerting
and its `[service]`: alerting/config.py; the agent: ingest/agent/config.py); this module turns
a file and the environment into one of them. Hand-written rather than pydantic-settings:
iiswatch's files are TOML tables with per-purpose sub-tables and secret references, and the
errors must carry line numbers, which the library does not give.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError

from iiswatch.errors import ConfigError
from iiswatch.times import parse_duration

M = TypeVar("M", bound=BaseModel)

# Every environment variable iiswatch reads, and what it is for (README, `--help`).
ENVIRONMENT = {
    "IISWATCH_HOME": "state directory (node data, credentials, checkpoints)",
    "IISWATCH_CACHE": "download cache (the Elasticsearch distribution)",
    "IISWATCH_CONFIG": "the Elasticsearch config file (default ~/.config/iiswatch/config.toml)",
    "IISWATCH_ALERTING_CONFIG": "the alerting config file (default ~/.config/iiswatch/"
    "alerting.toml)",
    "IISWATCH_RULES_DIR": "folder of rule files (default: the installed searches/)",
    "IISWATCH_ES_URL": "an existing cluster's URL, or its nodes' URLs comma-separated "
    "(instead of the local node)",
    "IISWATCH_ES_API_KEY": "its API key",
    "IISWATCH_ES_USERNAME": "or a user name",
    "IISWATCH_ES_PASSWORD": "and password",
    "IISWATCH_ES_CA_CERTS": "the CA that signed its certificate",
    "IISWATCH_ES_VERSION": "Elasticsearch version `es up` installs",
    "IISWATCH_ES_PORT": "HTTP port of the local node",
    "IISWATCH_DEBUG": "print tracebacks (set by --debug)",
}
# Keys whose values are never echoed in an error (they may hold a secret).
SECRET_KEYS = frozenset({"token", "password", "api_key", "url", "headers", "env", "auth"})


def env(name: str) -> str | None:
    """An iiswatch environment variable; unset and empty are the same (None)."""
    if name not in ENVIRONMENT:
        raise AssertionError(f"{name} is not in iiswatch.settings.ENVIRONMENT")
    return os.environ.get(name) or None


def xdg_dir(var: str, default: str) -> Path:
    """An XDG base directory (`$XDG_DATA_HOME`, ...), else its default under the home."""
    return Path(os.environ.get(var) or Path.home() / default)


def user_config_dir() -> Path:
    """`$XDG_CONFIG_HOME/iiswatch`, else ~/.config/iiswatch."""
    return xdg_dir("XDG_CONFIG_HOME", ".config") / "iiswatch"


def _duration(value: Any) -> timedelta:
    """A duration (iiswatch.times), or a bare number of seconds as TOML allows."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return parse_duration(value)


# A duration setting in a config file.
Duration = Annotated[timedelta, BeforeValidator(_duration)]


class TomlFile:
    """A TOML config file read once: its tables, its name for messages, and the lines that
    let a problem found later (by validation) say where it is."""

    def __init__(self, text: str, where: str) -> None:
        self.where = where
        self.lines = text.splitlines()
        try:
            self.data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            # tomllib says "... (at line 3, column 7)": lead with the place, as elsewhere
            m = re.search(r"\(at line (\d+), column (\d+)\)$", str(e))
            msg = str(e)[: m.start()].strip() if m else str(e)
            place = f"{where}:{m.group(1)}:{m.group(2)}" if m else where
            raise ConfigError(f"{place}: {msg}", "fix the TOML syntax") from e

    @classmethod
    def read(
        cls, path: Path, *, what: str = "config file", missing_hint: str | None = None
    ) -> TomlFile:
        """The file at `path`; a missing file is a ConfigError with `missing_hint`, or an
        empty file when that is None (an optional config file)."""
        try:
            return cls(path.read_text(encoding="utf-8"), str(path))
        except FileNotFoundError:
            if missing_hint is None:
                return cls("", str(path))
            raise ConfigError(f"no {what} at {path}", missing_hint) from None
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}", "check its permissions") from e

    def line_of(self, loc: Iterable[str | int]) -> int | None:
        """The line that sets `loc` (a.b.c), else the line of its nearest parent table;
        None when neither is in the file (a default, or a missing setting at the top)."""
        want = [str(p) for p in loc if isinstance(p, str)]
        table: tuple[str, ...] = ()
        best: tuple[int, int] | None = None  # (depth matched, line number)
        for n, raw in enumerate(self.lines, 1):
            line = raw.strip()
            if header := re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line):
                table = _keys(header.group(1))
                path = table
            elif key := re.match(r"^([A-Za-z0-9_.\-\"' ]+?)\s*=", line):
                path = table + _keys(key.group(1))
            else:
                continue
            if _within(path, want) and (best is None or len(path) > best[0]):
                best = (len(path), n)
        return best[1] if best else None

    def validate(
        self,
        model: type[M],
        data: dict[str, Any],
        what: str,
        hint: str,
        origins: dict[tuple[str, ...], str] | None = None,
    ) -> M:
        """`data` (this file's tables, with anything laid over them) as `model`, or a
        ConfigError listing every problem as `FILE:LINE: a.b.c: message (got value)`.
        `origins` names the environment variable a laid-over key came from, so its problem
        blames the variable rather than the file."""
        try:
            return model.model_validate(data)
        except ValidationError as e:
            problems = [self.problem(err, origins=origins) for err in e.errors()]
            if len(problems) == 1:
                raise ConfigError(problems[0], hint) from e
            raise ConfigError(
                f"{len(problems)} problem(s) in the {what}:\n  " + "\n  ".join(problems), hint
            ) from e

    def problem(
        self,
        err: Any,
        prefix: tuple[str, ...] = (),
        origins: dict[tuple[str, ...], str] | None = None,
    ) -> str:
        # union members show up in the location as their tag ("request_tracker"); keep them,
        # they tell which kind of destination was being checked
        loc = (*prefix, *err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
        # never echo what may be a secret: secret fields, and unknown keys (a misspelt `tokn`)
        if SECRET_KEYS & {str(p) for p in loc} or err["type"] in ("extra_forbidden", "missing"):
            shown = ""
        var = (origins or {}).get(tuple(str(p) for p in loc))
        if var:
            return f"{var}: {msg}{shown}"
        line = self.line_of(loc)
        place = f"{self.where}:{line}" if line else self.where
        return f"{place}: {'.'.join(str(p) for p in loc)}: {msg}{shown}"


def _keys(text: str) -> tuple[str, ...]:
    return tuple(k.strip().strip("\"'") for k in text.split("."))


def _within(path: tuple[str, ...], want: list[str]) -> bool:
    """`path` leads to `want`: its keys appear in `want` in order, from the first (a union's
    tag, such as a destination's type, may stand between them in a validation error)."""
    if not path or not want or path[0] != want[0]:
        return False
    rest = iter(want)
    return all(any(k == w for w in rest) for k in path)
