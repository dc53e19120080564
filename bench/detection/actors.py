"""The people and programs in a generated hour of shop traffic: benign classes (each many
actors) and attackers. An actor is one client: an address and a user agent. Everything is
drawn from a seeded random generator, so a seed always gives the same corpus."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from bench.detection.site import WORDS, Site

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",  # noqa: E501
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Safari/605.1.15",  # noqa: E501
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{m} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{m} Mobile/15E148 Safari/604.1",  # noqa: E501
    "Mozilla/5.0 (Linux; Android 14; SM-S91{m}B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",  # noqa: E501
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",  # noqa: E501
)
STATIC = ("/css/site.css", "/js/app.js", "/js/vendor.js", "/fonts/brand.woff2", "/favicon.ico")
TRICKY_SEARCHES = (
    "O'Brien",
    "o'neill boots",
    "select",
    "union",
    "union jack cushion",
    "select union flag mug",
    "the union select range",
    "cmd.exe",
    "what is cmd.exe",
    "../",
    "a/b ../ test",
    "drop shipping",
    "rock 'n' roll t-shirt",
    '"quoted phrase"',
    "1=1 puzzle",
    "or else mug",
    "size 10 or 11",
    "delete account",
    "insert for shoes",
    "table; chair",
    "50% off",
    "c:\\windows theme",
    "Mac & Cheese bowl",
    "sleep mask",
    "benchmark tool",
    "<3 mug",
    "exec chair",
    "net user guide",
    "it's 5 o'clock",
    "kids' shoes -- sale",
    "forgot passwd reset",
    "union select",
    "O'Reilly book",
)
CRAWLERS = (
    (
        "googlebot",
        "66.249.{a}.{b}",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ),
    (
        "bingbot",
        "40.77.167.{b}",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    ),
    (
        "bingbot",
        "207.46.13.{b}",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    ),
    (
        "applebot",
        "17.241.{a}.{b}",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",  # noqa: E501
    ),
    (
        "ahrefsbot",
        "54.36.148.{b}",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    ),
)
MOBILE_UAS = (
    "ShopApp/5.{m}.1 (iPhone; iOS 17.{m}; Scale/3.00)",
    "ShopApp/5.{m}.0 (Android 14; Pixel 8)",
    "okhttp/4.{m}.0",
    "ShopApp/5.{m} CFNetwork/1490.0.4 Darwin/23.2.0",
)
API_UAS = (
    "python-requests/2.{m}.0",
    "curl/8.{m}.0",
    "Go-http-client/1.1",
    "PostmanRuntime/7.3{m}.0",
    "Apache-HttpClient/4.5.{m} (Java/17.0.9)",
)


@dataclass
class Req:
    t: datetime
    method: str
    path: str
    query: str  # raw (already URL-encoded) query, "" for none
    status: int
    sub: int = 0
    win32: int = 0
    user: str = "-"


@dataclass
class Actor:
    actor_id: str
    cls: str
    kind: str  # "benign" or "attack"
    ip: str
    ua: str
    reqs: list[Req] = field(default_factory=list)
    source: str = "generated"  # or the tool fixture it was replayed from


class Hour:
    """Helpers to put requests of one actor in the corpus's hour."""

    def __init__(self, site: Site, start: datetime, rng: random.Random) -> None:
        self.site, self.start, self.rng = site, start, rng

    def t(self, lo: float = 0, hi: float = 3500) -> datetime:
        return self.start + timedelta(seconds=self.rng.uniform(lo, hi))

    def browser(self) -> str:
        r = self.rng
        return r.choice(BROWSERS).format(v=r.randint(118, 131), m=r.randint(0, 6))

    def public_ip(self) -> str:
        r = self.rng
        first = r.choice([81, 86, 92, 109, 151, 178, 185, 212, 217])
        return f"{first}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def q(**params: str) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def _visit(h: Hour, a: Actor, t: datetime, *, stale_ok: bool = True) -> datetime:
    """One ordinary browsing session: home, category, products with breadcrumb parameters
    holding relative links, static files, sometimes the cart and sign-in."""
    s, r = h.site, h.rng

    def add(path: str, query: str = "", status: int = 200, method: str = "GET") -> None:
        nonlocal t
        a.reqs.append(Req(t, method, path, query, status))
        for st in r.sample(STATIC, r.randint(0, 2)):
            a.reqs.append(Req(t + timedelta(milliseconds=300), "GET", st, "", r.choice([200, 304])))
        t += timedelta(seconds=r.uniform(4, 60))

    add("/" if not s.product.count("/") > 2 else s.product.rsplit("/", 1)[0] + "/")
    cat = r.choice(WORDS)
    add(f"{s.category}/{cat}{s.ext}", q(sort=r.choice(["price", "new", "popular"])))
    for _ in range(r.randint(1, 5)):
        crumb = r.choice(s.crumb_params)
        rel = r.choice(
            [f"../{s.category.rsplit('/', 1)[-1]}/{cat}{s.ext}", f"../cart{s.ext}", "../", ".."]
        )
        add(
            f"{s.product}/{r.choice(s.slugs)}{s.ext}",
            f"id={r.randint(1, 9999)}&{crumb}={quote(rel)}",
        )
        if r.random() < 0.15:  # a missing product picture
            a.reqs.append(Req(t, "GET", f"{s.media}/{r.randint(1, 9999)}.jpg", "", 404, 0, 2))
    if stale_ok and r.random() < 0.1:  # an old link from a newsletter
        add(r.choice(s.stale[:6]), q(utm_source="newsletter"), 404)
    if r.random() < 0.4:
        add(
            s.cart,
            q(**{s.crumb_params[0]: f"../{s.product.rsplit('/', 1)[-1]}/{r.choice(s.slugs)}"}),
        )
        add(s.cart, "", 302, "POST")
    if r.random() < 0.25:
        add(s.login, q(ReturnUrl=s.account))
        if r.random() < 0.2:  # mistyped the password once
            add(s.login, "", 200, "POST")
        add(s.login, "", 302, "POST")
        add(s.account)
    if r.random() < 0.03:
        add(s.flaky, q(id=str(r.randint(1, 999))), 500)
    return t


def shopper(h: Hour, n: int) -> Actor:
    a = Actor(f"shopper-{n}", "shopper", "benign", h.public_ip(), h.browser())
    t = h.t(0, 3000)
    for _ in range(h.rng.randint(1, 2)):
        t = _visit(h, a, t) + timedelta(seconds=h.rng.uniform(60, 600))
    return a


def searcher(h: Hour, n: int) -> Actor:
    a = Actor(f"searcher-{n}", "searcher", "benign", h.public_ip(), h.browser())
    t = h.t(0, 3300)
    s, r = h.site, h.rng
    for term in r.sample(TRICKY_SEARCHES, r.randint(2, 5)):
        enc = quote(term, safe="").replace("%20", "+")
        a.reqs.append(Req(t, "GET", s.search, f"{s.search_param}={enc}&page=1", 200))
        t += timedelta(seconds=r.uniform(5, 40))
    _visit(h, a, t)
    return a


def crawler(h: Hour, n: int) -> Actor:
    r = h.rng
    name, net, ua = r.choice(CRAWLERS)
    ip = net.format(
        a=r.randint(64, 95) if name == "googlebot" else r.randint(0, 255), b=r.randint(1, 254)
    )
    a = Actor(f"crawler-{n}-{name}", "crawler", "benign", ip, ua)
    s = h.site
    t = h.t(0, 1800)
    a.reqs.append(Req(t, "GET", "/robots.txt", "", 200))
    a.reqs.append(Req(t, "GET", "/sitemap.xml", "", 200))
    for _ in range(r.randint(60, 160)):
        t += timedelta(seconds=r.uniform(0.5, 6))
        if r.random() < 0.45:  # re-checking old URLs after the migration: 404 bursts
            path = r.choice(s.stale)
            a.reqs.append(Req(t, "GET", path, "", r.choice([404, 404, 404, 410]), 0, 2))
        else:
            a.reqs.append(Req(t, "GET", f"{s.product}/{r.choice(s.slugs)}{s.ext}", "", 200))
    return a


def nat_office(h: Hour, users: int) -> list[Actor]:
    """A company behind one address: hundreds of people, a couple of dozen browser builds."""
    ip = h.public_ip()
    uas = [h.browser() for _ in range(25)]
    out = []
    for n in range(users):
        a = Actor(f"nat-{n}", "nat_office", "benign", ip, h.rng.choice(uas))
        _visit(h, a, h.t(0, 3200))
        out.append(a)
    return out


def api_client(h: Hour, n: int) -> Actor:
    r = h.rng
    a = Actor(
        f"api-{n}",
        "api_client",
        "benign",
        h.public_ip(),
        r.choice(API_UAS).format(m=r.randint(0, 9)),
    )
    s, t = h.site, h.t(0, 600)
    while t < h.start + timedelta(seconds=3550):
        oid = r.randint(1000, 99999)
        kind = r.random()
        if kind < 0.5:
            a.reqs.append(
                Req(
                    t,
                    "GET",
                    f"{s.api}/orders",
                    q(since="1987-01-01", page=str(r.randint(1, 9))),
                    200,
                )
            )
        elif kind < 0.7:
            a.reqs.append(Req(t, "GET", f"{s.api}/orders/{oid}", "", r.choice([200, 200, 404])))
        elif kind < 0.85:
            a.reqs.append(Req(t, "PUT", f"{s.api}/stock/{oid}", "", 204))
        elif kind < 0.93:
            a.reqs.append(Req(t, "DELETE", f"{s.api}/cart/{oid}", "", r.choice([204, 404])))
        else:
            a.reqs.append(Req(t, "POST", f"{s.api}/orders", "", 201))
        t += timedelta(seconds=r.uniform(10, 120))
    return a


def uptime_monitor(h: Hour, n: int) -> Actor:
    a = Actor(
        f"uptime-{n}",
        "uptime_monitor",
        "benign",
        f"10.250.0.{10 + n}",
        "ops-uptime/2.3 (+internal)",
    )
    t = h.start
    while t < h.start + timedelta(seconds=3590):
        # the second monitor busts caches with a timestamp: every check is another URL
        buster = f"nocache={int(t.timestamp())}" if n % 2 else ""
        a.reqs.append(Req(t, "GET", h.site.retired_health, buster, 404, 0, 2))
        a.reqs.append(Req(t, "HEAD", "/", "", 200))
        t += timedelta(seconds=15)
    return a


def admin_uploader(h: Hour, n: int) -> Actor:
    r = h.rng
    a = Actor(
        f"admin-{n}",
        "admin_upload",
        "benign",
        f"10.40.{r.randint(0, 9)}.{r.randint(2, 250)}",
        h.browser(),
    )
    s, t = h.site, h.t(0, 3000)
    a.reqs.append(Req(t, "GET", s.upload_page, "", 200, user=f"CORP\\editor{n}"))
    for _ in range(r.randint(3, 12)):
        t += timedelta(seconds=r.uniform(10, 60))
        a.reqs.append(Req(t, "POST", s.upload_page, "", 200, user=f"CORP\\editor{n}"))
        img = f"{s.media}/{r.randint(1, 99999)}.{r.choice(['jpg', 'png', 'webp'])}"
        a.reqs.append(Req(t + timedelta(seconds=1), "GET", img, "", 200, user=f"CORP\\editor{n}"))
    return a


def mobile_app(h: Hour, n: int) -> Actor:
    r = h.rng
    a = Actor(
        f"mobile-{n}",
        "mobile_app",
        "benign",
        h.public_ip(),
        r.choice(MOBILE_UAS).format(m=r.randint(0, 9)),
    )
    s, t = h.site, h.t(0, 3000)
    for _ in range(r.randint(5, 25)):
        k = r.random()
        if k < 0.6:
            a.reqs.append(
                Req(
                    t,
                    "GET",
                    f"{s.api}/products/{r.randint(1, 9999)}",
                    q(fields="id,name,price,images"),
                    r.choice([200, 200, 200, 404]),
                )
            )
        elif k < 0.75:
            a.reqs.append(Req(t, "PUT", f"{s.api}/cart/items/{r.randint(1, 99)}", "", 200))
        elif k < 0.85:
            a.reqs.append(Req(t, "DELETE", f"{s.api}/cart/items/{r.randint(1, 99)}", "", 204))
        else:
            a.reqs.append(Req(t, "POST", f"{s.api}/auth/token", "", 200))
        t += timedelta(seconds=r.uniform(2, 30))
    return a


def long_query(h: Hour, n: int) -> Actor:
    r = h.rng
    a = Actor(f"longq-{n}", "long_query", "benign", h.public_ip(), h.browser())
    s, t = h.site, h.t(0, 3300)
    for _ in range(r.randint(2, 6)):
        filt = "|".join(
            f"{r.choice(['brand', 'color', 'size', 'price'])}:{r.choice(WORDS)}"
            for _ in range(r.randint(5, 30))
        )
        state = "".join(
            r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            for _ in range(r.randint(200, 1500))
        )
        query = q(
            utm_source="google",
            utm_medium="cpc",
            utm_campaign=f"{r.choice(WORDS)}-{r.randint(1, 99)}",
            gclid=state[:90],
            filter=filt,
            state=state + "==",
            **{s.crumb_params[1]: f"../{r.choice(WORDS)}{s.ext}"},
        )
        a.reqs.append(Req(t, "GET", f"{s.category}/{r.choice(WORDS)}{s.ext}", query, 200))
        t += timedelta(seconds=r.uniform(5, 90))
    return a


BENIGN: dict[str, tuple[Callable[[Hour, int], Actor], int]] = {
    "shopper": (shopper, 60),
    "searcher": (searcher, 40),
    "crawler": (crawler, 10),
    "api_client": (api_client, 8),
    "uptime_monitor": (uptime_monitor, 2),
    "admin_upload": (admin_uploader, 4),
    "mobile_app": (mobile_app, 25),
    "long_query": (long_query, 15),
}
NAT_USERS = 250
