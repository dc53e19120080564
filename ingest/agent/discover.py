"""Where this IIS host writes its logs, read from `applicationHost.config`: one `LogSource` per
site folder (or the central W3C folder) plus HTTP.sys's HTTPERR folder.

The file is parsed with the standard library's ElementTree. It is local administrator
configuration, but it may also be a copy taken off a compromised server during an incident, so
the choice matters: ElementTree never fetches external entities or DTDs, and the expat it is
built on (>= 2.4.1, checked in the tests) refuses entity-expansion bombs. defusedxml would add
a dependency for no further protection here.

Paths are Windows paths whatever the OS running this (`PureWindowsPath`), so a config copied
off a server can be read on a Linux workstation; `%VAR%` references are expanded from the
environment on Windows and from the Windows defaults elsewhere.
"""

from __future__ import annotations

import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from iiswatch.errors import ConfigError

DEFAULT_CONFIG = r"%windir%\System32\inetsrv\config\applicationHost.config"
DEFAULT_LOG_DIR = r"%SystemDrive%\inetpub\logs\LogFiles"
DEFAULT_HTTPERR_PARENT = r"%SystemRoot%\System32\LogFiles"
WINDOWS_DEFAULTS: Mapping[str, str] = {
    "SystemDrive": "C:",
    "SystemRoot": r"C:\Windows",
    "windir": r"C:\Windows",
    "ProgramData": r"C:\ProgramData",
}
# logFormat as IIS spells it -> the parser iiswatch reads it with (None: not a text log).
FORMAT_PARSERS: Mapping[str, str | None] = {
    "w3c": "w3c",
    "iis": "iis",
    "ncsa": "ncsa",
    "custom": None,  # a custom logging module writes somewhere of its own choosing
}
_VAR = re.compile(r"%([^%\\/:]+)%")


@dataclass(frozen=True)
class CustomField:
    """A W3C custom field (`<customFields><add>`): logged as a column named `name`."""

    name: str
    source: str
    source_type: str


@dataclass(frozen=True)
class LogSource:
    """One folder of log files the agent can follow, and how IIS writes them."""

    kind: str  # "site", "central-w3c", "central-binary", "httperr"
    label: str  # site label for the collector: "W3SVC1", "W3SVC", "HTTPERR"
    directory: str  # the logFile directory, expanded
    folder: str  # where the files are: directory\W3SVC<id>, directory\W3SVC, ...\HTTPERR
    pattern: str  # glob of the files in `folder`
    log_format: str  # as configured: W3C, IIS, NCSA, Custom, Binary, HTTPERR
    parser: str | None  # iiswatch format, None when not a text log we can read
    enabled: bool
    site_id: int | None = None
    site_name: str | None = None
    period: str = "Daily"
    local_time_rollover: bool = False
    custom_fields: tuple[CustomField, ...] = ()
    notes: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()  # %VARS% in its folder that had no value here

    @property
    def followable(self) -> bool:
        return self.enabled and self.parser is not None and not self.unresolved

    @property
    def glob(self) -> str:
        return str(PureWindowsPath(self.folder) / self.pattern)


@dataclass(frozen=True)
class Discovery:
    config_file: str
    central_mode: str  # Site, CentralW3C, CentralBinary
    sources: tuple[LogSource, ...]
    sites: tuple[tuple[int, str], ...]  # (id, name) of every site, logged or not
    unresolved: tuple[str, ...] = field(default=())  # %VARS% with no value

    def followable(self) -> list[LogSource]:
        return [s for s in self.sources if s.followable]


def windows_environment() -> dict[str, str]:
    """Variables for `%VAR%` expansion: the real environment on Windows (over the defaults),
    only the Windows defaults elsewhere, so a Linux shell's variables never leak in."""
    env = dict(WINDOWS_DEFAULTS)
    if sys.platform == "win32":
        env.update(os.environ)
    return env


def expand(text: str, env: Mapping[str, str], unresolved: set[str] | None = None) -> str:
    """Expand `%VAR%` as Windows does: names are case-insensitive, unknown ones stay as written."""
    lower = {k.lower(): v for k, v in env.items()}

    def sub(m: re.Match[str]) -> str:
        value = lower.get(m.group(1).lower())
        if value is None:
            if unresolved is not None:
                unresolved.add(m.group(0))
            return m.group(0)
        return value

    return _VAR.sub(sub, text)


def default_config_file(env: Mapping[str, str] | None = None) -> str:
    return expand(DEFAULT_CONFIG, env if env is not None else windows_environment())


def httperr_parent_from_registry() -> str | None:
    """HTTP.sys's `ErrorLoggingDir` registry value (Windows only; None when unset)."""
    if sys.platform != "win32":
        return None
    import winreg

    key = r"SYSTEM\CurrentControlSet\Services\HTTP\Parameters"
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as k:
            value, _kind = winreg.QueryValueEx(k, "ErrorLoggingDir")
    except OSError:
        return None
    return str(value) or None


def _bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() == "true"


def _custom_fields(
    element: ET.Element | None, inherited: tuple[CustomField, ...]
) -> tuple[CustomField, ...]:
    """IIS collection semantics: inherit, then `<clear/>`, `<remove>` and `<add>` in order."""
    fields = {f.name.lower(): f for f in inherited}
    if element is None:
        return tuple(fields.values())
    for child in element:
        if child.tag == "clear":
            fields.clear()
        elif child.tag == "remove":
            fields.pop(child.get("logFieldName", "").lower(), None)
        elif child.tag == "add":
            name = child.get("logFieldName", "")
            if name:
                fields[name.lower()] = CustomField(
                    name=name,
                    source=child.get("sourceName", ""),
                    source_type=child.get("sourceType", "RequestHeader"),
                )
    return tuple(fields.values())


@dataclass(frozen=True)
class _LogFile:
    directory: str = DEFAULT_LOG_DIR
    log_format: str = "W3C"
    enabled: bool = True
    period: str = "Daily"
    local_time_rollover: bool = False
    target: str = "File"
    custom_fields: tuple[CustomField, ...] = ()

    def merged(self, element: ET.Element | None) -> _LogFile:
        """These settings overridden by the attributes a `<logFile>` element sets."""
        if element is None:
            return self
        a = element.attrib
        return _LogFile(
            directory=a.get("directory", self.directory),
            log_format=a.get("logFormat", self.log_format),
            enabled=_bool(a.get("enabled"), self.enabled),
            period=a.get("period", self.period),
            local_time_rollover=_bool(a.get("localTimeRollover"), self.local_time_rollover),
            target=a.get("logTargetW3C", self.target),
            custom_fields=_custom_fields(element.find("customFields"), self.custom_fields),
        )


def parse_application_host(
    text: str | bytes,
    *,
    config_file: str = "applicationHost.config",
    env: Mapping[str, str] | None = None,
    httperr_parent: str | None = None,
) -> Discovery:
    """Log sources described by the text of an `applicationHost.config`."""
    env = env if env is not None else windows_environment()
    unresolved: set[str] = set()
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ConfigError(
            f"{config_file}: not well-formed XML ({e})",
            "give the applicationHost.config of the IIS server with --config-file",
        ) from e
    host = root.find("system.applicationHost")
    if host is None:
        raise ConfigError(
            f"{config_file}: no <system.applicationHost> section",
            "this does not look like IIS's applicationHost.config",
        )
    log = host.find("log")
    central_mode = log.get("centralLogFileMode", "Site") if log is not None else "Site"

    sites_el = host.find("sites")
    defaults = _LogFile()
    if sites_el is not None:
        defaults = defaults.merged(sites_el.find("siteDefaults/logFile"))
    site_elements = sites_el.findall("site") if sites_el is not None else []

    sources: list[LogSource] = []
    sites: list[tuple[int, str]] = []
    for site in site_elements:
        try:
            site_id = int(site.get("id", ""))
        except ValueError:
            continue  # IIS refuses such a site too
        name = site.get("name", f"site {site_id}")
        sites.append((site_id, name))
        if central_mode != "Site":
            continue
        lf = defaults.merged(site.find("logFile"))
        missing: set[str] = set()
        directory = expand(lf.directory, env, missing)
        unresolved |= missing
        parser = FORMAT_PARSERS.get(lf.log_format.lower())
        notes = []
        enabled = lf.enabled
        if not lf.enabled:
            notes.append("logging disabled for this site")
        if "file" not in lf.target.lower():
            enabled = False
            notes.append(f"logTargetW3C={lf.target}: no log file, events go to ETW only")
        if parser is None:
            notes.append(f"{lf.log_format} logging writes no file iiswatch can follow")
        if missing:
            notes.append(f"no value for {', '.join(sorted(missing))} here: run on the server")
        label = f"W3SVC{site_id}"
        sources.append(
            LogSource(
                kind="site",
                label=label,
                directory=directory,
                folder=str(PureWindowsPath(directory) / label),
                # u_ex*.log (W3C), u_in (IIS), u_nc (NCSA); no u_ without logInUTF8
                pattern="*.log",
                log_format=lf.log_format,
                parser=parser,
                enabled=enabled,
                site_id=site_id,
                site_name=name,
                period=lf.period,
                local_time_rollover=lf.local_time_rollover,
                custom_fields=lf.custom_fields if lf.log_format.lower() == "w3c" else (),
                notes=tuple(notes),
                unresolved=tuple(sorted(missing)),
            )
        )

    if central_mode == "CentralW3C":
        c = log.find("centralW3CLogFile") if log is not None else None
        ca = c.attrib if c is not None else {}
        directory = expand(ca.get("directory", DEFAULT_LOG_DIR), env, unresolved)
        enabled = _bool(ca.get("enabled"), True)
        sources.append(
            LogSource(
                kind="central-w3c",
                label="W3SVC",
                directory=directory,
                folder=str(PureWindowsPath(directory) / "W3SVC"),
                pattern="*.log",
                log_format="W3C",
                parser="w3c",
                enabled=enabled,
                period=ca.get("period", "Daily"),
                local_time_rollover=_bool(ca.get("localTimeRollover"), False),
                notes=("one W3C file for all sites (s-sitename tells them apart)",)
                + (() if enabled else ("central W3C logging disabled",)),
            )
        )
    elif central_mode == "CentralBinary":
        c = log.find("centralBinaryLogFile") if log is not None else None
        ca = c.attrib if c is not None else {}
        directory = expand(ca.get("directory", DEFAULT_LOG_DIR), env, unresolved)
        sources.append(
            LogSource(
                kind="central-binary",
                label="W3SVC",
                directory=directory,
                folder=str(PureWindowsPath(directory) / "W3SVC"),
                pattern="*.ibl",
                log_format="Binary",
                parser=None,
                enabled=_bool(ca.get("enabled"), True),
                period=ca.get("period", "Daily"),
                notes=(
                    "central binary logging (.ibl) is not text: switch to CentralW3C or Site "
                    "to ship these logs",
                ),
            )
        )

    parent = expand(httperr_parent or DEFAULT_HTTPERR_PARENT, env, unresolved)
    httperr = PureWindowsPath(parent)
    if httperr.name.lower() != "httperr":
        httperr = httperr / "HTTPERR"
    sources.append(
        LogSource(
            kind="httperr",
            label="HTTPERR",
            directory=parent,
            folder=str(httperr),
            pattern="httperr*.log",
            log_format="HTTPERR",
            parser="httperr",
            enabled=True,
            period="MaxSize",
            notes=("HTTP.sys errors: requests rejected before they reached IIS",),
        )
    )
    return Discovery(
        config_file=config_file,
        central_mode=central_mode,
        sources=tuple(sources),
        sites=tuple(sites),
        unresolved=tuple(sorted(unresolved)),
    )


def discover(
    config_file: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    httperr_parent: str | None = None,
) -> Discovery:
    """Read `applicationHost.config` (IIS's own path by default) and describe its logs."""
    env = env if env is not None else windows_environment()
    path = config_file or Path(default_config_file(env))
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read {path}: {e.strerror}",
            "run on the IIS server as an administrator, or pass --config-file with a copy",
        ) from e
    if httperr_parent is None:
        httperr_parent = httperr_parent_from_registry()
    return parse_application_host(
        data, config_file=str(path), env=env, httperr_parent=httperr_parent
    )


def agent_config(
    found: Discovery,
    *,
    collector: str | None = None,
    token_file: str | None = None,
    state: str | None = None,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An agent configuration (as `agent run --config` reads it) that follows every log
    folder `found` describes. Settings not given are left out; `run` asks for them."""
    env = env if env is not None else windows_environment()
    data_dir = PureWindowsPath(expand(r"%ProgramData%\iiswatch", env))
    agent: dict[str, Any] = {
        "name": name,
        "collector": collector,
        "token_file": token_file or str(data_dir / "agent.token"),
        "state": state or str(data_dir / "state"),
    }
    inputs = [{"path": s.glob, "format": s.parser, "site": s.label} for s in found.followable()]
    return {"agent": {k: v for k, v in agent.items() if v is not None}, "inputs": inputs}


def render_agent_config(found: Discovery, config: dict[str, Any]) -> str:
    """`config` as TOML, headed by comments on where it came from and what is left out."""
    import tomli_w

    lines = [f"# iiswatch agent configuration, from {found.config_file}"]
    if "collector" not in config["agent"]:
        lines.append('# Set the collector before running: collector = "https://HOST:PORT"')
    skipped = [s for s in found.sources if not s.followable]
    for s in skipped:
        lines.append(f"# not followed: {s.label} {s.site_name or ''} ({'; '.join(s.notes)})")
    return "\n".join(lines) + "\n\n" + tomli_w.dumps(config)
