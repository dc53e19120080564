"""Rule files → `Rule` models, with every problem of every file reported at its line and
column (`searches/x.yaml:14:3: threshold.value: ... (hint)`), never just the first."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from iiswatch.environment import env
from iiswatch.errors import RuleError
from iiswatch.rules.model import Rule, shape_issues
from iiswatch.times import DURATION_HINT

RULES_DIR_ENV = "IISWATCH_RULES_DIR"
RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or, as a warning, worth knowing) about a rule file, where it is."""

    path: str
    line: int  # 1-based
    col: int  # 1-based
    field: str  # dotted location in the rule, "" for the file as a whole
    message: str
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.col}: "
        what = f"{self.field}: " if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{what}{self.message}{hint}"


class SourceMap:
    """Line and column (1-based) of any location in a loaded YAML document."""

    def __init__(self, root: Any) -> None:
        self.root = root

    def locate(self, loc: Sequence[str | int]) -> tuple[int, int, list[str | int]]:
        """The position of the deepest node on `loc` that exists, and the part of `loc`
        that led there (pydantic adds union member names that are not in the file)."""
        node = self.root
        line, col = _start(node)
        walked: list[str | int] = []
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                kline, kcol = node.lc.key(part)
                vline, vcol = node.lc.value(part)
                child = node[part]
                # point at the value for scalars, at the key for sections and lists
                if isinstance(child, CommentedMap | CommentedSeq):
                    line, col = kline + 1, kcol + 1
                else:
                    line, col = vline + 1, vcol + 1
                node = child
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                iline, icol = node.lc.item(part)
                line, col = iline + 1, icol + 1
                node = node[part]
            else:
                break
            walked.append(part)
        return line, col, walked

    def key_position(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """Where the key of `loc` is written (for unknown keys, point at the key itself)."""
        parent, _, _ = self.locate(loc[:-1])
        node = self.root
        for part in loc[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return parent, 1
        last = loc[-1] if loc else None
        if isinstance(node, CommentedMap) and last in node:
            kline, kcol = node.lc.key(last)
            return kline + 1, kcol + 1
        line, col, _ = self.locate(loc)
        return line, col


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line + 1, lc.col + 1
    return 1, 1


def plain(node: Any) -> Any:
    """ruamel's round-trip types → plain dicts, lists, str, int, float, bool, date."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


class _DatesAsText(RoundTripConstructor):
    """Leaves dates as text for pydantic to check: an impossible date such as 2027-13-40
    becomes a located field error instead of a crash inside the YAML library."""


_DatesAsText.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def yaml_rt(*, dates_as_text: bool = False) -> YAML:
    """The one YAML reader/writer for rule files: round-trip, so `fmt` keeps comments."""
    y = YAML(typ="rt")
    if dates_as_text:
        y.Constructor = _DatesAsText
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap: flow lists and long queries stay as written
    y.indent(mapping=2, sequence=4, offset=2)
    return y


@dataclass(frozen=True)
class LoadedRule:
    rule: Rule
    path: Path
    source: SourceMap = field(repr=False, compare=False)

    @property
    def display_path(self) -> str:
        return display(self.path)

    def problem(
        self,
        loc: Sequence[str | int],
        message: str,
        hint: str | None = None,
        severity: Literal["error", "warning"] = "error",
    ) -> Problem:
        line, col, _ = self.source.locate(loc)
        return Problem(self.display_path, line, col, _dotted(loc), message, hint, severity=severity)


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- one file -----------------------------------------------------------------------------


def parse_rule(text: str, path: Path) -> tuple[LoadedRule | None, list[Problem]]:
    """Parse and validate one rule file's text: the rule, or every problem found."""
    where = display(path)
    try:
        root = yaml_rt(dates_as_text=True).load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = " ".join(str(x) for x in (e.context, e.problem) if x) or str(e)
        return None, [Problem(where, line, col, "", f"YAML: {msg}", "fix the YAML syntax")]
    except YAMLError as e:
        return None, [Problem(where, 1, 1, "", f"YAML: {e}", "fix the YAML syntax")]
    if not isinstance(root, CommentedMap):
        return None, [
            Problem(where, 1, 1, "", "a rule file is a YAML mapping", "start with `id: <uuid>`")
        ]
    smap = SourceMap(root)
    data = plain(root)
    problems: list[Problem] = []
    for loc, message, hint in shape_issues(data):
        line, col, _ = smap.locate(loc)
        problems.append(Problem(where, line, col, _dotted(loc), message, hint))
    try:
        rule = Rule.model_validate(data)
    except ValidationError as e:
        problems.extend(_validation_problems(e, smap, where))
        rule = None
    problems = _dedup(problems)
    if problems or rule is None:
        return None, sorted(problems, key=lambda p: (p.line, p.col))
    return LoadedRule(rule, path, smap), []


def load_rule_file(path: Path) -> LoadedRule:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(f"cannot read {path}", [f"{display(path)}:1:1: {e}"]) from e
    loaded, problems = parse_rule(text, path)
    if loaded is None:
        raise RuleError(f"{display(path)} is not a valid rule", [str(p) for p in problems])
    return loaded


def _validation_problems(e: ValidationError, smap: SourceMap, where: str) -> list[Problem]:
    out = []
    for err in e.errors():
        if err["type"] == "rule_shape":
            continue  # reported from shape_issues with a precise location
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            line, col = smap.key_position(loc)
            walked = list(loc)
            message = "unknown key"
        else:
            line, col, walked = smap.locate(loc)
            if kind == "missing":
                walked = list(loc)
            message = err["msg"]
            if kind != "missing" and _is_scalar(err.get("input")) and "got " not in message:
                message += f", got {_short(err.get('input'))}"
        out.append(Problem(where, line, col, _dotted(walked), message, _hint(err, loc)))
    return out


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | date) or value is None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dedup(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[int, int, str]] = set()
    out = []
    for p in problems:
        key = (p.line, p.col, p.field)
        if key in seen and p.field:  # union members repeat one mistake
            continue
        seen.add(key)
        out.append(p)
    return out


_PATTERN_HINTS = {
    "tactic": "a MITRE ATT&CK tactic id such as TA0003",
    "technique": "a technique id such as T1505 or T1505.003",
    "name": "lowercase letters, digits and _, starting with a letter",
    "index": "an index name or pattern such as iis-access-*",
}
_TYPE_HINTS = {
    "uuid_parsing": "a UUID such as 3f0c6a52-8d0e-4d8e-9a51-2f1c4b7e9d10; "
    "`iiswatch rules new` writes a fresh one",
    "uuid_type": "a UUID such as 3f0c6a52-8d0e-4d8e-9a51-2f1c4b7e9d10",
    "duration": DURATION_HINT,
    "cidr": "an address or network such as 10.20.0.0/16 or 2001:db8::/32",
    "date_from_datetime_parsing": "a date such as 2027-06-30",
    "date_parsing": "a date such as 2027-06-30",
    "date_type": "a date such as 2027-06-30",
    "query_choice": "`lucene: 'field:value'` or `query: {bool: {filter: [...]}}`",
    "exception_empty": "e.g. `cidrs: [10.20.0.0/16]`",
}


def _hint(err: Any, loc: tuple[Any, ...]) -> str | None:
    kind = err["type"]
    if kind == "string_type" and isinstance(err.get("input"), dict):
        return "a `: ` in plain text starts a mapping; put the text in quotes or use `>-`"
    if kind in _TYPE_HINTS:
        return _TYPE_HINTS[kind]
    if kind == "missing":
        return f"add `{loc[-1]}:`" if loc else None
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        if not allowed:
            return None
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            return f"did you mean `{close[0]}`?"
        return "allowed here: " + ", ".join(allowed)
    if kind == "string_pattern_mismatch":
        last = next((p for p in reversed(loc) if isinstance(p, str)), "")
        return _PATTERN_HINTS.get(last, "a dotted field name such as source.ip")
    if kind in ("dict_type", "too_short", "too_long") and loc and loc[-1] in ("query",):
        return "one query type at the top, e.g. `query: {bool: {filter: [...]}}`"
    return None


def _allowed_keys(loc: Sequence[str | int]) -> list[str]:
    model: Any = Rule
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        info = model.model_fields.get(part)
        if info is None:
            return []
        model = _inner_model(info.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside Optional[...], list[...] or Annotated[...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


# -- many files ---------------------------------------------------------------------------


def default_rules_dir() -> Path:
    """`$IISWATCH_RULES_DIR`, else the `searches/` folder installed with iiswatch."""
    if configured := env(RULES_DIR_ENV):
        return Path(configured)
    return Path(str(resources.files("iiswatch.searches")))


def rule_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.exists():
        raise RuleError(
            f"no rules at {root}",
            [],
            hint=f"pass a folder or file, or set {RULES_DIR_ENV}",
        )
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in RULE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def scan_rules(root: Path | None = None) -> tuple[list[LoadedRule], list[Problem]]:
    """Every valid rule under `root` (a folder or one file), and every problem found,
    including ids and names used by more than one file."""
    loaded: list[LoadedRule] = []
    problems: list[Problem] = []
    for path in rule_files(root or default_rules_dir()):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(display(path), 1, 1, "", f"cannot read: {e}"))
            continue
        rule, found = parse_rule(text, path)
        problems.extend(found)
        if rule is not None:
            loaded.append(rule)
    problems.extend(_duplicates(loaded))
    return loaded, problems


def _duplicates(loaded: list[LoadedRule]) -> list[Problem]:
    out = []
    for attr in ("id", "name"):
        first: dict[str, LoadedRule] = {}
        for lr in loaded:
            value = str(getattr(lr.rule, attr)).lower() if attr == "name" else lr.rule.rule_id
            if value in first:
                other = first[value]
                line, col, _ = other.source.locate((attr,))
                out.append(
                    lr.problem(
                        (attr,),
                        f"{attr} already used by {other.display_path}:{line}:{col}",
                        "each rule needs its own id and name"
                        + ("; `iiswatch rules new` makes a fresh id" if attr == "id" else ""),
                    )
                )
            else:
                first[value] = lr
    return out


def load_rules(root: Path | None = None) -> list[LoadedRule]:
    """Every rule under `root` (default: `default_rules_dir()`); a RuleError listing every
    problem when any file is invalid."""
    loaded, problems = scan_rules(root)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RuleError(
            f"{len(errors)} problem(s) in the rule files",
            [str(p) for p in errors],
            hint="fix them, then `iiswatch rules validate`",
        )
    return loaded


def select(loaded: list[LoadedRule], refs: Sequence[str]) -> list[LoadedRule]:
    """The rules named by id, id prefix, name (case-insensitive), or a part of a name.

    An exact id or name wins; otherwise the reference must pick out exactly one rule by id
    prefix or name substring, and an ambiguous one is an error listing the candidates.
    """
    if not refs:
        return list(loaded)
    chosen: list[LoadedRule] = []
    for ref in refs:
        want = ref.strip().lower()
        found = [lr for lr in loaded if want in (lr.rule.rule_id, lr.rule.name.lower())]
        if not found and want:
            found = [
                lr
                for lr in loaded
                if lr.rule.rule_id.startswith(want) or want in lr.rule.name.lower()
            ]
            if len(found) > 1:
                raise RuleError(
                    f"{ref!r} matches {len(found)} rules",
                    [f"{lr.rule.rule_id[:8]}  {lr.rule.name}" for lr in found],
                    hint="give more of the id or the name",
                )
        if not found:
            raise RuleError(
                f"no rule {ref!r}", [], hint="`iiswatch rules list` shows ids and names"
            )
        chosen.extend(lr for lr in found if lr not in chosen)
    return chosen


def expired_exception_warnings(loaded: Iterable[LoadedRule], today: date) -> list[Problem]:
    """A warning for each exception past its `expires` date (it no longer applies)."""
    out = []
    for lr in loaded:
        for i, exc in lr.rule.expired_exceptions(today):
            out.append(
                lr.problem(
                    ("exceptions", i, "expires"),
                    f"exception for {exc.field} (owner {exc.owner}) expired on {exc.expires} "
                    "and no longer applies",
                    "renew `expires` with the owner, or remove the entry",
                    severity="warning",
                )
            )
    return out
