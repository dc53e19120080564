"""Deny entries in the XML IIS reads: idempotent, reversible, schema-valid; and the appcmd
command line that does the same on Windows."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from iiswatch.respond.ipsecurity import (
    IpSecurityError,
    XmlIpSecurity,
    appcmd_block_args,
    appcmd_display,
    appcmd_unblock_args,
    validate_section,
)

APPHOST = """\ufeff<?xml version="1.0" encoding="UTF-8"?>
<!-- applicationHost.config as IIS 10 writes it (abridged) -->
<configuration>
    <configSections>
        <sectionGroup name="system.webServer">
            <sectionGroup name="security">
                <section name="ipSecurity" overrideModeDefault="Deny" />
            </sectionGroup>
        </sectionGroup>
    </configSections>
    <system.applicationHost>
        <sites>
            <site name="Default Web Site" id="1">
                <application path="/">
                    <virtualDirectory path="/" physicalPath="%SystemDrive%\\inetpub\\wwwroot" />
                </application>
            </site>
        </sites>
    </system.applicationHost>
    <system.webServer>
        <security>
            <ipSecurity allowUnlisted="true" />
        </security>
    </system.webServer>
    <location path="Shop">
        <system.webServer>
            <security>
                <!-- the monitoring host, by decision of ops -->
                <ipSecurity denyAction="NotFound">
                    <add ipAddress="198.51.100.7" allowed="true" />
                </ipSecurity>
            </security>
        </system.webServer>
    </location>
</configuration>
"""

WEB_CONFIG = """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <system.web>
    <compilation debug="false" />
  </system.web>
</configuration>
"""


def c14n(path: Path) -> bytes:
    return etree.tostring(etree.parse(str(path)), method="c14n")


def sections(path: Path, site: str | None) -> list[etree._Element]:
    root = etree.parse(str(path)).getroot()
    scope = root if site is None else root.find(f"location[@path='{site}']")
    return [] if scope is None else scope.findall("system.webServer/security/ipSecurity")


@pytest.fixture
def apphost(tmp_path: Path) -> Path:
    p = tmp_path / "applicationHost.config"
    p.write_text(APPHOST, encoding="utf-8")
    return p


def test_block_adds_a_deny_entry_under_the_sites_location(apphost: Path) -> None:
    edit = XmlIpSecurity(apphost, "Default Web Site").block("203.0.113.9")
    assert edit.changed
    (section,) = sections(apphost, "Default Web Site")
    adds = section.findall("add")
    assert [(a.get("ipAddress"), a.get("allowed")) for a in adds] == [("203.0.113.9", "false")]
    assert validate_section(section, "x") == []
    # the server-level section and the other site are untouched
    assert XmlIpSecurity(apphost, "Shop").denied() == []
    text = apphost.read_text("utf-8-sig")
    assert "<!-- the monitoring host, by decision of ops -->" in text
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!--')  # as IIS wrote it
    assert '<add ipAddress="203.0.113.9" allowed="false" />' in text


def test_block_twice_changes_nothing_the_second_time(apphost: Path) -> None:
    ips = XmlIpSecurity(apphost, "Default Web Site")
    ips.block("203.0.113.9")
    once = apphost.read_bytes()
    again = ips.block("203.0.113.9")
    assert not again.changed
    assert apphost.read_bytes() == once


def test_unblock_gives_the_original_document_back(apphost: Path) -> None:
    before = c14n(apphost)
    ips = XmlIpSecurity(apphost, "Default Web Site")
    ips.block("203.0.113.9")
    ips.block("2001:db8::66")
    assert c14n(apphost) != before
    assert ips.unblock("203.0.113.9").changed
    assert ips.unblock("2001:db8:0::66").changed  # the same address, written differently
    assert c14n(apphost) == before
    assert apphost.read_bytes().startswith(b"\xef\xbb\xbf<?xml")  # BOM and declaration kept
    assert not ips.unblock("203.0.113.9").changed


def test_unblock_in_an_existing_section_keeps_the_section_and_its_entries(apphost: Path) -> None:
    before = c14n(apphost)
    shop = XmlIpSecurity(apphost, "Shop")
    shop.block("203.0.113.9")
    assert shop.denied() == ["203.0.113.9"]
    (section,) = sections(apphost, "Shop")
    assert [a.get("ipAddress") for a in section.findall("add")] == ["198.51.100.7", "203.0.113.9"]
    shop.unblock("203.0.113.9")
    assert c14n(apphost) == before


def test_an_address_the_config_allows_is_not_turned_into_a_deny(apphost: Path) -> None:
    before = apphost.read_bytes()
    with pytest.raises(IpSecurityError, match=r"explicitly allows 198\.51\.100\.7"):
        XmlIpSecurity(apphost, "Shop").block("198.51.100.7")
    assert apphost.read_bytes() == before


def test_site_web_config_gets_the_section_at_its_root(tmp_path: Path) -> None:
    web = tmp_path / "web.config"
    web.write_text(WEB_CONFIG)
    before = c14n(web)
    ips = XmlIpSecurity(web, None)
    ips.block("203.0.113.9")
    (section,) = sections(web, None)
    assert section.find("add").get("ipAddress") == "203.0.113.9"
    assert "\n    <security>\n      <ipSecurity>" in web.read_text()  # indented like the file
    ips.unblock("203.0.113.9")
    assert c14n(web) == before


def test_an_invalid_existing_section_is_reported_and_nothing_is_written(tmp_path: Path) -> None:
    web = tmp_path / "web.config"
    web.write_text(
        '<configuration><system.webServer><security><ipSecurity denyAction="Teapot">'
        '<add ipAddress="not-an-ip" allowed="maybe" /></ipSecurity></security>'
        "</system.webServer></configuration>"
    )
    before = web.read_bytes()
    with pytest.raises(IpSecurityError) as e:
        XmlIpSecurity(web, None).block("203.0.113.9")
    for problem in ("denyAction", "not-an-ip", "allowed"):
        assert problem in e.value.message
    assert web.read_bytes() == before


def test_schema_check_finds_duplicates_and_unknown_attributes() -> None:
    section = etree.fromstring(
        '<ipSecurity allowUnlisted="yes"><add ipAddress="203.0.113.9" allowed="false" />'
        '<add ipAddress="203.0.113.9" allowed="false" colour="red" /><deny /></ipSecurity>'
    )
    problems = "\n".join(validate_section(section, "f"))
    assert "allowUnlisted" in problems
    assert "duplicate entry for 203.0.113.9" in problems
    assert "colour" in problems
    assert "<deny> is not allowed" in problems


def test_not_xml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "applicationHost.config"
    bad.write_text("<configuration><oops></configuration>")
    with pytest.raises(IpSecurityError, match=r"applicationHost\.config: not well-formed"):
        XmlIpSecurity(bad, "Default Web Site").block("203.0.113.9")


def test_appcmd_command_lines() -> None:
    block = appcmd_block_args("Default Web Site", "203.0.113.9")
    assert appcmd_display(block) == (
        r'%windir%\system32\inetsrv\appcmd.exe set config "Default Web Site" '
        "-section:system.webServer/security/ipSecurity "
        "/+[ipAddress='203.0.113.9',allowed='false'] /commit:apphost"
    )
    unblock = appcmd_unblock_args("Shop", "2001:db8:0::66")
    assert unblock[-2:] == ["/-[ipAddress='2001:db8::66']", "/commit:apphost"]
    with pytest.raises(ValueError):
        appcmd_block_args("Shop", "203.0.113.9',allowed='true")
