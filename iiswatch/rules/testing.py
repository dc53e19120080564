"""A rule's own tests (`rules test`, and the parametrized pytest over the pack): each test's
raw IIS log lines are parsed by ingest's LogParser, indexed into a throwaway index with the
access mappings, and the rule is evaluated by the same `evaluate` the scheduler uses.

The window of a test ends one second after its last line and starts at its first line —
except for `new_terms`, whose window is the scheduler's last run (`schedule.interval` +
`schedule.lookback` up to the last line): lines before it are the history the rule compares
against, so a test can say "seen three days ago, so not new".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import BulkIndexError, bulk

from iiswatch.elastic.client import backend_errors
from iiswatch.ingest.model import DeadLetter, Event, Source
from iiswatch.ingest.parse import LogParser
from iiswatch.ingest.pipeline import doc_id, to_action
from iiswatch.rules.alert import Alert
from iiswatch.rules.evaluate import evaluate
from iiswatch.rules.loader import LoadedRule
from iiswatch.rules.mapping import throwaway_index
from iiswatch.rules.model import Rule, RuleTest
from iiswatch.rules.suppression import MemoryState
from iiswatch.times import now_iso, parse_time

TEST_HOST = "iiswatch-ruletest"


@dataclass(frozen=True)
class CaseResult:
    rule_id: str
    rule_name: str
    path: str
    case: str
    expected: bool  # the test's `match`
    alerts: list[Alert]
    events: int
    error: str | None = None  # the test could not run (a line did not parse, ...)
    why: str | None = None  # for a missed match: the clause that did not match, and the values

    @property
    def matched(self) -> bool:
        return bool(self.alerts)

    @property
    def passed(self) -> bool:
        return self.error is None and self.matched == self.expected

    def describe(self) -> str:
        if self.error:
            return self.error
        what = f"{len(self.alerts)} alert(s) from {self.events} event(s)"
        if self.passed:
            return what
        return f"expected match: {self.expected}, got {what}" + (
            f": {self.why}" if self.why else ""
        )


def parse_test_log(text: str, label: str) -> tuple[list[Event], list[str]]:
    """ECS events of a test's log lines, and a message for each line that did not parse.
    The format is detected as ingest does; W3C lines without a `#Fields` line are read with
    the IIS default layouts. Local-time formats (IIS, NCSA) are read as UTC."""
    parser = LogParser(Source(path=label, host_name=TEST_HOST, file_id=label), tz="UTC")
    events: list[Event] = []
    problems: list[str] = []
    offset = 0
    for n, raw in enumerate(text.encode().split(b"\n"), start=1):
        line = raw.rstrip(b"\r")
        out = parser.feed(line, offset) if line.strip() else None
        offset += len(raw) + 1
        if isinstance(out, DeadLetter):
            problems.append(f"log line {n} does not parse: {out.reason}")
        elif out is not None:
            events.append(out)
    return events, problems


def _time(doc: dict[str, Any]) -> datetime:
    return parse_time(str(doc["@timestamp"])).astimezone(UTC)


def case_window(rule: Rule, events: list[Event]) -> tuple[datetime, datetime]:
    times = [_time(e) for e in events]
    end = max(times) + timedelta(seconds=1)
    start = min(times)
    if rule.type == "new_terms":
        start = max(start, end - rule.schedule.interval - rule.schedule.lookback)
    return start, end


def _index_events(es: Elasticsearch, index: str, events: list[Event], label: str) -> None:
    """Index the events, refreshed: searchable at once. Ids: `doc_id(TEST_HOST, label, i)`."""
    source = Source(path=label, host_name=TEST_HOST, file_id=label)
    ingested = now_iso()
    actions = []
    for i, event in enumerate(events):
        action = to_action(source, i, event, ingested)
        action["_index"] = index
        action["_op_type"] = "index"
        actions.append(action)
    with backend_errors(es):
        bulk(es, actions, refresh=True)


def _delete_events(es: Elasticsearch, index: str, ids: list[str]) -> None:
    # the minimal distribution has no _delete_by_query: delete by id
    actions = [{"_op_type": "delete", "_index": index, "_id": i} for i in ids]
    with backend_errors(es):
        bulk(es, actions, refresh=True, raise_on_error=False)


def run_case(es: Elasticsearch, lr: LoadedRule, i: int, case: RuleTest, index: str) -> CaseResult:
    label = f"{lr.display_path}#tests[{i}]"
    rule = lr.rule

    def result(
        alerts: list[Alert], events: int, error: str | None = None, why: str | None = None
    ) -> CaseResult:
        return CaseResult(
            rule.rule_id,
            rule.name,
            lr.display_path,
            case.name,
            case.match,
            alerts,
            events,
            error,
            why,
        )

    events, problems = parse_test_log(case.log, label)
    if problems:
        return result([], len(events), "; ".join(problems))
    if not events:
        return result([], 0, "the log has no event lines")
    ids = [doc_id(TEST_HOST, label, i) for i in range(len(events))]
    try:
        _index_events(es, index, events, label)
        start, end = case_window(rule, events)
        alerts = evaluate(es, rule, start, end, index=index, state=MemoryState())
        why = None
        if case.match and not alerts:
            from iiswatch.rules.explain import explain_miss

            with backend_errors(es):
                why = explain_miss(es, rule, index, start, end, events)
    except BulkIndexError as e:
        reason = e.errors[0] if e.errors else e
        return result([], len(events), f"Elasticsearch rejected a test event: {reason}")
    finally:
        _delete_events(es, index, ids)
    return result(alerts, len(events), why=why)


def run_rule_tests(
    es: Elasticsearch, lr: LoadedRule, *, index: str | None = None
) -> list[CaseResult]:
    """Run every test of one rule; in `index` if given (it is emptied first), else in a
    throwaway index of its own."""
    if index is not None:
        return [run_case(es, lr, i, case, index) for i, case in enumerate(lr.rule.tests)]
    with throwaway_index(es) as own:
        return [run_case(es, lr, i, case, own) for i, case in enumerate(lr.rule.tests)]
