"""A generated shop with learnable sequential structure, interest drift and new arrivals.

Used by the demo, the tests and the benchmarks, so freshrec runs end to end without any dataset file.

How it is built (all seeded):

* **Items** belong to categories and carry a generated title, a category list, a description and a
  price. Within a category, items form a browsing chain (item -> its next two in a fixed random order):
  shoppers who look at one item tend to look at its successors next. Each category is linked to a
  complementary one (tents -> sleeping bags), and each item has a complement there. This is the
  sequential signal a transformer can learn and popularity cannot.
* **Users** mix two or three favourite categories (Dirichlet weights) and drift: after each session
  their interest may move toward another category, so the recent past predicts better than the distant.
* **Sessions** are views that follow the browsing chain (sometimes jumping to a popular item or to the
  complement), then often a click on the last item viewed, then sometimes cart and purchase. Sessions
  are hours to days apart; events within a session are seconds apart.
* **Purchases depend on the item**: a carted item is bought with its own probability (0.7 on average,
  from near 0 to near 1), higher for cheaper items but not only. So what shoppers browse next and what
  they end up buying differ, as in real shops where some products are looked at far more than bought.
* **New arrivals and product life cycles**: a share of items launches part-way through the period and is
  never seen before; every item is most popular right after its launch (``novelty`` times its base
  popularity, decaying with a ``novelty_days`` time constant), so what sells drifts over time in ways a
  model trained on the past cannot know.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from freshrec.schema import EventIn, ItemIn

_CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    "running": (
        ["shoe", "sock", "jacket", "vest", "cap"],
        ["trail", "road", "lightweight", "cushioned", "reflective"],
    ),
    "camping": (
        ["tent", "sleeping bag", "stove", "lantern", "mat"],
        ["ultralight", "four-season", "compact", "family", "insulated"],
    ),
    "coffee": (
        ["espresso machine", "grinder", "kettle", "dripper", "bean blend"],
        ["manual", "burr", "gooseneck", "single-origin", "dark-roast"],
    ),
    "kitchen": (
        ["chef knife", "skillet", "cutting board", "dutch oven", "saucepan"],
        ["carbon-steel", "cast-iron", "non-stick", "walnut", "enamelled"],
    ),
    "audio": (
        ["headphones", "earbuds", "speaker", "turntable", "amplifier"],
        ["wireless", "noise-cancelling", "studio", "portable", "hi-fi"],
    ),
    "photo": (
        ["camera", "lens", "tripod", "camera bag", "flash"],
        ["mirrorless", "wide-angle", "carbon", "weatherproof", "compact"],
    ),
    "gaming": (
        ["controller", "headset", "keyboard", "mouse", "monitor"],
        ["mechanical", "wireless", "rgb", "ergonomic", "144hz"],
    ),
    "books": (
        ["novel", "cookbook", "biography", "travel guide", "comic"],
        ["bestselling", "illustrated", "hardcover", "classic", "new"],
    ),
    "garden": (
        ["hose", "pruner", "planter", "seed kit", "rake"],
        ["expandable", "ceramic", "organic", "heavy-duty", "self-watering"],
    ),
    "yoga": (
        ["yoga mat", "block", "strap", "bolster", "towel"],
        ["non-slip", "cork", "cotton", "travel", "extra-thick"],
    ),
    "baby": (
        ["stroller", "car seat", "baby monitor", "high chair", "carrier"],
        ["foldable", "convertible", "video", "wooden", "ergonomic"],
    ),
    "pets": (
        ["dog bed", "cat tree", "leash", "pet fountain", "chew toy"],
        ["orthopedic", "sisal", "retractable", "stainless", "durable"],
    ),
    "cycling": (
        ["helmet", "bike light", "saddle", "bike lock", "jersey"],
        ["aero", "rechargeable", "gel", "folding", "breathable"],
    ),
    "skincare": (
        ["moisturizer", "cleanser", "serum", "sunscreen", "face mask"],
        ["hydrating", "gentle", "vitamin-c", "spf50", "clay"],
    ),
    "tools": (
        ["drill", "screwdriver set", "tool box", "laser level", "saw"],
        ["cordless", "precision", "steel", "self-levelling", "compact"],
    ),
    "music": (
        ["guitar", "ukulele", "keyboard stand", "guitar strings", "capo"],
        ["acoustic", "concert", "adjustable", "nickel", "quick-change"],
    ),
}
_BRANDS = [
    "Aero",
    "Nordic",
    "Vela",
    "Kobo",
    "Lumen",
    "Terra",
    "Orca",
    "Pico",
    "Sierra",
    "Zenith",
    "Atlas",
    "Nova",
]


@dataclass
class SyntheticShop:
    """Items (with content) and time-ordered events of a generated shop."""

    items: list[ItemIn]
    events: list[EventIn]
    category_of: dict[str, str] = field(default_factory=dict)
    launch_ts: dict[str, float] = field(default_factory=dict)
    purchase_probability: dict[str, float] = field(default_factory=dict)  # bought once carted
    successors: dict[str, list[str]] = field(default_factory=dict)  # the browsing chain
    start_ts: float = 0.0
    end_ts: float = 0.0

    @property
    def categories(self) -> list[str]:
        return sorted(set(self.category_of.values()))


@dataclass
class _Catalogue:
    category: np.ndarray  # [I] category index of each item
    members: list[np.ndarray]  # per category: items in browsing-chain order
    position: np.ndarray  # [I] position of each item in its chain
    popularity: np.ndarray  # [I] Zipf weights within category
    complement: np.ndarray  # [I] complementary item in the linked category
    launch: np.ndarray  # [I] launch time
    novelty: float = 0.0  # popularity boost right after launch
    novelty_seconds: float = 1.0  # decay time constant of that boost


def _build_catalogue(
    n_items: int,
    n_categories: int,
    start: float,
    end: float,
    new_item_fraction: float,
    rng: np.random.Generator,
) -> _Catalogue:
    category = np.arange(n_items) % n_categories
    rng.shuffle(category)
    members, position = [], np.zeros(n_items, dtype=np.int64)
    popularity = np.zeros(n_items)
    for c in range(n_categories):
        chain = rng.permutation(np.flatnonzero(category == c))
        members.append(chain)
        position[chain] = np.arange(len(chain))
        ranks = rng.permutation(len(chain)) + 1
        popularity[chain] = 1.0 / ranks**1.1
    linked = (np.arange(n_categories) + 1 + rng.integers(0, max(1, n_categories - 1), n_categories)) % n_categories
    linked = np.where(linked == np.arange(n_categories), (linked + 1) % n_categories, linked)
    complement = np.array([rng.choice(members[linked[category[i]]]) for i in range(n_items)])
    launch = np.full(n_items, start)
    late = rng.random(n_items) < new_item_fraction
    launch[late] = start + rng.uniform(0.3, 0.9, late.sum()) * (end - start)
    return _Catalogue(category, members, position, popularity, complement, launch)


def _pick_popular(cat: _Catalogue, c: int, now: float, rng: np.random.Generator) -> int:
    chain = cat.members[c]
    live = chain[cat.launch[chain] <= now]
    if not len(live):
        live = chain
    age = np.maximum(0.0, now - cat.launch[live])
    w = cat.popularity[live] * (1.0 + cat.novelty * np.exp(-age / cat.novelty_seconds))
    return int(rng.choice(live, p=w / w.sum()))


def _next_item(cat: _Catalogue, item: int, now: float, rng: np.random.Generator) -> int:
    r = rng.random()
    c = cat.category[item]
    if r < 0.65:  # follow the browsing chain
        chain = cat.members[c]
        nxt = int(chain[(cat.position[item] + 1 + rng.integers(0, 2)) % len(chain)])
    elif r < 0.85:
        nxt = _pick_popular(cat, c, now, rng)
    else:
        nxt = int(cat.complement[item])
    return nxt if cat.launch[nxt] <= now else _pick_popular(cat, c, now, rng)


def _item_content(i: int, c_name: str, rng: np.random.Generator) -> tuple[str, str, float]:
    nouns, adjectives = _CATEGORIES[c_name]
    noun, adj, brand = (
        nouns[i % len(nouns)],
        adjectives[rng.integers(len(adjectives))],
        _BRANDS[rng.integers(len(_BRANDS))],
    )
    title = f"{brand} {adj} {noun} {100 + i}"
    text = f"A {adj} {noun} for {c_name} from {brand}. Model {100 + i}, designed for everyday {c_name}."
    return title, text, float(np.round(rng.lognormal(3.5, 0.8), 2))


def _purchase_probability(prices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[I] each item's probability of being bought once carted: Beta(1.4, 0.6) draws (mean 0.7, most near
    0 or 1) handed out by a noisy price rank, cheapest most likely."""
    appeal = -np.log(prices) + rng.normal(0.0, 0.7, len(prices))
    out = np.empty(len(prices))
    out[np.argsort(-appeal)] = np.sort(rng.beta(1.4, 0.6, len(prices)))[::-1]
    return out


def generate_shop(
    n_users: int = 1000,
    n_items: int = 500,
    n_categories: int = 12,
    sessions_per_user: tuple[int, int] = (4, 14),
    days: float = 60.0,
    drift: float = 0.15,
    new_item_fraction: float = 0.25,
    novelty: float = 4.0,
    novelty_days: float = 7.0,
    seed: int = 0,
    start_ts: float = 1_700_000_000.0,
) -> SyntheticShop:
    """Generate a shop; see the module docstring for its structure.

    Example
    -------
    >>> shop = generate_shop(n_users=20, n_items=40, n_categories=4, seed=1)
    >>> len(shop.items), shop.events[0].type, all(a.ts <= b.ts for a, b in zip(shop.events, shop.events[1:]))
    (40, 'view', True)
    """
    if n_categories > len(_CATEGORIES):
        raise ValueError(f"at most {len(_CATEGORIES)} categories are available")
    if n_items < 2 * n_categories:
        raise ValueError("need at least two items per category")
    rng = np.random.default_rng(seed)
    end_ts = start_ts + days * 86400.0
    cat = _build_catalogue(n_items, n_categories, start_ts, end_ts, new_item_fraction, rng)
    cat.novelty, cat.novelty_seconds = novelty, novelty_days * 86400.0
    names = list(_CATEGORIES)[:n_categories]
    item_ids = [f"sku-{i:05d}" for i in range(n_items)]
    items, prices = [], np.zeros(n_items)
    for i in range(n_items):
        title, text, prices[i] = _item_content(i, names[cat.category[i]], rng)
        price = float(prices[i])
        items.append(
            ItemIn(
                item_id=item_ids[i],
                title=title,
                text=text,
                categories=[names[cat.category[i]]],
                attributes={"price": price},
            )
        )
    # its own generator: the sessions draw the same numbers as they would without item-level purchases
    buys = _purchase_probability(prices, np.random.default_rng([seed, 1]))
    raw: list[tuple[float, str, int, str]] = []
    for u in range(n_users):
        user_id = f"user-{u:05d}"
        prefs = np.zeros(n_categories)
        favourites = rng.choice(n_categories, size=rng.integers(2, 4), replace=False)
        prefs[favourites] = rng.dirichlet(np.ones(len(favourites)))
        n_sessions = int(rng.integers(sessions_per_user[0], sessions_per_user[1] + 1))
        times = np.sort(rng.uniform(start_ts, end_ts - 3600, n_sessions))
        for now in times:
            c = int(rng.choice(n_categories, p=prefs))
            item = _pick_popular(cat, c, now, rng)
            t = float(now)
            viewed = []
            for _ in range(1 + rng.geometric(0.3)):
                raw.append((t, user_id, item, "view"))
                viewed.append(item)
                t += float(rng.uniform(10, 120))
                item = _next_item(cat, item, t, rng)
            last = viewed[-1]
            if rng.random() < 0.6:
                raw.append((t, user_id, last, "click"))
                t += float(rng.uniform(5, 60))
                if rng.random() < 0.4:
                    raw.append((t, user_id, last, "cart"))
                    t += float(rng.uniform(5, 60))
                    if rng.random() < buys[last]:
                        raw.append((t, user_id, last, "purchase"))
            if rng.random() < drift:  # interest drifts toward another category
                shift = np.zeros(n_categories)
                shift[rng.integers(n_categories)] = 1.0
                prefs = 0.5 * prefs + 0.5 * shift
    raw.sort(key=lambda r: (r[0], r[1]))
    events = [
        EventIn(user_id=u, item_id=item_ids[i], type=kind, ts=round(t, 3), event_id=f"gen-{n}")
        for n, (t, u, i, kind) in enumerate(raw)
    ]
    return SyntheticShop(
        items=items,
        events=events,
        category_of={item_ids[i]: names[cat.category[i]] for i in range(n_items)},
        launch_ts={item_ids[i]: float(cat.launch[i]) for i in range(n_items)},
        purchase_probability={item_ids[i]: float(buys[i]) for i in range(n_items)},
        successors={
            item_ids[i]: [
                item_ids[int(cat.members[cat.category[i]][(cat.position[i] + d) % len(cat.members[cat.category[i]])])]
                for d in (1, 2)
            ]
            for i in range(n_items)
        },
        start_ts=start_ts,
        end_ts=end_ts,
    )
