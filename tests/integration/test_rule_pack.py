"""Every rule in searches/ is loaded, validated by the real Elasticsearch, and its own test
cases run (elastic/detection-rules tests/test_all_rules.py is the model)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from elasticsearch import Elasticsearch

from iiswatch.config import Purpose
from iiswatch.elastic.client import client_for
from iiswatch.rules.loader import LoadedRule, default_rules_dir, scan_rules
from iiswatch.rules.mapping import throwaway_index
from iiswatch.rules.testing import run_rule_tests
from iiswatch.rules.validate import validate_rules

pytestmark = pytest.mark.integration

RULES, PROBLEMS = scan_rules(default_rules_dir())


@pytest.fixture(scope="module")
def alerting_es(admin_es: Elasticsearch) -> Elasticsearch:
    return client_for(Purpose.ALERTING)


@pytest.fixture(scope="module")
def ruletest_index(alerting_es: Elasticsearch) -> Iterator[str]:
    with throwaway_index(alerting_es) as index:
        yield index


def test_every_rule_file_loads_without_problems() -> None:
    assert [str(p) for p in PROBLEMS if p.severity == "error"] == []


def test_the_pack_is_every_yaml_file_under_searches() -> None:
    # counted apart from the loader: a loader that found nothing would make the parametrized
    # test below run no case at all, and pass
    files = sorted(default_rules_dir().rglob("*.y*ml"))
    assert len(files) >= 15, files
    assert sorted(lr.path.resolve() for lr in RULES) == [f.resolve() for f in files]


def test_every_query_in_the_pack_is_valid_for_elasticsearch(alerting_es: Elasticsearch) -> None:
    problems = validate_rules(alerting_es, RULES, datetime.now(UTC).date())
    assert [str(p) for p in problems if p.severity == "error"] == []


@pytest.mark.parametrize("loaded", RULES, ids=[lr.display_path for lr in RULES])
def test_rule_passes_its_own_tests(
    loaded: LoadedRule, alerting_es: Elasticsearch, ruletest_index: str
) -> None:
    assert loaded.rule.tests, f"{loaded.display_path} has no tests"
    assert any(t.match for t in loaded.rule.tests), "no positive test"
    assert any(not t.match for t in loaded.rule.tests), "no negative test"
    results = run_rule_tests(alerting_es, loaded, index=ruletest_index)
    failed = [f"{r.case}: {r.describe()}" for r in results if not r.passed]
    assert failed == []
