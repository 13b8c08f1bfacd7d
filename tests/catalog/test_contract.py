"""The Catalog contract, run against every backend.

Guarantees (from :class:`freshrec.catalog.base.Catalog`): indices are dense from 1, stable and never
reused; ``upsert`` is durable on return; fields an upsert leaves out keep their stored value; ``version``
moves on every change; several instances on one store (several processes) agree on every index.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from freshrec.catalog.base import Catalog, open_catalog
from freshrec.schema import ItemIn

Opener = Callable[[], Catalog]

# A new backend is one entry here: its name and the URL of a fresh, empty store under tmp_path.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str]] = {
    "sqlite": lambda request, tmp: f"sqlite:///{tmp}/catalog.db",
    "redis": lambda request, tmp: request.getfixturevalue("empty_redis"),
}


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens instances on one store; each call is a new instance, as another process would hold."""
    url = BACKENDS[request.param](request, tmp_path)
    opened: list[Catalog] = []

    def open_() -> Catalog:
        cat = open_catalog(url)
        opened.append(cat)
        return cat

    yield open_
    for cat in opened:
        cat.close()


@pytest.fixture
def cat(opener: Opener) -> Catalog:
    return opener()


def test_backend_satisfies_the_protocol(cat: Catalog) -> None:
    assert isinstance(cat, Catalog)


def test_indices_are_dense_from_one_in_first_seen_order(cat: Catalog) -> None:
    assert len(cat) == 0 and cat.external_ids() == []
    assert cat.internal_ids(["a", "b", "a"]) == [1, 2, 1]
    assert cat.upsert([ItemIn(item_id="c"), ItemIn(item_id="a"), ItemIn(item_id="d")]) == ([3, 1, 4], 2)
    assert cat.internal_id("e") == 5
    assert len(cat) == 5


def test_indices_are_stable_across_updates_and_reopen(opener: Opener) -> None:
    cat = opener()
    first, _ = cat.upsert([ItemIn(item_id=f"i{k}", title=f"T{k}") for k in range(20)])
    cat.upsert([ItemIn(item_id="i7", title="renamed", available=False)])
    cat.internal_ids(["new"])
    cat.close()
    again = opener()
    assert again.internal_ids([f"i{k}" for k in range(20)], create=False) == first
    assert again.internal_id("new", create=False) == 21


def test_an_index_is_never_reused_for_another_id(cat: Catalog) -> None:
    ids = [f"i{k}" for k in range(50)]
    for start in range(0, 50, 7):  # many small batches, some overlapping the previous one
        cat.internal_ids(ids[max(0, start - 3) : start + 7])
    assert cat.external_ids() == ids
    assert [cat.external_id(i) for i in range(1, 51)] == ids


def test_failed_upsert_claims_no_index_and_stores_nothing(cat: Catalog) -> None:
    cat.upsert([ItemIn(item_id="kept", title="Kept")])
    # model_construct skips validation, so the store itself meets a value it cannot write.
    bad = ItemIn.model_construct(item_id="bad", attributes={"weight": object()})
    with pytest.raises(TypeError):
        cat.upsert([ItemIn(item_id="fine", title="Fine"), bad])
    assert len(cat) == 1 and cat.internal_ids(["fine", "bad"], create=False) == [0, 0]
    assert cat.internal_id("next") == 2  # no gap where the failed batch claimed indices


def test_upsert_is_durable_on_return(opener: Opener) -> None:
    writer = opener()
    writer.upsert([ItemIn(item_id="a", title="Tent", text="2-person", categories=["camping"], attributes={"kg": 2})])
    # Another instance opened after upsert returned (the writer still open, as if its process died).
    [seen] = opener().get(["a"])
    assert seen is not None
    assert (seen.item_idx, seen.title, seen.text, seen.categories, seen.attributes, seen.available) == (
        1,
        "Tent",
        "2-person",
        ["camping"],
        {"kg": 2.0},
        True,
    )
    writer.close()
    reopened = opener()
    assert reopened.get(["a"]) == [seen]
    assert reopened.title(1) == "Tent" and reopened.categories(1) == ["camping"]


def test_fields_an_upsert_leaves_out_keep_their_stored_value(opener: Opener) -> None:
    cat = opener()
    cat.upsert([ItemIn(item_id="a", title="Tent", text="2-person", categories=["camping"], attributes={"kg": 2})])
    cat.upsert([ItemIn(item_id="a", available=False)])
    cat.upsert([ItemIn(item_id="a", title="Tent XL")])
    cat.upsert([ItemIn(item_id="a")])  # no field given: nothing changes
    expected = ("Tent XL", "2-person", ["camping"], {"kg": 2.0}, False)
    for handle in (cat, opener()):  # in this instance's memory and in the store
        [item] = handle.get(["a"])
        assert item is not None
        assert (item.title, item.text, item.categories, item.attributes, item.available) == expected
        assert handle.title(1) == "Tent XL" and handle.categories(1) == ["camping"]
        assert handle.available_mask().tolist() == [False, False]


def test_fields_an_upsert_gives_are_replaced_even_with_empty_values(cat: Catalog) -> None:
    cat.upsert([ItemIn(item_id="a", title="Tent", categories=["camping"], attributes={"kg": 2})])
    cat.upsert([ItemIn(item_id="a", title=None, categories=[], attributes={})])
    [item] = cat.get(["a"])
    assert item is not None and (item.title, item.categories, item.attributes) == (None, [], {})
    assert cat.title(1) is None and cat.categories(1) == []


def test_internal_id_creates_a_bare_item_only_when_asked(cat: Catalog) -> None:
    assert cat.internal_id("a", create=False) is None
    assert len(cat) == 0 and cat.get(["a"]) == [None]
    assert cat.internal_id("a") == 1
    [item] = cat.get(["a"])
    assert item is not None
    assert (item.item_idx, item.title, item.text, item.categories, item.attributes, item.available) == (
        1,
        None,
        None,
        [],
        {},
        True,
    )
    assert cat.internal_id("a", create=False) == 1


def test_internal_ids_map_unknown_ids_to_zero_when_not_created(cat: Catalog) -> None:
    cat.internal_ids(["a", "b"])
    assert cat.internal_ids(["b", "x", "a", "y"], create=False) == [2, 0, 1, 0]
    assert len(cat) == 2
    assert cat.internal_ids([], create=False) == [] and cat.internal_ids([]) == []


def test_external_ids_position_i_holds_index_i_plus_one(cat: Catalog) -> None:
    cat.internal_ids(["z", "y"])
    cat.upsert([ItemIn(item_id="x", title="X")])
    ids = cat.external_ids()
    assert ids == ["z", "y", "x"]
    assert [cat.internal_id(i, create=False) for i in ids] == [1, 2, 3]
    ids.append("mutated")  # a copy: callers may keep and change it
    assert cat.external_ids() == ["z", "y", "x"]


def test_available_mask_has_padding_false_and_unavailable_items_false(cat: Catalog) -> None:
    assert cat.available_mask().tolist() == [False]
    cat.upsert([ItemIn(item_id="a"), ItemIn(item_id="b", available=False), ItemIn(item_id="c")])
    cat.internal_ids(["bare"])
    mask = cat.available_mask()
    assert mask.dtype == bool and mask.shape == (len(cat) + 1,)
    assert mask.tolist() == [False, True, False, True, True]
    mask[:] = True  # callers cache and may change it; the catalogue's own state must not move
    assert cat.available_mask().tolist() == [False, True, False, True, True]
    cat.upsert([ItemIn(item_id="b", available=True), ItemIn(item_id="a", available=False)])
    assert cat.available_mask().tolist() == [False, False, True, True, True]


def test_version_moves_on_every_change(cat: Catalog) -> None:
    seen = [cat.version]
    cat.internal_ids(["a"])  # a new bare item
    seen.append(cat.version)
    cat.upsert([ItemIn(item_id="b", title="B")])  # a new item with content
    seen.append(cat.version)
    cat.upsert([ItemIn(item_id="a", title="A")])  # an update
    seen.append(cat.version)
    cat.upsert([ItemIn(item_id="a", available=False)])  # availability alone
    seen.append(cat.version)
    assert len(set(seen)) == len(seen), seen


def test_updated_since_returns_items_created_or_changed_after_ts(cat: Catalog) -> None:
    cat.upsert([ItemIn(item_id="a", title="A"), ItemIn(item_id="b", title="B")])
    mark = time.time()
    while time.time() <= mark:  # wait until the clock has moved past the mark (no fixed sleep)
        pass
    cat.upsert([ItemIn(item_id="b", title="B2"), ItemIn(item_id="c", title="C")])
    cat.internal_ids(["d"])
    assert sorted(cat.updated_since(mark)) == [2, 3, 4]
    assert sorted(cat.updated_since(0.0)) == [1, 2, 3, 4]
    assert cat.updated_since(time.time() + 3600) == []


def test_get_and_get_by_idx_return_full_items_in_request_order(cat: Catalog) -> None:
    cat.upsert(
        [
            ItemIn(item_id="a", title="A", text="alpha", categories=["x", "y"], attributes={"p": 1.5}),
            ItemIn(item_id="b", title="B", available=False),
        ]
    )
    a, b = cat.get(["a", "b"])
    assert a is not None and b is not None
    assert (a.item_idx, a.item_id, a.title, a.text, a.categories, a.attributes, a.available) == (
        1,
        "a",
        "A",
        "alpha",
        ["x", "y"],
        {"p": 1.5},
        True,
    )
    assert (b.item_idx, b.item_id, b.title, b.available) == (2, "b", "B", False)
    assert cat.get(["b", "missing", "a", "b"]) == [b, None, a, b]
    assert cat.get_by_idx([2, 1, 2]) == [b, a, b]
    assert cat.get([]) == [] and cat.get_by_idx([]) == []


def test_titles_and_categories_follow_the_index(cat: Catalog) -> None:
    cat.upsert([ItemIn(item_id="a", title="A", categories=["c1"]), ItemIn(item_id="b", categories=["c2", "c3"])])
    cat.internal_ids(["bare"])
    assert cat.titles() == ["A", None, None]
    assert [cat.title(i) for i in (1, 2, 3)] == ["A", None, None]
    assert [cat.categories(i) for i in (1, 2, 3)] == [["c1"], ["c2", "c3"], []]


def test_items_with_the_same_categories_share_one_list(cat: Catalog) -> None:
    # a list per item would cost ~70 bytes each before its strings: 70 MB of the mirror at 1M items
    cat.upsert([ItemIn(item_id=i, categories=["c1"]) for i in ("a", "b")] + [ItemIn(item_id="c", categories=["c2"])])
    cat.internal_ids(["bare1", "bare2"])
    cat.upsert([ItemIn(item_id="c", categories=["c1"])])
    assert cat.categories(1) is cat.categories(2) is cat.categories(3) and cat.categories(1) == ["c1"]
    assert cat.categories(4) is cat.categories(5) and cat.categories(4) == []


def test_two_instances_on_one_store_agree_on_indices(opener: Opener) -> None:
    one, two = opener(), opener()
    assert one.internal_ids(["a", "b"]) == [1, 2]
    # two has not seen one's rows: it must catch up before claiming, not hand out 1 and 2 again.
    assert two.internal_ids(["c", "a"]) == [3, 1]
    assert one.upsert([ItemIn(item_id="d"), ItemIn(item_id="c")]) == ([4, 3], 1)
    assert two.internal_ids(["x", "d", "b"]) == [5, 4, 2]
    third = opener()
    assert one.external_ids()[:4] == two.external_ids()[:4] == third.external_ids()[:4] == ["a", "b", "c", "d"]
    assert third.external_ids() == ["a", "b", "c", "d", "x"]


def test_an_item_another_instance_created_is_found_without_creating(opener: Opener) -> None:
    one, two = opener(), opener()
    one.upsert([ItemIn(item_id="a", title="A")])
    assert two.internal_id("a", create=False) == 1
    assert two.internal_ids(["a"], create=False) == [1]
    [item] = two.get(["a"])
    assert item is not None and item.title == "A"
    assert len(two) == 1


def test_refresh_picks_up_what_another_instance_added_or_changed(opener: Opener) -> None:
    one, two = opener(), opener()
    one.upsert([ItemIn(item_id="a", title="A", categories=["x"])])
    assert two.refresh() and two.external_ids() == ["a"]
    assert not two.refresh()  # nothing changed since
    one.upsert([ItemIn(item_id="a", title="A2", categories=["y"], available=False), ItemIn(item_id="b")])
    version = two.version
    assert two.refresh()
    assert (two.title(1), two.categories(1), len(two)) == ("A2", ["y"], 2)
    assert not two.available_mask()[1] and two.version > version


def test_unknown_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="scheme"):
        open_catalog("mongodb://localhost/catalog")
