"""The demo's sample day: benign traffic that often looks suspicious (the personas below),
plus one web-shell attack, written as the IIS and HTTP.sys logs of one site. The benches'
generator (bench_lines.py) reuses the visitors. Same seed, same bytes.

Every address is from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, 2001:db8::/32) or private 10.0.0.0/8.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote_plus

from iiswatch.cli.demo.w3c import (
    HTTPAPI_SOFTWARE,
    HTTPERR_FIELDS,
    W3C_DEFAULT_FIELDS,
    W3C_EXTENDED_FIELDS,
    clock,
    w3c_header,
)

SITE_HOST = "www.example.com"
SERVER_IP = "10.0.1.20"  # the server's own address (s-ip); the firewall forwards to it
PUBLIC_IP = "192.0.2.1"  # what scanners send as Host: when they come by address
CORPORATE_NAT_IP = "192.0.2.10"
PARTNER_PROXY_IP = "198.51.100.200"  # an explicit proxy that adds X-Forwarded-For
PARTNER_API_IP = "198.51.100.201"
LB_PROBE_IP = "10.0.0.4"
UPTIME_MONITOR_IP = "198.51.100.250"
APP_POOL = "ExampleWebAppPool"
_DAY = 86400


def _ua(text: str) -> str:
    return text.replace(" ", "+")  # IIS writes header values with spaces as '+'


# fmt: off
_WIN, _KHTML = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "AppleWebKit/537.36 (KHTML, like Gecko)"
_SAFARI = "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1"
_BROWSERS = {  # user agent: share of visitors
    _ua(f"{_WIN} {_KHTML} Chrome/124.0.0.0 Safari/537.36"): 30,
    _ua(f"{_WIN} {_KHTML} Chrome/123.0.0.0 Safari/537.36"): 10,
    _ua(f"{_WIN} {_KHTML} Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"): 12,
    _ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"): 6,
    _ua(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_KHTML} Chrome/124.0.0.0"
        " Safari/537.36"): 6,
    _ua(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_SAFARI} Safari/605.1.15"): 5,
    _ua(f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) {_SAFARI} Mobile/15E148"
        " Safari/604.1"): 14,
    _ua(f"Mozilla/5.0 (Linux; Android 10; K) {_KHTML} Chrome/124.0.0.0 Mobile Safari/537.36"): 12,
    _ua(f"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) {_KHTML} SamsungBrowser/24.0"
        " Chrome/117.0.0.0 Mobile Safari/537.36"): 3,
    _ua("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"): 2,
}
_CORP_UAS = (
    *list(_BROWSERS)[:3], list(_BROWSERS)[2],
    _ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0"),
    _ua("Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko"),
)
_GOOGLEBOT = _ua("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
_GOOGLEBOT_MOBILE = _ua(
    f"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {_KHTML} Chrome/124.0.6367.60"
    " Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
_BINGBOT = _ua("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)")
_UPTIME_UA = _ua("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)")
_SLACKBOT = _ua("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)")
_SCANNER_UAS = (_ua("Mozilla/5.0 zgrab/0.x"), "-",
                _ua(f"{_WIN} {_KHTML} Chrome/81.0.4044.129 Safari/537.36"))
# Chrome 109 is the last one for Windows 7: plausible, and no benign client here uses it.
ATTACKER_USER_AGENT = _ua(
    f"Mozilla/5.0 (Windows NT 6.1; Win64; x64) {_KHTML} Chrome/109.0.0.0 Safari/537.36")

_REFERERS = ("-", "-", "-", "https://www.google.com/", "https://www.google.com/",
             "https://www.bing.com/", "https://duckduckgo.com/", "https://l.facebook.com/",
             "https://www.linkedin.com/")
_ASSETS = (  # what every page pulls: path, query, bytes
    ("/Content/bootstrap.min.css", "-", 163873), ("/Content/site.css", "-", 5121),
    ("/Scripts/jquery-3.7.1.min.js", "-", 87533), ("/Scripts/site.js", "-", 2210),
    ("/Scripts/bootstrap.bundle.min.js", "-", 80721), ("/images/logo.svg", "-", 4410),
    ("/WebResource.axd", "d=pynGkmcFUV13He1Qd6_TZAG0REM8qqEBAHCZinHsmTftbBz8ARFqQG4SmTbTGQGN"
     "sxByiuZhkUtqBxBFX2DvdMSpEQw1&t=638497061240000000", 23452),
)
_PAGES = {"/": 22, "/default.aspx": 6, "/products.aspx": 14, "/product.aspx": 24,
          "/news/article.aspx": 9, "/news.aspx": 5, "/about.aspx": 4, "/contact.aspx": 4,
          "/faq.aspx": 4, "/pricing.aspx": 5, "/clubs.aspx": 3}
_SEARCHES = ("opening+hours", "gift+card", "return+policy", "running+shoes", "delivery+times",
             "size+guide", "rain+jacket", "tennis+racket", "store+locator", "warranty",
             "student+discount")
# Benign queries that look like injections or shell commands to a careless rule.
_TRICKY_QUERIES = (
    ("/search.aspx", "q=O%27Brien", "sqli_lookalike_queries"),
    ("/search.aspx", "q=select+a+plan", "sqli_lookalike_queries"),
    ("/search.aspx", "q=union+station", "sqli_lookalike_queries"),
    ("/clubs.aspx", "name=Drop+Table+Tennis", "sqli_lookalike_queries"),
    ("/search.aspx", "q=D%27Angelo+--+signed+copy", "sqli_lookalike_queries"),
    ("/search.aspx", "q=how+to+run+cmd.exe+as+administrator", "shell_word_searches"),
    ("/search.aspx", "q=whoami+command+windows", "shell_word_searches"),
)
_USERS = ("jdoe", "asmith", "m.obrien", "kwilson", "lnguyen", "pdubois", "rgarcia", "tmuller",
          "hsato", "ebrown", "fdiaz")
_ADMINS = ("CORP\\adm.jdoe", "CORP\\adm.kwilson")
_RECON = (  # path, status, substatus, win32 status
    ("/robots.txt", 404, 0, 2), ("/admin.php", 404, 0, 2), ("/wp-login.php", 404, 0, 2),
    ("/.git/config", 404, 0, 2), ("/.env", 404, 0, 2), ("/web.config.bak", 404, 0, 2),
    ("/web.config", 404, 8, 0), ("/backup.zip", 404, 0, 2), ("/elmah.axd", 404, 0, 0),
    ("/trace.axd", 404, 0, 0), ("/~1/", 404, 0, 2), ("/*~1*/a.aspx", 400, 0, 0),
    ("/uploads/", 403, 14, 0), ("/UPLOAD~1/", 404, 0, 2),
)
_SCAN_PATHS = ("/.env", "/wp-login.php", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
               "/cgi-bin/luci/;stok=/locale", "/actuator/health", "/")
# Visitors by hour of day, UTC: the site's customers are mostly in Europe.
_HOURLY = (2, 1.5, 1, 1, 1.2, 2, 4, 7, 9, 10, 10, 9.5, 9, 9.5, 10, 9.5, 9, 8, 8, 8.5, 8, 6, 4.5, 3)
# fmt: on


def _powershell_enc(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


# As the attacker's tool sent them; IIS logs the query string raw, so each keeps its encoding.
_SHELL_COMMANDS = (
    "cmd=Cmd.ExE+/c+whoami",
    "cmd=cmd.exe+/c+whoami+/priv",
    "cmd=cmd.exe+/c+ipconfig+/all",
    "cmd=net+user",
    "cmd=%43md.exe%20%2Fc%20dir",
    "cmd=powershell+-enc+" + quote_plus(_powershell_enc("Get-ChildItem C:\\inetpub\\wwwroot")),
    "cmd=cmd.exe+/c+net+localgroup+administrators",
)


@dataclass(frozen=True)
class SampleManifest:
    """What `write_sample_day` wrote, for tests and the demo to assert against.

    `events` counts well-formed request lines in the access log (always `requests`);
    `total_lines` counts every physical line there: headers, events and malformed lines.
    Times are UTC; `attack_requests` counts everything the attacker sent, reconnaissance
    included, and `shell_requests` those to `shell_path`.
    """

    access_log: Path
    httperr_log: Path
    paths: tuple[Path, ...]
    day: date
    seed: int
    total_lines: int
    header_lines: int
    header_blocks: int
    events: int
    malformed_lines: int
    httperr_events: int
    field_sets: tuple[tuple[str, ...], ...]
    layout_changed_at: datetime
    attacker_ip: str
    attacker_user_agent: str
    shell_path: str
    attack_first: datetime
    attack_last: datetime
    attack_requests: int
    shell_requests: int
    distinct_client_ips: int
    corporate_nat_ip: str
    monitor_ips: tuple[str, ...]
    crawler_ips: tuple[str, ...]
    scanner_ips: tuple[str, ...]
    tricky_categories: tuple[str, ...]


@dataclass(slots=True)
class _Hit:
    at: float  # seconds since midnight UTC
    ip: str
    method: str
    stem: str
    query: str
    status: int
    sub: int
    win32: int
    taken: int
    ua: str
    ref: str
    user: str
    port: int
    sc_bytes: int
    cs_bytes: int
    host: str
    xff: str
    tag: str


@dataclass(slots=True)
class _Session:
    """One client's visit. Each hit starts shortly after the previous one ended, carries the
    current page as referer, and is labelled with the session's category `tag`."""

    rng: random.Random
    ip: str
    ua: str
    t: float
    xff: str = "-"
    tag: str = ""
    user: str = "-"
    ref: str = "-"
    host: str = SITE_HOST
    hits: list[_Hit] = field(default_factory=list)

    def hit(
        self,
        method: str,
        stem: str,
        query: str = "-",
        status: int = 200,
        sub: int = 0,
        win32: int = 0,
        *,
        taken: int | None = None,
        size: int | None = None,
        sent: int | None = None,
        port: int = 443,
        tag: str | None = None,
    ) -> None:
        rng = self.rng
        if taken is None:
            taken = int(rng.lognormvariate(3.9, 0.8))
        if size is None:
            size = rng.randint(9000, 60000) if status == 200 else rng.randint(150, 1500)
        if sent is None:
            sent = rng.randint(380, 1400)
        hit = _Hit(
            self.t,
            self.ip,
            method,
            stem,
            query,
            status,
            sub,
            win32,
            taken,
            self.ua,
            self.ref,
            self.user,
            port,
            size,
            sent,
            self.host,
            self.xff,
            self.tag if tag is None else tag,
        )
        self.hits.append(hit)
        self.t += taken / 1000 + rng.uniform(0.01, 0.3)

    def page(self, stem: str, query: str = "-", status: int = 200, *, assets: bool = False) -> None:
        """A page view and the assets it pulls; the page becomes the referer from then on."""
        rng = self.rng
        self.hit(
            "GET", stem, query, status, taken=rng.randint(1200, 6000) if status == 500 else None
        )
        if status != 200:
            return
        self.ref = f"https://{SITE_HOST}{stem}" + ("" if query == "-" else f"?{query}")
        for path, q, size in _ASSETS:
            if assets:
                self.hit("GET", path, q, size=size, taken=rng.randint(0, 15), tag="static_assets")
            elif rng.random() < 0.08:  # revalidating what the cache already holds
                self.hit("GET", path, q, 304, size=rng.randint(180, 240), taken=rng.randint(0, 3))
        if stem == "/product.aspx":
            image = f"/images/products/{query.rpartition('=')[2]}.jpg"
            if rng.random() < 0.01:  # the visitor left before the big image arrived
                self.hit(
                    "GET",
                    image,
                    win32=64,
                    size=rng.randint(20_000, 90_000),
                    taken=rng.randint(900, 4000),
                )
            else:
                self.hit("GET", image, size=rng.randint(40000, 260000), taken=rng.randint(2, 40))
        if assets and rng.random() < 0.7:  # the site has no favicon
            self.hit(
                "GET",
                "/favicon.ico",
                status=404,
                win32=2,
                size=1245,
                taken=rng.randint(0, 3),
                tag="favicon_robots_404",
            )

    def think(self, low: float = 4, high: float = 90) -> None:
        self.t += self.rng.uniform(low, high)


@dataclass(slots=True)
class _Plan:
    """What the day still owes, so that every category appears whatever the seed."""

    day: str
    tricky_left: int = len(_TRICKY_QUERIES)
    errors_left: int = 2
    app_first: bool = True


def _page_choice(rng: random.Random) -> tuple[str, str]:
    stem = rng.choices(list(_PAGES), list(_PAGES.values()))[0]
    if stem in ("/product.aspx", "/news/article.aspx"):
        return (
            stem,
            f"id={rng.randint(100, 480) if stem == '/product.aspx' else rng.randint(1, 60)}",
        )
    if stem == "/clubs.aspx":
        return stem, rng.choice(("-", "name=Riverside+Runners", "name=Chess+Club", "page=2"))
    if stem == "/products.aspx" and rng.random() < 0.5:
        return stem, f"category={rng.choice(('shoes', 'outdoor', 'tennis', 'kids'))}&page=1"
    return stem, "-"


# -- personas: each fills one session ---------------------------------------------------------
def _browse(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    if rng.random() < 0.05:  # typed the address: http first, then the redirect to https
        s.hit("GET", "/", status=301, port=80, size=rng.randint(150, 160), taken=rng.randint(0, 2))
    s.page(*_page_choice(rng), assets=True)
    for _ in range(rng.choices((0, 1, 2, 3, 5, 8), (20, 25, 20, 15, 12, 8))[0]):
        s.think()
        stem, query = _page_choice(rng)
        if rng.random() < (0.03 if stem == "/product.aspx" else 0.004) or plan.errors_left:
            plan.errors_left = max(0, plan.errors_left - 1)
            s.tag = "server_errors_500"
            s.page("/product.aspx", f"id={rng.randint(100, 480)}", 500)
            s.tag = ""
        else:
            s.page(stem, query)
    if rng.random() < 0.04:  # a stale link from an old newsletter
        s.think()
        s.hit("GET", f"/news/2019/spring-sale-{rng.randint(1, 9)}.aspx", status=404, size=4892)


def _search(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    s.page("/", assets=True)
    for _ in range(rng.randint(1, 4)):
        s.think(3, 40)
        if plan.tricky_left:
            plan.tricky_left -= 1
            stem, query, s.tag = _TRICKY_QUERIES[plan.tricky_left]
        elif rng.random() < 0.08:
            stem, query, s.tag = rng.choice(_TRICKY_QUERIES)
        else:
            stem, query, s.tag = "/search.aspx", "q=" + rng.choice(_SEARCHES), ""
            query += "&page=2" if rng.random() < 0.2 else ""
        s.page(stem, query)


def _login(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    form, back = "/account/login.aspx", "ReturnUrl=%2faccount%2f"
    s.page(form, back, assets=True)
    failures = rng.choices((0, 1, 2, 3), (55, 25, 13, 7))[0]
    s.tag = "login_failures_then_success" if failures else ""
    for _ in range(failures):  # the form comes back with "wrong password"
        s.think(4, 20)
        s.hit("POST", form, back, taken=rng.randint(180, 450), sent=rng.randint(1900, 2300))
    s.think(4, 20)
    s.hit("POST", form, back, 302, taken=rng.randint(150, 400), sent=rng.randint(1900, 2300))
    s.user, s.tag = rng.choice(_USERS), ""
    s.page("/account/")
    for _ in range(rng.randint(0, 3)):
        s.think()
        s.page(rng.choice(("/account/orders.aspx", "/account/profile.aspx", "/")))


def _upload(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    s.user = rng.choice(_USERS) if rng.random() < 0.4 else "-"
    s.ref = f"https://{SITE_HOST}/account/"
    s.page("/upload.aspx", assets=True)
    s.tag = "legit_uploads"
    for _ in range(rng.choices((1, 2, 3), (70, 20, 10))[0]):
        s.think(8, 60)
        size = rng.randint(60_000, 4_200_000)
        if rng.random() < 0.04:  # over maxAllowedContentLength: request filtering says 404.13
            s.hit("POST", "/upload.aspx", status=404, sub=13, sent=31_457_900, taken=2000)
            continue
        s.hit("POST", "/upload.aspx", sent=size, taken=size // 900 + 150)
        if rng.random() < 0.1:
            continue  # the form said "only .jpg, .png or .pdf"
        name = rng.choice(("photo{}.jpg", "IMG_{}.JPG", "scan_{}.pdf", "photo{}.png"))
        s.hit("GET", "/uploads/" + name.format(rng.randint(100, 9999)), size=size, taken=20)


def _promo(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    s.page("/promo.aspx", "utm_source=newsletter&utm_medium=email", assets=True)
    for i in range(1, 5):  # the page still links last season's banners
        s.hit(
            "GET",
            f"/images/promo/spring-{i}.jpg",
            status=404,
            win32=2,
            size=1245,
            taken=rng.randint(0, 4),
            tag="missing_asset_404_bursts",
        )
    if rng.random() < 0.5:
        s.think()
        s.page(*_page_choice(rng))


def _api(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    kind = "app" if plan.app_first else rng.choice(("spa", "app", "partner"))
    plan.app_first = False
    if kind == "spa":  # a shop front on another origin: CORS preflight, then the call
        s.ref = "https://shop.example.net/"
        s.hit("OPTIONS", "/api/products", size=0, taken=rng.randint(0, 2), tag="options_head")
        s.hit("GET", "/api/products", f"page={rng.randint(1, 5)}", size=rng.randint(2000, 20000))
    elif kind == "app":  # the mobile app does not percent-encode apostrophes
        s.ua = "okhttp/4.12.0"
        calls = ("q=O'Brien", "q=running+shoes", f"id={rng.randint(100, 480)}")
        for q in calls[rng.randrange(3) :]:
            s.think(1, 15)
            s.hit(
                "GET",
                "/api/search" if q[0] == "q" else "/api/product",
                q,
                tag="sqli_lookalike_queries" if "'" in q else "",
            )
    else:
        s.ip, s.ua, s.tag = PARTNER_API_IP, "python-requests/2.31.0", "scripted_api_client"
        for _ in range(rng.randint(3, 12)):
            s.think(0.5, 3)
            s.hit("GET", "/api/stock", f"sku=SKU-{rng.randint(1000, 1400)}", size=210)
        if rng.random() < 0.3:
            s.hit("POST", "/api/orders", status=201, sent=rng.randint(900, 2500))


def _crawl(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    s.hit("GET", "/robots.txt", status=404, win32=2, size=1245, taken=1, tag="favicon_robots_404")
    s.tag = "search_crawlers"
    s.hit("GET", "/sitemap.xml", size=18214)
    for _ in range(rng.randint(4, 25)):
        s.think(2, 40)
        r = rng.random()
        if r < 0.08:  # old URLs from the previous site
            s.hit("GET", f"/news/2019/item{rng.randint(1, 99)}.aspx", status=404, size=4892)
        elif r < 0.1:
            s.hit("GET", "/admin/", status=401, sub=2, win32=5, size=1293, taken=1)
        else:
            s.hit("GET", *_page_choice(rng))


def _admin(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    s.tag = "legit_admin"
    # Windows authentication: anonymous try, NTLM challenge, then the authenticated request.
    s.hit("GET", "/admin/", status=401, sub=2, win32=5, size=1293, taken=1)
    s.hit("GET", "/admin/", status=401, sub=1, win32=2148074254, size=341, taken=0)
    s.user = rng.choice(_ADMINS)
    s.page("/admin/", assets=True)
    pages = [
        ("/admin/users.aspx", "-"),
        ("/admin/settings.aspx", "-"),
        ("/admin/logs.aspx", f"date={plan.day}"),
        ("/admin/orders.aspx", "status=open"),
    ]
    for stem, query in rng.sample(pages, rng.randint(1, 4)):
        s.think(5, 120)
        s.page(stem, query)
    if rng.random() < 0.5:
        s.think(10, 60)
        s.hit("POST", "/admin/settings.aspx", status=302)
    if rng.random() < 0.4:
        s.think(5, 30)
        s.hit(
            "GET",
            "/admin/export.aspx",
            "format=csv",
            size=rng.randint(200_000, 3_000_000),
            taken=rng.randint(900, 7000),
        )


def _preview(s: _Session, plan: _Plan) -> None:
    article = f"id={s.rng.randint(1, 60)}"
    s.hit("HEAD", "/news/article.aspx", article, size=0, tag="options_head")
    s.hit("GET", "/news/article.aspx", article)


def _scan(s: _Session, plan: _Plan) -> None:
    rng = s.rng
    s.tag, s.host = "internet_background_scans", PUBLIC_IP
    for path in rng.sample(_SCAN_PATHS, rng.randint(1, 3)):
        s.think(0.2, 3)
        status, win32 = (200, 0) if path == "/" else (404, 2)
        s.hit("GET", path, status=status, win32=win32, port=rng.choice((80, 443)))


_PERSONAS: dict[Callable[[_Session, _Plan], None], float] = {
    _browse: 40,
    _search: 14,
    _login: 10,
    _upload: 4,
    _promo: 3,
    _api: 5,
    _crawl: 5,
    _admin: 1.5,
    _preview: 1,
    _scan: 1.5,
}


class Clients:
    """Who visits: a long tail of residential addresses, a few heavy hitters, fixed roles."""

    def __init__(self, rng: random.Random, attacker_ip: str) -> None:
        self.crawlers = [
            (f"2001:db8:4860:4801::{rng.randint(1, 0xFFF):x}", _GOOGLEBOT),
            (f"2001:db8:4860:4801::{rng.randint(1, 0xFFF):x}", _GOOGLEBOT_MOBILE),
            *((f"203.0.113.{64 + i}", _BINGBOT) for i in range(3)),
        ]
        self.scanners = [f"192.0.2.{240 + i}" for i in range(4)]
        self.vpn = ["10.8.0.14", "10.8.0.37"]
        self.previewers = ["198.51.100.240", "198.51.100.241"]
        reserved = {
            PUBLIC_IP,
            CORPORATE_NAT_IP,
            PARTNER_PROXY_IP,
            PARTNER_API_IP,
            UPTIME_MONITOR_IP,
            attacker_ip,
            *self.previewers,
            *self.scanners,
            *(ip for ip, _ in self.crawlers),
        }
        nets = ("192.0.2", "198.51.100", "203.0.113")
        v4 = [f"{n}.{h}" for n in nets for h in range(2, 255) if f"{n}.{h}" not in reserved]
        rng.shuffle(v4)
        v6net = int(ipaddress.IPv6Address("2001:db8::"))
        v6 = [str(ipaddress.IPv6Address(v6net | rng.getrandbits(96))) for _ in range(160)]
        self.pool = v4[:420] + v6
        rng.shuffle(self.pool)
        # A few addresses visit often, most once or twice.
        self.cum = list(itertools.accumulate(1 / (r + 1) ** 0.75 for r in range(len(self.pool))))
        uas = rng.choices(list(_BROWSERS), list(_BROWSERS.values()), k=2 * len(self.pool))
        self.uas = {ip: uas[2 * i : 2 * i + 2] for i, ip in enumerate(self.pool)}
        self.fresh = iter(self.pool[:260])  # the first sessions each bring a new address

    def session(self, rng: random.Random, persona: Callable[[_Session, _Plan], None]) -> _Session:
        start = rng.choices(range(24), _HOURLY)[0] * 3600 + rng.random() * 3600
        if persona is _crawl:
            ip, ua = rng.choice(self.crawlers)
            return _Session(rng, ip, ua, start)
        if persona is _admin:
            return _Session(rng, rng.choice([*self.vpn, CORPORATE_NAT_IP]), _CORP_UAS[2], start)
        if persona is _preview:
            return _Session(rng, rng.choice(self.previewers), _SLACKBOT, start)
        if persona is _scan:
            return _Session(rng, rng.choice(self.scanners), rng.choice(_SCANNER_UAS), start)
        r = rng.random()
        if r < 0.12:  # many employees behind one address
            return _Session(rng, CORPORATE_NAT_IP, rng.choice(_CORP_UAS), start)
        if r < 0.16:
            xff = f"10.20.{rng.randint(0, 40)}.{rng.randint(2, 254)}"
            xff += ",+10.20.255.1" if rng.random() < 0.3 else ""  # "a, b" as IIS writes it
            return _Session(rng, PARTNER_PROXY_IP, rng.choice(_CORP_UAS), start, xff)
        ip = next(self.fresh, None) or rng.choices(self.pool, cum_weights=self.cum)[0]
        return _Session(rng, ip, self.uas[ip][0 if rng.random() < 0.8 else 1], start)


def benign_hits(rng: random.Random, clients: Clients, target: int, day: date) -> list[_Hit]:
    plan = _Plan(day.isoformat())
    personas, weights = list(_PERSONAS), list(_PERSONAS.values())
    first_round = iter(personas)  # every persona at least once, whatever the seed
    hits: list[_Hit] = []
    while len(hits) < target:
        persona = next(first_round, None) or rng.choices(personas, weights)[0]
        s = clients.session(rng, persona)
        if persona in (_browse, _search, _login, _promo):  # people arrive from somewhere
            s.ref = rng.choice(_REFERERS)
        persona(s, plan)
        hits.extend(h for h in s.hits if h.at < _DAY - 1)
    del hits[target:]  # trims the tail of the last session only
    return hits


def health_checks(every: int, rng: random.Random) -> list[_Hit]:
    probe = _Session(rng, LB_PROBE_IP, "-", 0, tag="health_checks", host=SERVER_IP)
    for k in range(_DAY // every):  # the load balancer's probe sends no User-Agent
        probe.t = k * every + 0.12
        probe.hit("GET", "/health", taken=rng.randint(0, 3), size=172, sent=96)
    monitor = _Session(rng, UPTIME_MONITOR_IP, _UPTIME_UA, 0, tag="health_checks")
    for k in range(_DAY // (every * 5)):  # an external uptime monitor, HEAD by default
        monitor.t = k * every * 5 + 41.7
        monitor.hit("HEAD", "/health", taken=rng.randint(1, 6), size=0, sent=188)
    return probe.hits + monitor.hits


def _attack(rng: random.Random, ip: str, shell: str, start: float) -> list[_Hit]:
    s = _Session(rng, ip, ATTACKER_USER_AGENT, start, tag="attack")
    s.hit("GET", "/", size=31870, taken=rng.randint(40, 90))
    for path, status, sub, win32 in _RECON:
        s.think(0.2, 3)
        s.hit("GET", path, status=status, sub=sub, win32=win32, taken=rng.randint(0, 6))
    s.ref = f"https://{SITE_HOST}/"
    s.think(60, 150)
    s.hit("GET", "/upload.aspx", size=14870)
    s.ref = f"https://{SITE_HOST}/upload.aspx"
    s.think(20, 60)
    s.hit("POST", "/upload.aspx", sent=rng.randint(3800, 5200), size=15120, taken=180)
    s.ref = "-"
    s.think(5, 20)  # the first request compiles the new page: slow
    s.hit("GET", shell, size=rng.randint(900, 1400), taken=rng.randint(900, 2200))
    s.ref = f"https://{SITE_HOST}{shell}"
    for command in _SHELL_COMMANDS:  # ~20 minutes of hands-on-keyboard
        s.think(60, 260)
        s.hit("GET", shell, command, size=rng.randint(700, 6000), taken=rng.randint(150, 3200))
    return s.hits


def render_hit(h: _Hit, day: str, extended: bool) -> str:
    head = (
        f"{day} {clock(h.at)} {SERVER_IP} {h.method} {h.stem} {h.query} {h.port} {h.user} "
        f"{h.ip} {h.ua} {h.ref}"
    )
    if extended:
        return (
            f"{head} {h.host} {h.status} {h.sub} {h.win32} {h.sc_bytes} {h.cs_bytes} "
            f"{h.taken} {h.xff}"
        )
    return f"{head} {h.status} {h.sub} {h.win32} {h.taken}"


def _malformed(rng: random.Random, kind: int, good: str) -> bytes:
    """Lines the parser must turn into dead letters, each cut from the request it precedes."""
    tokens = good.split(" ")
    if kind == 0:  # cut short inside the User-Agent, as when the server lost power
        cut = " ".join(tokens[:10])
        return cut[: len(cut) - rng.randint(8, 20)].encode()
    if kind == 1:  # NUL padding of a preallocated file, then bytes that are not UTF-8
        noise = bytes(rng.choice((0xFF, 0xFE, 0xC3, 0x28, 0xA0, 0x81, 0x9D)) for _ in range(24))
        return b"\x00" * rng.randint(16, 64) + noise + b"\x8f\xe2\x28\xa1"
    return " ".join(tokens[:9]).encode()  # complete values, but it stops after c-ip


def _httperr(rng: random.Random, day: date, pool: list[str], recycle: float) -> list[str]:
    rows: list[tuple[float, str]] = []

    def add(rest: str, at: float | None = None) -> None:
        at = rng.uniform(0, _DAY - 1) if at is None else at
        port = 80 if rest.startswith("HTTP/1.1") and rng.random() < 0.2 else 443
        ip, cport = rng.choice(pool), rng.randint(49152, 65535)
        rows.append((at, f"{day} {clock(at)} {ip} {cport} {SERVER_IP} {port} {rest}"))

    for _ in range(9):
        add("- - - - - Timer_ConnectionIdle -")
    for _ in range(2):
        add("- - - - - Timer_MinBytesPerSecond -")
    add("HTTP/1.1 GET /%c0%af 400 - BadRequest -")
    add("HTTP/1.1 GET / 400 - Hostname -")
    add("HTTP/1.1 GET /%%ZZ 400 - URL -")
    add(f"HTTP/2.0 GET /default.aspx - 1 Client_Reset {APP_POOL}")
    for _ in range(3):  # requests in flight when the worker process was recycled
        add(
            f"HTTP/1.1 GET /product.aspx - 1 Connection_Abandoned_By_ReqQueue {APP_POOL}",
            recycle - rng.uniform(0, 2),
        )
    rows.sort(key=lambda r: r[0])
    return [line for _, line in rows]


def _categories(hits: list[_Hit], recycle: float) -> tuple[str, ...]:
    tags = {h.tag for h in hits} - {"", "attack"}
    derived = {
        "corporate_nat": any(h.ip == CORPORATE_NAT_IP for h in hits),
        "ipv6_clients": any(":" in h.ip for h in hits),
        "proxy_xff": any(h.xff != "-" and h.at >= recycle for h in hits),  # logged from then on
        "empty_user_agent": any(h.ua == "-" for h in hits),
    }
    return tuple(sorted(tags | {name for name, present in derived.items() if present}))


def write_sample_day(
    out_dir: Path, *, day: date, seed: int = 7, requests: int = 20000, site_id: int = 1
) -> SampleManifest:
    """Write one UTC day of IIS 10 logs for site `site_id` under `out_dir` (W3SVC<id>/ and
    HTTPERR/), with one web-shell attack in the middle of the day, and say what is in them.

    At the default size there are over 200 client addresses; below ~5,000 requests the
    health checks thin out and fewer addresses appear.
    """
    if requests < 1000:
        raise ValueError(f"requests must be at least 1000 (got {requests})")
    rng = random.Random(f"iiswatch-samples:{seed}")
    attacker_ip = f"203.0.113.{rng.randint(100, 199)}"
    shell = "/uploads/" + "".join(rng.choices("abcdefghijkmnpqrstuvwxyz23456789", k=5)) + ".aspx"
    attack_start = rng.uniform(12 * 3600, 13 * 3600 + 1800)
    recycle = rng.uniform(10 * 3600, 11 * 3600 + 1800)  # before the attack: it sees both layouts

    clients = Clients(random.Random(f"clients:{seed}"), attacker_ip)
    attack = _attack(random.Random(f"attack:{seed}"), attacker_ip, shell, attack_start)
    every = 60 if requests >= 10000 else 60 * math.ceil(10000 / requests)
    hits = attack + health_checks(every, rng)
    hits += benign_hits(random.Random(f"benign:{seed}"), clients, requests - len(hits), day)
    hits.sort(key=lambda h: h.at)

    d = day.isoformat()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    changed_at = start + timedelta(seconds=int(recycle))
    out = [x.encode() for x in w3c_header(W3C_DEFAULT_FIELDS, start).splitlines()]
    bad_at = sorted(rng.uniform(2 * 3600, 20 * 3600) for _ in range(3))
    extended = False
    for h in hits:
        if not extended and h.at >= recycle:  # an app-pool recycle with a new field set
            extended = True
            out += [x.encode() for x in w3c_header(W3C_EXTENDED_FIELDS, changed_at).splitlines()]
        if bad_at and h.at >= bad_at[0] and h.tag not in ("attack", "health_checks"):
            out.append(_malformed(rng, 3 - len(bad_at), render_hit(h, d, False)))
            bad_at.pop(0)
        out.append(render_hit(h, d, extended).encode())

    access = out_dir / f"W3SVC{site_id}" / f"u_ex{day:%y%m%d}.log"
    access.parent.mkdir(parents=True, exist_ok=True)
    access.write_bytes(b"\r\n".join(out) + b"\r\n")
    httperr = out_dir / "HTTPERR" / "httperr1.log"
    httperr.parent.mkdir(parents=True, exist_ok=True)
    errors = _httperr(random.Random(f"httperr:{seed}"), day, clients.pool[:300], recycle)
    opened = datetime.fromisoformat(errors[0][:19])
    text = w3c_header(HTTPERR_FIELDS, opened, software=HTTPAPI_SOFTWARE)
    httperr.write_bytes((text + "\r\n".join(errors) + "\r\n").encode())

    return SampleManifest(
        access_log=access,
        httperr_log=httperr,
        paths=(access, httperr),
        day=day,
        seed=seed,
        total_lines=len(out),
        header_lines=8,
        header_blocks=2,
        events=len(hits),
        malformed_lines=3,
        httperr_events=len(errors),
        field_sets=(W3C_DEFAULT_FIELDS, W3C_EXTENDED_FIELDS),
        layout_changed_at=changed_at,
        attacker_ip=attacker_ip,
        attacker_user_agent=ATTACKER_USER_AGENT,
        shell_path=shell,
        attack_first=start + timedelta(seconds=int(attack[0].at)),
        attack_last=start + timedelta(seconds=int(attack[-1].at)),
        attack_requests=len(attack),
        shell_requests=sum(1 for h in attack if h.stem == shell),
        distinct_client_ips=len({h.ip for h in hits}),
        corporate_nat_ip=CORPORATE_NAT_IP,
        monitor_ips=(LB_PROBE_IP, UPTIME_MONITOR_IP),
        crawler_ips=tuple(ip for ip, _ in clients.crawlers),
        scanner_ips=tuple(clients.scanners),
        tricky_categories=_categories(hits, recycle),
    )
