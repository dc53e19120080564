"""Verified crawler networks: what is read from the publishers' JSON, how an update keeps a
source it could not fetch, and how an exception names the list."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from iiswatch import crawlers
from iiswatch.errors import BackendUnavailable
from iiswatch.rules.model import RuleException
from iiswatch.rules.query import exception_clause

GOOGLE_STYLE = {
    "creationTime": "2026-12-01T00:00:00",
    "prefixes": [{"ipv4Prefix": "66.249.64.0/27"}, {"ipv6Prefix": "2001:4860:4801:10::/64"}],
}


def test_prefixes_are_read_from_google_and_bing_style_documents() -> None:
    assert crawlers.prefixes_in(GOOGLE_STYLE) == ["2001:4860:4801:10::/64", "66.249.64.0/27"]


def test_prefixes_are_read_from_a_plain_list_and_other_strings_are_ignored() -> None:
    doc = {"ips": [{"ip_address": "54.36.148.1"}, {"note": "crawler"}], "v": "7"}
    assert crawlers.prefixes_in(doc) == ["54.36.148.1/32"]


def test_the_shipped_list_has_the_major_search_engines() -> None:
    data = json.loads(crawlers.SHIPPED.read_text())
    assert {"googlebot", "bingbot"} <= set(data["sources"])
    assert "66.249.64.0/19" in crawlers._networks(crawlers.SHIPPED)


def test_update_replaces_fetched_sources_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IISWATCH_HOME", str(tmp_path))

    def fetch(url: str) -> bytes:
        if "googlebot" in url:
            return json.dumps(GOOGLE_STYLE).encode()
        raise OSError("no route to host")

    result = crawlers.update(fetch)
    assert result["googlebot"] == 2
    assert str(result["bingbot"]).startswith("kept ")
    assert crawlers.ranges_file() == tmp_path / crawlers.STATE_FILE
    nets = crawlers.verified_crawler_networks()
    assert "66.249.64.0/27" in nets and "66.249.64.0/19" not in nets
    assert "157.55.39.0/24" in nets  # bingbot kept its shipped networks


def test_an_exception_on_verified_crawlers_becomes_one_terms_of_networks() -> None:
    exc = RuleException(
        field="source.ip", networks=["verified_crawlers"], owner="soc", reason="crawlers"
    )
    clause = exception_clause(exc)
    assert "66.249.64.0/19" in clause["terms"]["source.ip"]
    assert exc.active(date(2030, 1, 1))


def test_an_unknown_network_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="verified_crawlers"):
        RuleException(field="source.ip", networks=["friends"], owner="soc", reason="x")  # type: ignore[list-item]


def test_update_with_no_source_reachable_writes_nothing_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IISWATCH_HOME", str(tmp_path))

    def fetch(url: str) -> bytes:
        raise OSError("name or service not known")

    with pytest.raises(BackendUnavailable, match="name or service not known"):
        crawlers.update(fetch)
    assert not (tmp_path / crawlers.STATE_FILE).exists()
