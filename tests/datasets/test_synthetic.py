import itertools
from collections import Counter

from freshrec.datasets.synthetic import generate_shop


def test_shop_is_seeded_and_structured() -> None:
    a = generate_shop(n_users=50, n_items=60, n_categories=6, seed=4)
    b = generate_shop(n_users=50, n_items=60, n_categories=6, seed=4)
    assert [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events]
    assert len(a.items) == 60 and len(a.categories) == 6
    assert all(x.ts <= y.ts for x, y in zip(a.events, a.events[1:], strict=False))
    kinds = Counter(e.type for e in a.events)
    assert kinds["view"] > kinds["click"] > kinds["purchase"] > 0
    assert all(it.title and it.text and it.categories for it in a.items)


def test_users_follow_the_browsing_chain() -> None:
    shop = generate_shop(n_users=200, n_items=80, n_categories=4, seed=1)
    by_user: dict[str, list[str]] = {}
    for e in shop.events:
        if e.type == "view":
            by_user.setdefault(e.user_id, []).append(e.item_id)
    pairs = [(a, b) for seq in by_user.values() for a, b in itertools.pairwise(seq) if a != b]
    follow = sum(b in shop.successors[a] for a, b in pairs) / len(pairs)
    assert follow > 0.4  # far above the 2/80 a random walk would give


def test_new_items_appear_only_after_launch() -> None:
    shop = generate_shop(n_users=100, n_items=60, n_categories=4, new_item_fraction=0.3, seed=2)
    late = {i for i, t in shop.launch_ts.items() if t > shop.start_ts}
    assert late
    for e in shop.events:
        if e.item_id in late:
            assert e.ts >= shop.launch_ts[e.item_id] - 1e-6
