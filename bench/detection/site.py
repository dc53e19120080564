"""A generated shop's layout, different for every seed: where its pages, search, sign-in,
API, upload handler and retired endpoints live. Rules must not be tuned to one layout."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    seed: int
    server_ip: str
    ext: str  # ".aspx" for Web Forms, "" for MVC routes
    product: str  # "/products/{slug}"
    category: str
    cart: str
    checkout: str
    search: str
    search_param: str
    login: str
    account: str
    api: str  # REST prefix used by the mobile app and API clients
    upload_page: str  # where admins upload images
    media: str  # where uploaded images are served from
    retired_health: str  # what the forgotten uptime check still polls
    crumb_params: tuple[str, ...]  # parameters that carry relative links back
    stale: tuple[str, ...]  # old URLs crawlers and newsletters still link to
    flaky: str  # a page that sometimes answers 500
    slugs: tuple[str, ...]

    def page(self, name: str) -> str:
        return f"{name}{self.ext}"


WORDS = [
    "oak",
    "table",
    "lamp",
    "chair",
    "shelf",
    "wool",
    "scarf",
    "boots",
    "kettle",
    "mug",
    "rug",
    "sofa",
    "desk",
    "bike",
    "tent",
    "drill",
    "jacket",
    "vase",
    "clock",
    "mirror",
    "pillow",
    "blanket",
    "sneaker",
    "backpack",
    "helmet",
    "glove",
    "candle",
    "frame",
]


def make_site(seed: int) -> Site:
    rng = random.Random(f"site-{seed}")
    ext = rng.choice([".aspx", ""])
    root = rng.choice(["", "/shop", "/store", "/en-gb"])
    prod = rng.choice(["products", "item", "p", "catalog/product", "artikel"])
    cat = rng.choice(["category", "c", "department", "collections", "browse"])
    slugs = tuple(
        f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{rng.randint(100, 99999)}" for _ in range(60)
    )
    years = [rng.randint(2012, 2021) for _ in range(40)]
    stale = tuple(
        rng.choice(
            [
                f"{root}/news/{y}/{rng.choice(WORDS)}-{rng.choice(WORDS)}{ext}",
                f"{root}/{prod}/{rng.choice(WORDS)}-{rng.randint(10, 9999)}{ext}",
                f"{root}/promo/{y}/{rng.choice(WORDS)}-sale{ext}",
                f"{root}/blog/{y}/{rng.randint(1, 12):02d}/{rng.choice(WORDS)}-guide",
            ]
        )
        for y in years
    )
    return Site(
        seed=seed,
        server_ip=f"10.{rng.randint(1, 200)}.{rng.randint(0, 255)}.{rng.randint(2, 250)}",
        ext=ext,
        product=f"{root}/{prod}",
        category=f"{root}/{cat}",
        cart=f"{root}/{rng.choice(['cart', 'basket', 'bag'])}{ext}",
        checkout=f"{root}/{rng.choice(['checkout', 'order/confirm', 'kasse'])}{ext}",
        search=f"{root}/{rng.choice(['search', 'find', 'suche', 'results'])}{ext}",
        search_param=rng.choice(["q", "term", "query", "k", "s"]),
        login=rng.choice(
            [f"{root}/account/login{ext}", "/Account/LogOn", "/signin", f"/customer/sign-in{ext}"]
        ),
        account=f"{root}/{rng.choice(['account', 'my-account', 'profile'])}{ext}",
        api=rng.choice(["/api/v1", "/api/v2", "/services/rest", "/odata", "/mobile/api"]),
        upload_page=rng.choice(
            ["/admin/media/ImageUpload.aspx", "/cms/assets/upload", "/backoffice/images/add.aspx"]
        ),
        media=rng.choice(["/media/catalog", "/images/products", "/content/img"]),
        retired_health=rng.choice(
            ["/health/legacy", "/status.aspx", "/api/v0/ping", "/monitor/check.asmx/Ping"]
        ),
        crumb_params=tuple(
            rng.sample(["bc", "back", "returnUrl", "ReturnUrl", "from", "ref", "crumb"], 3)
        ),
        stale=stale,
        flaky=f"{root}/{rng.choice(['reviews', 'stock', 'recommendations'])}{ext}",
        slugs=slugs,
    )
