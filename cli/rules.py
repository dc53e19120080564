"""`iiswatch rules …`: manage detection rules as files — list, show, format, scaffold,
validate against the real Elasticsearch, run their tests, backtest and run them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import TaskID
from rich.table import Table

from iiswatch.cli.options import RULE_REFS, RULES_DIR, progress_bar, time_span
from iiswatch.cli.output import err, out, print_json, print_json_line
from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.errors import EXIT_FINDINGS, RuleError, UsageError
from iiswatch.rules import fmt as rule_fmt
from iiswatch.rules.loader import (
    LoadedRule,
    Problem,
    default_rules_dir,
    display,
    expired_exception_warnings,
    load_rules,
    rule_files,
    scan_rules,
    select,
)
from iiswatch.rules.model import RuleType
from iiswatch.times import format_duration

app = typer.Typer(
    help="Detection rules as files: list, show, fmt, new, validate, test, backtest, run.",
    no_args_is_help=True,
)


def _root(path: Path | None) -> Path:
    return path if path is not None else default_rules_dir()


def _warn(problems: list[Problem]) -> None:
    for p in problems:
        err.print(f"[yellow]warning:[/] {escape(str(p))}")


def _loaded(path: Path | None, refs: list[str] | None = None) -> list[LoadedRule]:
    try:
        loaded = select(load_rules(_root(path)), refs or [])
    except RuleError as e:
        for p in e.problems:
            err.print(escape(p))
        raise
    _warn(expired_exception_warnings(loaded, datetime.now(UTC).date()))
    return loaded


@app.command("list")
def list_rules(
    rules_dir: Path | None = RULES_DIR,
    json_out: bool = typer.Option(False, "--json", help="Print the rules as JSON."),
) -> None:
    """A table of the rules: id, name, type, severity, status, schedule, file."""
    loaded = _loaded(rules_dir)
    if json_out:
        print_json(
            [
                {
                    "id": lr.rule.rule_id,
                    "name": lr.rule.name,
                    "type": lr.rule.type,
                    "severity": lr.rule.severity,
                    "risk_score": lr.rule.risk_score,
                    "status": lr.rule.status,
                    "enabled": lr.rule.enabled,
                    "interval": format_duration(lr.rule.schedule.interval),
                    "tests": len(lr.rule.tests),
                    "path": lr.display_path,
                }
                for lr in loaded
            ]
        )
        return
    table = Table("id", "name", "type", "severity", "status", "every", "tests", "file")
    for lr in loaded:
        r = lr.rule
        table.add_row(
            r.rule_id[:8],
            escape(r.name),
            r.type,
            r.severity,
            r.status if r.enabled else f"{r.status} [dim](disabled)[/]",
            format_duration(r.schedule.interval),
            str(len(r.tests)),
            escape(lr.display_path),
        )
    out.print(table)
    out.print(f"{len(loaded)} rule(s) in {escape(display(_root(rules_dir)))}")


@app.command()
def show(
    ref: str = typer.Argument(..., help="Rule id, id prefix or name."),
    rules_dir: Path | None = RULES_DIR,
    json_out: bool = typer.Option(False, "--json", help="Print the rule model as JSON."),
) -> None:
    """Show one rule: its file, and the rule as loaded (defaults filled in)."""
    (lr,) = _loaded(rules_dir, [ref])[:1]
    if json_out:
        print_json(lr.rule.model_dump(mode="json", exclude_none=True))
        return
    out.print(f"[bold]{escape(lr.rule.name)}[/]  ({lr.rule.rule_id})  {escape(lr.display_path)}")
    out.print(escape(lr.path.read_text(encoding="utf-8")), end="")


@app.command()
def fmt(
    path: Path | None = typer.Argument(None, help="A rule file or folder (default: the rules)."),
    check: bool = typer.Option(
        False, "--check", help="Change nothing; exit 1 if any file is not formatted."
    ),
) -> None:
    """Format rule files canonically (key order, indentation, test logs as blocks).

    Comments are kept; formatting twice changes nothing.
    """
    changed = []
    for f in rule_files(_root(path)):
        text = f.read_text(encoding="utf-8")
        try:
            new = rule_fmt.format_text(text)
        except Exception as e:  # a YAML error: validate explains it with its location
            raise RuleError(
                f"cannot format {display(f)}: {e}", [], hint="`iiswatch rules validate` first"
            ) from e
        if new != text:
            changed.append(f)
            if not check:
                f.write_text(new, encoding="utf-8")
    for f in changed:
        out.print(f"{'would reformat' if check else 'reformatted'} {escape(display(f))}")
    if check and changed:
        raise typer.Exit(EXIT_FINDINGS)
    if not changed:
        out.print("all rule files are formatted")


@app.command()
def new(
    name: str = typer.Argument(..., help="The rule's name (its title)."),
    rule_type: str = typer.Option(
        "match", "--type", "-t", help="match, threshold, cardinality, new_terms or sequence."
    ),
    from_search: str | None = typer.Option(
        None, "--from-search", help="Start from this Lucene query (e.g. one that `search` ran)."
    ),
    category: str = typer.Option("custom", "--category", help="Sub-folder of the rules dir."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead."),
    rules_dir: Path | None = RULES_DIR,
) -> None:
    """Scaffold a valid rule file with a test stub, ready to edit."""
    if rule_type not in RuleType.__args__:  # type: ignore[attr-defined]
        raise UsageError(
            f"unknown rule type {rule_type!r}",
            "use match, threshold, cardinality, new_terms or sequence",
        )
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "rule"
    target = output or _root(rules_dir) / category / f"{slug}.yaml"
    if target.exists():
        raise UsageError(f"{display(target)} already exists", "choose another name or --output")
    text = rule_fmt.scaffold(name, rule_type, from_search)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    out.print(f"wrote {escape(display(target))}")
    err.print("next: edit it, then `iiswatch rules validate` and `iiswatch rules test`")


@app.command()
def validate(
    path: Path | None = typer.Argument(None, help="A rule file or folder (default: the rules)."),
    offline: bool = typer.Option(
        False, "--offline", help="Schema and mapping checks only; do not ask Elasticsearch."
    ),
) -> None:
    """Check rule files: schema, fields against the access mappings, and every query as
    the real Elasticsearch parses it (`_validate/query`). Exit 1 when any rule is invalid.
    """
    from iiswatch.rules.validate import validate_rules

    loaded, problems = scan_rules(_root(path))
    es = None if offline else client_for(Purpose.ALERTING)
    today = datetime.now(UTC).date()
    problems += validate_rules(es, loaded, today)
    problems += expired_exception_warnings(loaded, today)
    errors = [p for p in problems if p.severity == "error"]
    for p in sorted(problems, key=lambda p: (p.path, p.line, p.col)):
        line = escape(str(p))
        out.print(f"[yellow]warning:[/] {line}" if p.severity == "warning" else line)
    files = len(rule_files(_root(path)))
    bad = len({p.path for p in errors})
    out.print(f"{files} file(s), {bad} invalid, {len(problems) - len(errors)} warning(s)")
    if errors:
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def test(
    path: Path | None = typer.Argument(None, help="A rule file or folder (default: the rules)."),
    rule: list[str] | None = RULE_REFS,
    json_out: bool = typer.Option(False, "--json", help="One JSON result per test case."),
) -> None:
    """Run the rules' own tests: each test's log lines are parsed, indexed into a
    throwaway index in the real Elasticsearch, and the rule evaluated by the scheduler's
    code. Exit 1 when any test fails."""
    from iiswatch.rules.mapping import throwaway_index
    from iiswatch.rules.testing import run_rule_tests

    loaded = _loaded(path, rule)
    es = client_for(Purpose.ALERTING)
    results = []
    show = not json_out and err.is_terminal
    with throwaway_index(es) as index, progress_bar(show) as progress:
        task = progress.add_task("test", total=len(loaded))
        for lr in loaded:
            results.extend(run_rule_tests(es, lr, index=index))
            progress.advance(task)
    failed = [r for r in results if not r.passed]
    if json_out:
        for r in results:
            print_json_line(
                {
                    "rule": {"id": r.rule_id, "name": r.rule_name},
                    "path": r.path,
                    "case": r.case,
                    "expected": r.expected,
                    "alerts": len(r.alerts),
                    "passed": r.passed,
                    "error": r.error,
                }
            )
    else:
        table = Table("result", "rule", "test", "expected", "detail")
        for r in results:
            mark = "[green]pass[/]" if r.passed else "[bold red]FAIL[/]"
            table.add_row(
                mark,
                escape(r.rule_name),
                escape(r.case),
                "match" if r.expected else "no match",
                escape(r.describe()),
            )
        out.print(table)
        untested = [lr for lr in loaded if not lr.rule.tests]
        for lr in untested:
            err.print(f"[yellow]warning:[/] {escape(lr.display_path)}: the rule has no tests")
        out.print(
            f"{len(results) - len(failed)} passed, {len(failed)} failed, {len(loaded)} rule(s)"
        )
    if failed:
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def backtest(
    rule: list[str] | None = RULE_REFS,
    since: str | None = typer.Option(None, "--since", help="Replay this far back: 7d, 30d."),
    start: str | None = typer.Option(None, "--from", help="Start time, ISO 8601 (inclusive)."),
    end: str | None = typer.Option(None, "--to", help="End time, ISO 8601 (exclusive)."),
    index: str | None = typer.Option(None, "--index", help="Override the rules' index."),
    top: int = typer.Option(5, "--top", min=0, help="Groups to list per rule."),
    rules_dir: Path | None = RULES_DIR,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON result per rule."),
    exact: bool = typer.Option(
        False, "--exact", help="Evaluate every window one by one (slow; the same alerts)."
    ),
) -> None:
    """Replay rules over history as the scheduler would run them (interval, lookback,
    exceptions, suppression): hits per day, the alerts it would have raised, and the groups
    behind them. Rules are replayed from a few requests over the whole range (`path`:
    binned or joined); with --exact, evaluated window by window (slow, the same alerts)."""
    from iiswatch.rules.backtest import backtest as run_backtest

    t0, t1 = time_span(since, start, end)
    loaded = _loaded(rules_dir, rule)
    es = client_for(Purpose.ALERTING)
    show = not json_out and err.is_terminal
    with progress_bar(show) as progress:
        for lr in loaded:
            task = progress.add_task(lr.rule.name[:40], total=None)

            def step(done: int, total: int, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=total)

            result = run_backtest(es, lr.rule, t0, t1, index=index, on_window=step, exact=exact)
            progress.remove_task(task)
            if json_out:
                print_json_line(result.to_json())
                continue
            _print_backtest(result, top)


def _print_backtest(result: Any, top: int) -> None:
    r = result.rule
    out.print(
        f"[bold]{escape(r.name)}[/] ({r.type}, every {format_duration(r.schedule.interval)}"
        f" + {format_duration(r.schedule.lookback)} lookback): "
        f"{result.hits:,} hits, [bold]{len(result.alerts)} alert(s)[/], "
        f"{result.suppressed} suppressed, {result.evaluated}/{result.windows} windows with events"
        f" ({result.path})"
    )
    per_day = result.alerts_per_day()
    table = Table("day", "hits", "alerts", title_justify="left")
    for day, hits in result.hits_per_day.items():
        if hits or per_day.get(day):
            table.add_row(day, f"{hits:,}", str(per_day.get(day, 0)))
    if table.row_count:
        out.print(table)
    groups = result.top_groups(top)
    if groups:
        gt = Table("group", "alerts", "events", title="top groups", title_justify="left")
        for group, alerts, events in groups:
            label = ", ".join(f"{k}={v}" for k, v in group.items()) or "(all)"
            gt.add_row(escape(label), str(alerts), f"{events:,}")
        out.print(gt)


@app.command()
def run(
    since: str | None = typer.Option(None, "--since", help="Look back this far: 2h, 7d."),
    start: str | None = typer.Option(None, "--from", help="Start time, ISO 8601 (inclusive)."),
    end: str | None = typer.Option(None, "--to", help="End time, ISO 8601 (exclusive)."),
    rule: list[str] | None = RULE_REFS,
    all_rules: bool = typer.Option(
        False, "--all", help="Run every enabled rule (name a disabled one with --rule)."
    ),
    index: str | None = typer.Option(None, "--index", help="Override the rules' index."),
    rules_dir: Path | None = RULES_DIR,
    json_out: bool = typer.Option(False, "--json", help="One alert per line as JSON."),
    incidents: bool = typer.Option(
        False,
        "--incidents",
        help="Print the incidents the alerts would open (one per attacker) instead of them.",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Alerting config whose [service.incidents] applies."
    ),
) -> None:
    """Evaluate rules over events whose @timestamp is in [--from, --to), window by window
    exactly as the scheduler would (interval, look-back, exceptions, suppression): a rule of
    "10 failed logins in 10 minutes" is not fed a whole day at once. With --incidents, the
    alerts add up per entity as the service adds them, and only incidents that would open a
    ticket are printed."""
    from iiswatch.rules.backtest import backtest

    if not rule and not all_rules:
        raise UsageError("which rules?", "name them with --rule, or use --all")
    t0, t1 = time_span(since, start, end)
    if t1 <= t0:
        raise UsageError("--to must be after --from", "e.g. --from 2026-11-25 --to 2026-11-26")
    loaded = _loaded(rules_dir, None if all_rules else rule)
    if all_rules:
        skipped = [lr.rule.name for lr in loaded if not lr.rule.enabled]
        loaded = [lr for lr in loaded if lr.rule.enabled]
        if skipped:
            err.print(f"skipping {len(skipped)} disabled rule(s): {escape(', '.join(skipped))}")
    es = client_for(Purpose.ALERTING)
    total = 0
    table = Table("rule", "severity", "group", "source.ip", "first", "last", "events")
    if incidents:
        _print_incidents(es, [lr.rule for lr in loaded], t0, t1, index, config, json_out)
        return
    for lr in loaded:
        alerts = backtest(es, lr.rule, t0, t1, index=index).alerts
        total += len(alerts)
        for a in alerts:
            if json_out:
                print_json_line(a.to_json())
                continue
            table.add_row(
                escape(a.rule_name),
                a.severity,
                escape(", ".join(f"{k}={v}" for k, v in a.group.items()) or "(all)"),
                escape(", ".join(a.source_ips[:3]) + (" ..." if len(a.source_ips) > 3 else "")),
                a.first_event.isoformat(timespec="seconds"),
                a.last_event.isoformat(timespec="seconds"),
                str(a.event_count),
            )
    if not json_out:
        out.print(table)
        out.print(f"{total} alert(s) from {len(loaded)} rule(s)")


def _print_incidents(
    es: Any,
    rules: list[Any],
    t0: datetime,
    t1: datetime,
    index: str | None,
    config: Path | None,
    json_out: bool,
) -> None:
    from iiswatch.alerting.config import load_config
    from iiswatch.alerting.risk import offline_incidents
    from iiswatch.alerting.service_config import IncidentSettings
    from iiswatch.rules.backtest import backtest

    settings = IncidentSettings()
    if config is not None:
        settings = load_config(config).service.incidents
    pairs = [
        (a.to_json(), rule)
        for rule in rules
        for a in backtest(es, rule, t0, t1, index=index).alerts
    ]
    found = offline_incidents(pairs, settings.policy())
    if json_out:
        for inc in found:
            print_json_line(inc)
        return
    table = Table("incident", "source.ip", "severity", "risk", "rules", "first", "last")
    for inc in found:
        table.add_row(
            inc["incident_id"],
            escape(", ".join(inc["source"]["ip"])),
            inc["severity"],
            str(inc["risk_score"]),
            escape(", ".join(inc["rule_names"])),
            str(inc["first_event"]),
            str(inc["last_event"]),
        )
    out.print(table)
    out.print(
        f"{len(found)} incident(s) from {len(pairs)} alert(s) of {len(rules)} rule(s) "
        f"(threshold {settings.threshold} within {settings.window})"
    )


@app.command("import-sigma")
def import_sigma(
    paths: list[Path] = typer.Argument(..., help="Sigma rule files or folders."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Where to write the rule files (default: <rules dir>/sigma)."
    ),
    rules_dir: Path | None = RULES_DIR,
    dry_run: bool = typer.Option(False, "--dry-run", help="Convert and report; write nothing."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a file of the same name that holds another rule."
    ),
    json_out: bool = typer.Option(False, "--json", help="One JSON result per Sigma rule."),
) -> None:
    """Convert Sigma web-server rules (pySigma, Elasticsearch backend, W3C → ECS fields)
    into rule files, and say why each rule that could not be converted was not. Exit 1 when
    any was not."""
    from iiswatch.rules.sigma import import_sigma as convert

    target = None if dry_run else (out_dir or _root(rules_dir) / "sigma")
    result = convert(paths, target, overwrite=overwrite)
    for c in result.converted:
        if json_out:
            print_json_line(
                {
                    "source": str(c.source),
                    "title": c.title,
                    "id": c.rule_id,
                    "converted": True,
                    "file": str(c.out) if c.out else None,
                    "notes": c.notes,
                }
            )
            continue
        where = escape(str(c.out)) if c.out else "(dry run)"
        out.print(f"[green]converted[/] {escape(c.title)} → {where}")
        for note in c.notes:
            out.print(f"  [yellow]note:[/] {escape(note)}")
    for r in result.rejected:
        if json_out:
            print_json_line(
                {
                    "source": str(r.source),
                    "title": r.title,
                    "converted": False,
                    "reasons": r.reasons,
                }
            )
            continue
        out.print(f"[red]not converted[/] {escape(r.title)} ({escape(str(r.source))})")
        for reason in r.reasons:
            out.print(f"  - {escape(reason)}")
    if not json_out:
        out.print(f"{len(result.converted)} converted, {len(result.rejected)} not converted")
    if result.rejected:
        raise typer.Exit(EXIT_FINDINGS)
