"""`iiswatch agent discover`: IIS's applicationHost.config read into log folders, on any OS."""

from __future__ import annotations

import json
import pyexpat
import tomllib
from pathlib import Path, PureWindowsPath

import pytest
from typer.testing import CliRunner

from iiswatch.cli.agent import app
from iiswatch.errors import ConfigError
from iiswatch.ingest.agent.config import load_agent_config
from iiswatch.ingest.agent.discover import (
    WINDOWS_DEFAULTS,
    agent_config,
    discover,
    expand,
    parse_application_host,
    render_agent_config,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "iis"
ENV = dict(WINDOWS_DEFAULTS)


def _found(name: str, **kw: object):
    return discover(FIXTURES / name, env=ENV, **kw)  # type: ignore[arg-type]


def _by_label(name: str):
    return {s.label: s for s in _found(name).sources}


def test_site_without_logfile_element_inherits_site_defaults() -> None:
    site = _by_label("applicationHost-sites.config")["W3SVC1"]
    assert site.site_name == "Default Web Site"
    assert site.folder == r"C:\inetpub\logs\LogFiles\W3SVC1"
    assert site.glob == r"C:\inetpub\logs\LogFiles\W3SVC1\*.log"
    assert (site.log_format, site.parser, site.period) == ("W3C", "w3c", "Daily")
    assert [f.name for f in site.custom_fields] == ["X-Forwarded-For", "Origin-IP"]
    assert site.followable


def test_site_overrides_directory_period_rollover_and_custom_fields() -> None:
    shop = _by_label("applicationHost-sites.config")["W3SVC2"]
    assert shop.folder == r"D:\Logs\IIS\W3SVC2"
    assert (shop.period, shop.local_time_rollover) == ("Hourly", True)
    # inherited X-Forwarded-For, added Session, removed Origin-IP
    assert [(f.name, f.source, f.source_type) for f in shop.custom_fields] == [
        ("X-Forwarded-For", "X-Forwarded-For", "RequestHeader"),
        ("Session", "ASP.NET_SessionId", "RequestHeader"),
    ]


def test_clear_removes_every_inherited_custom_field() -> None:
    assert _by_label("applicationHost-sites.config")["W3SVC8"].custom_fields == ()


def test_disabled_etw_only_and_custom_module_sites_are_listed_but_not_followed() -> None:
    sources = _by_label("applicationHost-sites.config")
    for label, why in [("W3SVC3", "disabled"), ("W3SVC7", "ETW"), ("W3SVC6", "Custom")]:
        assert not sources[label].followable
        assert why in " ".join(sources[label].notes)


def test_iis_and_ncsa_formats_map_to_their_parsers() -> None:
    sources = _by_label("applicationHost-sites.config")
    assert sources["W3SVC5"].parser == "ncsa"
    assert sources["W3SVC4"].log_format == "IIS" and sources["W3SVC4"].parser == "iis"


def test_unknown_variable_stays_as_written_and_keeps_the_folder_out_of_the_config() -> None:
    found = _found("applicationHost-sites.config")
    legacy = {s.label: s for s in found.sources}["W3SVC4"]
    assert legacy.folder == r"%LogRoot%\legacy\W3SVC4"
    assert legacy.unresolved == ("%LogRoot%",) and not legacy.followable
    assert found.unresolved == ("%LogRoot%",)
    with_env = discover(FIXTURES / "applicationHost-sites.config", env=ENV | {"LOGROOT": "E:"})
    assert {s.label: s for s in with_env.sources}["W3SVC4"].folder == r"E:\legacy\W3SVC4"


def test_httperr_folder_defaults_to_system32_and_follows_the_registry_value() -> None:
    httperr = _by_label("applicationHost-sites.config")["HTTPERR"]
    assert httperr.glob == r"C:\Windows\System32\LogFiles\HTTPERR\httperr*.log"
    assert httperr.parser == "httperr"
    moved = {
        s.label: s
        for s in _found("applicationHost-sites.config", httperr_parent=r"D:\Http").sources
    }
    assert moved["HTTPERR"].folder == r"D:\Http\HTTPERR"
    named = {
        s.label: s
        for s in _found("applicationHost-sites.config", httperr_parent=r"D:\Http\HTTPERR").sources
    }
    assert named["HTTPERR"].folder == r"D:\Http\HTTPERR"


def test_central_w3c_logging_replaces_the_site_folders_with_one() -> None:
    found = _found("applicationHost-central-w3c.config")
    assert found.central_mode == "CentralW3C"
    assert [s.label for s in found.sources] == ["W3SVC", "HTTPERR"]
    central = found.sources[0]
    assert central.glob == r"C:\Logs\Central\W3SVC\*.log"
    assert central.local_time_rollover and central.followable
    assert found.sites == ((1, "Default Web Site"), (2, "Shop"))


def test_central_binary_logging_is_reported_as_not_followable() -> None:
    found = _found("applicationHost-central-binary.config")
    binary = found.sources[0]
    assert binary.kind == "central-binary" and not binary.followable
    assert binary.folder == r"E:\BinLogs\W3SVC"
    assert [s.label for s in found.followable()] == ["HTTPERR"]


def test_fresh_install_with_byte_order_mark_uses_every_default() -> None:
    (site, httperr) = _found("applicationHost-defaults.config").sources
    assert site.glob == r"C:\inetpub\logs\LogFiles\W3SVC1\*.log"
    assert site.custom_fields == () and site.followable and httperr.followable


def test_variables_expand_case_insensitively_like_windows() -> None:
    assert expand(r"%systemdrive%\x\%WINDIR%", ENV) == r"C:\x\C:\Windows"
    assert expand("100% sure %nope%", ENV) == "100% sure %nope%"


def test_paths_are_windows_paths_whatever_the_os() -> None:
    site = _by_label("applicationHost-sites.config")["W3SVC2"]
    p = PureWindowsPath(site.glob)
    assert p.drive == "D:" and p.parent.name == "W3SVC2" and p.name == "*.log"


def test_not_an_iis_config_and_broken_xml_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"system\.applicationHost"):
        parse_application_host("<configuration/>")
    with pytest.raises(ConfigError, match="not well-formed"):
        parse_application_host("<configuration><system.applicationHost>")
    with pytest.raises(ConfigError, match="cannot read"):
        discover(FIXTURES / "missing.config", env=ENV)


def test_entity_expansion_bombs_are_refused_by_expat() -> None:
    major, minor, micro = pyexpat.version_info
    assert (major, minor, micro) >= (2, 4, 1)  # billion-laughs protection (see discover.py)
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
        + "]><configuration><system.applicationHost>&j;</system.applicationHost></configuration>"
    )
    with pytest.raises(ConfigError, match="amplification"):
        parse_application_host(bomb)


def test_written_config_follows_every_logged_folder_and_loads() -> None:
    found = _found("applicationHost-sites.config")
    data = agent_config(found, collector="https://collector:8443", name="web01", env=ENV)
    text = render_agent_config(found, data)
    assert "not followed: W3SVC3 Intranet" in text
    parsed = tomllib.loads(text)
    assert [i["site"] for i in parsed["inputs"]] == [
        "W3SVC1",
        "W3SVC2",
        "W3SVC5",
        "W3SVC8",
        "HTTPERR",
    ]
    assert parsed["agent"]["token_file"] == r"C:\ProgramData\iiswatch\agent.token"
    config = load_agent_config(None, {**parsed["agent"], "inputs": parsed["inputs"]})
    assert config.inputs[1].path == r"D:\Logs\IIS\W3SVC2\*.log"
    assert config.inputs[-1].format == "httperr"


def test_cli_prints_sites_and_writes_a_config(tmp_path: Path) -> None:
    target = tmp_path / "agent.toml"
    result = CliRunner().invoke(
        app,
        [
            "discover",
            "--config-file",
            str(FIXTURES / "applicationHost-central-w3c.config"),
            "--write-config",
            str(target),
            "--collector",
            "https://c:8443",
        ],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "one central W3C log" in result.output
    assert r"C:\Logs\Central\W3SVC\*.log" in result.output
    config = load_agent_config(target, {})
    assert config.collector == "https://c:8443"
    assert [i.site for i in config.inputs] == ["W3SVC", "HTTPERR"]


def test_cli_json_lists_every_source() -> None:
    result = CliRunner().invoke(
        app, ["discover", "--json", "--config-file", str(FIXTURES / "applicationHost-sites.config")]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["central_mode"] == "Site"
    assert len(doc["sources"]) == 9 and doc["unresolved"] == ["%LogRoot%"]
