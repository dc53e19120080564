"""IIS's IP and Domain Restrictions (`system.webServer/security/ipSecurity`): a deny entry per
blocked address, in the XML that IIS reads.

Two ways to the same change, both built here:
- `XmlIpSecurity` edits the file itself: `applicationHost.config` under
  `<location path="SITE">` (where `appcmd ... /commit:apphost` puts it, since the section is
  locked at server level by default), or a site's `web.config`. Used off Windows (tests, a
  copy of the config) and where asked.
- `appcmd_block_args` / `appcmd_unblock_args` give the `appcmd.exe` command line that does the
  same on a Windows server; the agent runs it there (`run_appcmd`).

Edits are idempotent (a second add changes nothing), reversible (add then remove gives the
canonical-XML-identical document back) and checked against the section's schema as IIS
defines it (`IIS_schema.xml`) before the file is replaced atomically.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from lxml import etree

from iiswatch.errors import IiswatchError
from iiswatch.respond.agent_config import DEFAULT_APPCMD

SECTION_PATH = ("system.webServer", "security", "ipSecurity")

# From IIS_schema.xml, sectionSchema "system.webServer/security/ipSecurity".
_SECTION_ATTRS = {
    "allowUnlisted": "bool",
    "enableReverseDns": "bool",
    "enableProxyMode": "bool",
    "denyAction": ("Unauthorized", "Forbidden", "NotFound", "AbortRequest"),
}
_ADD_ATTRS = {"ipAddress", "subnetMask", "domainName", "allowed"}
_REMOVE_ATTRS = {"ipAddress", "subnetMask", "domainName"}
_BOOLS = ("true", "false")


class IpSecurityError(IiswatchError):
    """The config cannot be changed safely (not XML, schema-invalid, a conflicting entry)."""


@dataclass(frozen=True)
class Edit:
    changed: bool
    description: str  # one line, for the action's result


def _norm_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return text.strip()


def validate_section(section: etree._Element, where: str) -> list[str]:
    """Problems IIS would refuse the `<ipSecurity>` element for (empty list: valid)."""
    problems = []
    for name, value in section.attrib.items():
        kind = _SECTION_ATTRS.get(str(name))
        if kind is None:
            problems.append(f"{where}: ipSecurity: unknown attribute {name!r}")
        elif kind == "bool" and value not in _BOOLS:
            problems.append(f"{where}: ipSecurity.{name}: must be true or false (got {value!r})")
        elif isinstance(kind, tuple) and value not in kind:
            problems.append(f"{where}: ipSecurity.{name}: must be one of {', '.join(kind)}")
    keys: set[tuple[str, str, str]] = set()
    for child in section:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        line = f"{where}:{child.sourceline or '?'}"
        if child.tag == "clear":
            if child.attrib:
                problems.append(f"{line}: <clear> takes no attributes")
            keys.clear()
            continue
        if child.tag not in ("add", "remove"):
            problems.append(f"{line}: <{child.tag}> is not allowed in ipSecurity")
            continue
        allowed_attrs = _ADD_ATTRS if child.tag == "add" else _REMOVE_ATTRS
        for name in child.attrib:
            if name not in allowed_attrs:
                problems.append(f"{line}: <{child.tag}> has unknown attribute {name!r}")
        ip = child.get("ipAddress")
        if ip is None and child.get("domainName") is None:
            problems.append(f"{line}: <{child.tag}> needs ipAddress or domainName")
        if ip is not None:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                problems.append(f"{line}: ipAddress {ip!r} is not an IP address")
        if child.tag == "add" and child.get("allowed") not in _BOOLS:
            problems.append(f'{line}: <add> needs allowed="true" or "false"')
        key = (
            _norm_ip(ip or ""),
            child.get("subnetMask", "255.255.255.255"),
            (child.get("domainName") or "").lower(),
        )
        if child.tag == "remove":
            keys.discard(key)
        elif key in keys:
            problems.append(f"{line}: duplicate entry for {key[0] or key[2]} (IIS refuses it)")
        else:
            keys.add(key)
    return problems


class XmlIpSecurity:
    """Deny entries in one config file: `applicationHost.config` for `site` (a
    `<location path=...>`), or a `web.config` when `site` is None."""

    def __init__(self, path: Path, site: str | None) -> None:
        self.path = path
        self.site = site

    # -- reading and writing ---------------------------------------------------------------

    def _load(self) -> tuple[etree._ElementTree, bytes]:
        try:
            raw = self.path.read_bytes()
        except OSError as e:
            raise IpSecurityError(
                f"cannot read {self.path}: {e.strerror}", "check the path and permissions"
            ) from e
        parser = etree.XMLParser(
            remove_blank_text=False, remove_comments=False, resolve_entities=False, no_network=True
        )
        try:
            tree = etree.ElementTree(etree.fromstring(raw, parser))
        except etree.XMLSyntaxError as e:
            raise IpSecurityError(
                f"{self.path}: not well-formed XML ({e})", "IIS cannot read it either: fix it"
            ) from e
        if tree.getroot().tag != "configuration":
            raise IpSecurityError(
                f"{self.path}: the root element is <{tree.getroot().tag}>, not <configuration>",
                "give IIS's applicationHost.config or a site's web.config",
            )
        return tree, raw

    def _save(self, tree: etree._ElementTree, original: bytes) -> None:
        problems = self._problems(tree)
        if problems:
            raise IpSecurityError(
                "the edited ipSecurity section would not be valid:\n  " + "\n  ".join(problems),
                "nothing was written; fix the existing entries first",
            )
        body = original.removeprefix(b"\xef\xbb\xbf")
        out = etree.tostring(tree, encoding="UTF-8", xml_declaration=False)
        if body.startswith(b"<?xml"):  # the file's own declaration, as it was written
            out = body[: body.index(b"?>") + 2] + b"\n" + out
        if b'" />' in body:  # IIS writes empty elements as `<add ... />`: keep its style
            out = out.replace(b'"/>', b'" />')
        if original.startswith(b"\xef\xbb\xbf"):
            out = b"\xef\xbb\xbf" + out
        if original.endswith(b"\n") and not out.endswith(b"\n"):
            out += b"\r\n" if original.endswith(b"\r\n") else b"\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".iiswatch-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(out)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _problems(self, tree: etree._ElementTree) -> list[str]:
        return [p for s in self._sections(tree) for p in validate_section(s, str(self.path))]

    def _scope(self, tree: etree._ElementTree, create: bool) -> etree._Element | None:
        root = tree.getroot()
        if self.site is None:
            return root
        for loc in root.findall("location"):
            if loc.get("path") == self.site:
                return loc
        if not create:
            return None
        loc = etree.Element("location", path=self.site)
        _append(root, loc)
        return loc

    def _sections(self, tree: etree._ElementTree) -> list[etree._Element]:
        scope = self._scope(tree, create=False)
        if scope is None:
            return []
        return scope.findall("/".join(SECTION_PATH))

    def _section(self, tree: etree._ElementTree) -> etree._Element:
        el = self._scope(tree, create=True)
        assert el is not None
        for name in SECTION_PATH:
            child = el.find(name)
            if child is None:
                child = etree.Element(name)
                _append(el, child)
            el = child
        return el

    # -- the operations ----------------------------------------------------------------------

    def denied(self) -> list[str]:
        tree, _ = self._load()
        return [
            _norm_ip(a.get("ipAddress", ""))
            for s in self._sections(tree)
            for a in s.findall("add")
            if a.get("allowed") == "false" and _single(a)
        ]

    def block(self, ip: str) -> Edit:
        """Add `<add ipAddress=IP allowed="false" />`; nothing when it is there already."""
        ip = _norm_ip(ip)
        tree, raw = self._load()
        where = f"{self.path} ({'site ' + self.site if self.site else 'web.config'})"
        for s in self._sections(tree):
            for a in s.findall("add"):
                if _single(a) and _norm_ip(a.get("ipAddress", "")) == ip:
                    if a.get("allowed") == "false":
                        return Edit(False, f"{ip} was already denied in {where}")
                    raise IpSecurityError(
                        f"{where} explicitly allows {ip} (line {a.sourceline})",
                        "an allow entry is somebody's decision: remove it by hand first",
                    )
        section = self._section(tree)
        _append(section, etree.Element("add", ipAddress=ip, allowed="false"))
        self._save(tree, raw)
        return Edit(True, f'added <add ipAddress="{ip}" allowed="false" /> to {where}')

    def unblock(self, ip: str) -> Edit:
        """Remove the deny entry for `ip`, and the elements the block created if they are
        left empty; nothing when there is none."""
        ip = _norm_ip(ip)
        tree, raw = self._load()
        where = f"{self.path} ({'site ' + self.site if self.site else 'web.config'})"
        found = [
            a
            for s in self._sections(tree)
            for a in s.findall("add")
            if _single(a) and a.get("allowed") == "false" and _norm_ip(a.get("ipAddress", "")) == ip
        ]
        if not found:
            return Edit(False, f"{ip} was not denied in {where}")
        for a in found:
            parent = a.getparent()
            _remove(a)
            # prune what block() created and is now empty (the location last)
            while parent is not None and _prunable(parent):
                up = parent.getparent()
                _remove(parent)
                parent = up
        self._save(tree, raw)
        return Edit(True, f"removed the deny entry for {ip} from {where}")


def _prunable(el: etree._Element) -> bool:
    """Left empty by an unblock, and nothing of its own to keep: block() created it."""
    if el.getparent() is None or len(el) or (el.text or "").strip():
        return False
    if el.tag == "location":
        return set(el.attrib) <= {"path"}
    return not el.attrib


def _single(add: etree._Element) -> bool:
    """An entry for one address (not a subnet or a domain)."""
    mask = add.get("subnetMask")
    return add.get("domainName") is None and mask in (None, "255.255.255.255")


def _indent_unit(el: etree._Element) -> str:
    root = el.getroottree().getroot()
    text = root.text or ""
    if "\n" in text:
        unit = text.rsplit("\n", 1)[1]
        if unit:
            return unit
    return "    "


def _depth(el: etree._Element) -> int:
    return sum(1 for _ in el.iterancestors())


def _append(parent: etree._Element, child: etree._Element) -> None:
    """Append with the file's indentation, so the result reads like IIS wrote it."""
    unit = _indent_unit(parent)
    inner = "\n" + unit * (_depth(parent) + 1)
    outer = "\n" + unit * _depth(parent)
    if len(parent) == 0:
        parent.text = inner
        child.tail = outer
    else:
        last = parent[-1]
        child.tail = last.tail
        last.tail = inner
    parent.append(child)


def _remove(el: etree._Element) -> None:
    """Remove and undo what `_append` did to the whitespace around it."""
    parent = el.getparent()
    assert parent is not None
    prev = el.getprevious()
    if el.getnext() is None:
        if prev is not None:
            prev.tail = el.tail
        else:
            parent.text = None
    parent.remove(el)


# -- appcmd on Windows ----------------------------------------------------------------------


def _appcmd_ip(ip: str) -> str:
    return str(ipaddress.ip_address(ip))  # refuses anything that is not an address


def appcmd_block_args(site: str, ip: str, appcmd: str = DEFAULT_APPCMD) -> list[str]:
    """`appcmd set config "SITE" -section:system.webServer/security/ipSecurity
    /+"[ipAddress='IP',allowed='false']" /commit:apphost`, as an argument list."""
    return [
        appcmd, "set", "config", site, "-section:system.webServer/security/ipSecurity",
        f"/+[ipAddress='{_appcmd_ip(ip)}',allowed='false']", "/commit:apphost",
    ]  # fmt: skip


def appcmd_unblock_args(site: str, ip: str, appcmd: str = DEFAULT_APPCMD) -> list[str]:
    return [
        appcmd, "set", "config", site, "-section:system.webServer/security/ipSecurity",
        f"/-[ipAddress='{_appcmd_ip(ip)}']", "/commit:apphost",
    ]  # fmt: skip


def appcmd_list_args(site: str, appcmd: str = DEFAULT_APPCMD) -> list[str]:
    section = "-section:system.webServer/security/ipSecurity"
    return [appcmd, "list", "config", site, section, "/xml:true"]


def run_appcmd(args: list[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run appcmd (Windows only: no shell, so nothing in a site name is interpreted)."""
    if os.name != "nt":
        raise IpSecurityError(
            "appcmd runs only on Windows", 'set [actions] ip_security = "xml" off Windows'
        )
    exe = os.path.expandvars(args[0])
    return subprocess.run(  # a fixed executable, an argument list, no shell
        [exe, *args[1:]], capture_output=True, text=True, timeout=timeout, check=False
    )


def appcmd_display(args: list[str]) -> str:
    """The command line as a person would type it in cmd.exe (for dry runs and results)."""
    return subprocess.list2cmdline([str(PureWindowsPath(args[0])), *args[1:]])
