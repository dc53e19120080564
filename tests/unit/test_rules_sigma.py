"""Sigma import: web rules written for these tests in the style of SigmaHQ's rules/web/
(tests/fixtures/sigma/convert must convert, tests/fixtures/sigma/reject must not, each with
its reason). No network: the rule files are checked by the schema loader, not by
Elasticsearch (the integration tests run `rules validate` on the pack)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iiswatch.rules.loader import parse_rule
from iiswatch.rules.sigma import (
    W3C_TO_ECS,
    Converted,
    Rejected,
    convert_file,
    import_sigma,
    lucene_regex,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sigma"
CONVERT = FIXTURES / "convert"
REJECT = FIXTURES / "reject"


def _one(path: Path) -> Converted | Rejected:
    results = convert_file(path)
    assert len(results) == 1, results
    return results[0]


def _converted(name: str) -> tuple[Converted, dict]:
    result = _one(CONVERT / name)
    assert isinstance(result, Converted), getattr(result, "reasons", result)
    return result, yaml.safe_load(result.text)


@pytest.mark.parametrize("path", sorted(CONVERT.glob("*.yml")), ids=lambda p: p.stem)
def test_every_convertible_fixture_becomes_a_valid_rule_file(path: Path) -> None:
    for result in convert_file(path):
        assert isinstance(result, Converted), getattr(result, "reasons", result)
        loaded, problems = parse_rule(result.text, Path(f"sigma/{path.stem}.yaml"))
        assert problems == []
        assert loaded is not None
        assert loaded.rule.type == "match"
        assert loaded.rule.lucene


def test_query_and_stem_map_to_the_decoded_lower_cased_detection_fields() -> None:
    _, doc = _converted("web_iis_webshell_command_parameters.yml")
    q = doc["lucene"]
    assert "iiswatch.url.path:*\\/uploads\\/*" in q
    # Cmd.ExE lower-cased, %20%2Fc%20 decoded: they match what ingest stores
    assert "*cmd.exe*" in q
    assert "*\\ \\/c\\ *" in q
    assert "cs-uri" not in q


def test_encoded_values_in_a_rule_are_decoded_like_the_field() -> None:
    _, doc = _converted("web_path_traversal_encoded.yml")
    assert doc["lucene"] == "iiswatch.url.query:(*..\\/* OR *..\\\\*)"


def test_keywords_are_looked_for_in_the_url_user_agent_and_referrer() -> None:
    result, doc = _converted("web_keywords_only.yml")
    assert doc["lucene"] == (
        "(iiswatch.url.uri:(*whoami* OR *cmd.exe*)) OR "
        "(user_agent.original:(*whoami* OR *cmd.exe*)) OR "
        "(http.request.referrer:(*whoami* OR *cmd.exe*))"
    )
    assert any("keywords are looked for" in n for n in result.notes)


def test_method_user_agent_status_and_client_ip_use_their_ecs_names() -> None:
    result, doc = _converted("web_scanner_errors.yml")
    q = doc["lucene"]
    assert "user_agent.original:(*sqlmap* OR *Nikto*)" in q
    assert "http.response.status_code:404" in q
    assert "http.response.status_code:>=500" in q
    assert "NOT source.ip:10.0.0.0\\/8" in q
    assert any("case-sensitively" in n for n in result.notes)


def test_a_regex_becomes_an_unanchored_lucene_regex_with_its_operators_escaped() -> None:
    _, doc = _converted("web_iis_tilde_regex.yml")
    assert "iiswatch.url.path:/.*\\~[1-9].*/" in doc["lucene"]
    assert "url.domain:www.example.com" in doc["lucene"]
    assert "destination.port:443" in doc["lucene"]


@pytest.mark.parametrize(
    ("pattern", "lower", "expected"),
    [
        ("~[1-9]", False, ".*\\~[1-9].*"),
        ("^/Admin/.*\\.aspx$", True, "/admin/.*\\.aspx"),
        ("a\\$b", False, ".*a\\$b.*"),
        ('x<y>&@#"', False, '.*x\\<y\\>\\&\\@\\#\\".*'),
        ("\\D+Q", True, ".*\\D+q.*"),  # an escape keeps its case
    ],
)
def test_lucene_regex(pattern: str, lower: bool, expected: str) -> None:
    assert lucene_regex(pattern, lower=lower) == expected


def test_level_status_and_attack_tags_become_severity_status_and_mitre() -> None:
    _, doc = _converted("web_iis_webshell_command_parameters.yml")
    assert (doc["severity"], doc["risk_score"], doc["status"]) == ("high", 73, "test")
    assert doc["mitre"] == [
        {"tactic": "TA0003", "technique": "T1505.003"},
        {"tactic": "TA0002", "technique": "T1059.003"},
    ]
    assert doc["id"] == "66b61613-d052-4cd6-b8bc-eee43ed8b157"
    assert "sigma" in doc["tags"]
    _, info = _converted("web_iis_tilde_regex.yml")
    assert (info["severity"], info["risk_score"]) == ("low", 5)  # informational
    _, exp = _converted("web_path_traversal_encoded.yml")
    assert exp["status"] == "experimental"
    assert exp["mitre"] == [{"tactic": "TA0001", "technique": "T1190"}]  # initial-access


def test_the_rule_file_carries_a_test_stub_to_fill_in() -> None:
    result, doc = _converted("web_sqli_union_select.yml")
    assert doc["tests"] == []
    assert "#    match: true" in result.text
    assert "#    match: false" in result.text


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("proc_creation_whoami.yml", "is not web server access logs"),
        ("proc_creation_whoami.yml", "unmapped field Image"),
        ("web_unmapped_field.yml", "unmapped field r-dns"),
        ("web_cased_query.yml", "cased"),
        ("web_fieldref_referer.yml", "fieldref"),
        ("web_deprecated.yml", "status deprecated"),
    ],
)
def test_rules_that_cannot_be_converted_say_why(name: str, reason: str) -> None:
    result = _one(REJECT / name)
    assert isinstance(result, Rejected)
    assert any(reason in r for r in result.reasons), result.reasons


def test_a_correlation_is_rejected_and_its_base_rule_converted() -> None:
    results = convert_file(REJECT / "web_login_failures_correlation.yml")
    by_title = {r.title: r for r in results}
    base = by_title["Failed Login POST"]
    assert isinstance(base, Converted)
    assert yaml.safe_load(base.text)["lucene"] == (
        "http.request.method:POST AND iiswatch.url.path:*login* AND http.response.status_code:200"
    )
    corr = by_title["Many Failed Logins From One Client"]
    assert isinstance(corr, Rejected)
    assert "correlation rule (event_count)" in corr.reasons[0]


def test_a_file_that_is_not_sigma_is_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yml"
    bad.write_text("title: [unclosed\n")
    (result,) = convert_file(bad)
    assert isinstance(result, Rejected)


def test_import_writes_one_file_per_rule_and_re_import_replaces_the_same_rule(
    tmp_path: Path,
) -> None:
    result = import_sigma([FIXTURES], tmp_path)
    assert len(result.converted) == 7
    assert len(result.rejected) == 6
    written = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert "command_parameters_sent_to_a_script_in_an_upload_folder.yaml" in written
    assert len(written) == 7
    again = import_sigma([CONVERT], tmp_path)
    assert len(again.converted) == 6 and not again.rejected


def test_import_does_not_replace_another_rule_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "iis_short_name_guess.yaml").write_text(
        "id: 00000000-0000-4000-8000-000000000000\n"
    )
    result = import_sigma([CONVERT / "web_iis_tilde_regex.yml"], tmp_path)
    assert result.converted == []
    assert "exists with another rule id" in result.rejected[0].reasons[0]
    forced = import_sigma([CONVERT / "web_iis_tilde_regex.yml"], tmp_path, overwrite=True)
    assert len(forced.converted) == 1


def test_the_mapping_covers_the_w3c_fields_iis_logs() -> None:
    for w3c in ("cs-uri-query", "cs-uri-stem", "cs-method", "sc-status", "c-useragent",
                "cs-user-agent", "c-ip", "cs-referer", "cs-host", "cs-username", "s-ip",
                "s-port"):  # fmt: skip
        assert w3c in W3C_TO_ECS
    assert W3C_TO_ECS["cs-uri-query"] == "iiswatch.url.query"
    assert W3C_TO_ECS["c-ip"] == "source.ip"
