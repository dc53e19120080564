"""Guess which IIS log format a file holds from its first non-blank line, so the facade can
pick a parser without being told (W3C extended, HTTP.sys HTTPERR, IIS native, NCSA common)."""

from __future__ import annotations

import re

# HTTP.sys writes "#Software: Microsoft HTTP API 2.0" at the top of every HTTPERR file.
_HTTPERR_SOFTWARE = re.compile(rb"^#Software:\s*Microsoft HTTP API", re.IGNORECASE)
# A #Fields line that names the HTTPERR-only fields, in case the #Software line was cut off.
_HTTPERR_FIELDS = re.compile(rb"^#Fields:.*\bs-reason\b", re.IGNORECASE)

# "192.168.1.1, -, 03/20/01, 7:55:20, W3SVC2, ..." — client IP (or host), user, local date
# (two- or four-digit year), local time, then more comma-terminated fields.
_IIS_NATIVE = re.compile(
    rb"^[^,\s]+, [^,]*, \d{1,2}/\d{1,2}/(?:\d{2}|\d{4}), \d{1,2}:\d{2}:\d{2}, (?:[^,]*, ){10}"
)

# 'host ident user [10/Oct/2000:13:55:36 -0700] "request" status bytes'
_NCSA = re.compile(rb'^\S+ \S+ .*?\[\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "')

# A W3C or HTTPERR data line starts with the UTC date and time.
_W3C_DATE = re.compile(rb"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ")
# The fixed HTTPERR start: date time c-ip c-port s-ip s-port cs-version.
_HTTPERR_DATA = re.compile(
    rb"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [0-9A-Fa-f.:%]+ \d{1,5} [0-9A-Fa-f.:%]+ \d{1,5} "
    rb"(?:HTTP/\S+|-) "
)
# Token counts of the known HTTPERR layouts (see ingest/formats/httperr.py).
_HTTPERR_TOKEN_COUNTS = frozenset({13, 14, 16})

_BOM = b"\xef\xbb\xbf"


def detect_format(line: bytes) -> str | None:
    """Name the format of the file whose first non-blank line is `line`.

    Returns "w3c", "httperr", "iis", "ncsa", or None when the line matches none of them.
    """
    text = line.removeprefix(_BOM).strip()
    if not text:
        return None
    if text.startswith(b"#"):
        if _HTTPERR_SOFTWARE.match(text) or _HTTPERR_FIELDS.match(text):
            return "httperr"
        return "w3c"
    if _HTTPERR_DATA.match(text) and len(text.split()) in _HTTPERR_TOKEN_COUNTS:
        return "httperr"
    if _W3C_DATE.match(text):
        return "w3c"
    if _IIS_NATIVE.match(text):
        return "iis"
    if _NCSA.match(text):
        return "ncsa"
    # A headerless W3C layout need not start with the date (e.g. "time c-ip ..." or s-ip first).
    if _looks_like_w3c_data(text):
        return "w3c"
    return None


_W3C_TIME = re.compile(rb"^\d{2}:\d{2}:\d{2}$")
_IP = re.compile(rb"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?:%\w+)?)$")


def _looks_like_w3c_data(text: bytes) -> bool:
    """Space-separated, no commas in the first field, and a time or an IP among the first
    few tokens: the shape of a W3C data line whose layout does not start with the date."""
    tokens = text.split()
    if len(tokens) < 4:
        return False
    return any(_W3C_TIME.match(t) or _IP.match(t) for t in tokens[:3])
