"""A tiny shop on 127.0.0.1 that writes an IIS W3C access log exactly as IIS does (same
fields, `+` for spaces in the user agent, `-` for empty), for recording real attack tools.
It answers like a small ASP.NET site: a few pages, a sign-in form that always fails, a
product page that errors on a quote (as an injectable one would), 404 for everything else.

    .venv/bin/python -m bench.detection.target --port 8899 --log /tmp/tool.log
"""

from __future__ import annotations

import argparse
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_plus, urlsplit

from bench.detection.corpus import FIELDS

PAGES = {"/", "/default.aspx", "/search.aspx", "/product.aspx", "/login.aspx", "/download.aspx"}
FORM = b"<html><body><form method=post action=/login.aspx><input name=user>"
FORM += b"<input name=pass type=password><input type=submit></form>"
FORM += b"<a href=/product.aspx?id=1>p</a><a href=/search.aspx?q=a>s</a>"
FORM += b"<a href=/download.aspx?file=a.pdf>d</a></body></html>"


class Handler(BaseHTTPRequestHandler):
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    log_lock = threading.Lock()
    log_path: Path

    def _answer(self) -> None:
        started = datetime.now(UTC)
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        status = self._status(parts.path, unquote_plus(parts.query).lower())
        body = FORM if status == 200 else b"<html>error</html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._log(started, parts.path or "/", parts.query, status)

    def _status(self, path: str, query: str) -> int:
        if path.lower() not in PAGES:
            return 404
        if path == "/product.aspx" and any(c in query for c in "'\"()"):
            return 500
        if path == "/download.aspx" and ".." in query:
            return 500
        return 200

    def _log(self, started: datetime, path: str, query: str, status: int) -> None:
        ua = (self.headers.get("User-Agent") or "-").replace(" ", "+")
        ref = (self.headers.get("Referer") or "-").replace(" ", "+")
        taken = int((datetime.now(UTC) - started).total_seconds() * 1000)
        stem = path.replace(" ", "%20")
        line = (
            f"{started:%Y-%m-%d %H:%M:%S} 127.0.0.1 {self.command} {stem} {query or '-'} "
            f"{self.server.server_address[1]} - {self.client_address[0]} {ua} {ref} "
            f"{status} 0 0 {taken}\n"
        )
        with self.log_lock, self.log_path.open("a", encoding="utf-8") as f:
            f.write(line)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_TRACE = _answer
    do_PROPFIND = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8899)
    ap.add_argument("--log", type=Path, required=True)
    args = ap.parse_args()
    if not args.log.exists():
        args.log.write_text(f"#Software: Microsoft Internet Information Services 10.0\n"
                            f"#Version: 1.0\n#Fields: {FIELDS}\n", encoding="utf-8")  # fmt: skip
    Handler.log_path = args.log
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
