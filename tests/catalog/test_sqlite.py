from pathlib import Path

import pytest

from freshrec.catalog.base import open_catalog
from freshrec.schema import ItemIn


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/catalog.db"


def test_indices_are_dense_stable_and_survive_reopen(url: str) -> None:
    cat = open_catalog(url)
    assert cat.internal_ids(["a", "b", "a"]) == [1, 2, 1]
    cat.upsert([ItemIn(item_id="c", title="C")])
    cat.close()
    cat = open_catalog(url)
    assert cat.internal_ids(["c", "b", "a"], create=False) == [3, 2, 1]
    assert cat.internal_id("zzz", create=False) is None and len(cat) == 3
    assert cat.external_ids() == ["a", "b", "c"]
    cat.close()


def test_upsert_changes_only_given_fields(url: str) -> None:
    cat = open_catalog(url)
    cat.upsert([ItemIn(item_id="a", title="Tent", text="2-person", categories=["camping"], attributes={"price": 99})])
    cat.upsert([ItemIn(item_id="a", available=False)])
    [item] = cat.get(["a"])
    assert item is not None
    assert (item.title, item.text, item.categories, item.attributes, item.available) == (
        "Tent",
        "2-person",
        ["camping"],
        {"price": 99.0},
        False,
    )
    assert cat.available_mask().tolist() == [False, False]
    cat.upsert([ItemIn(item_id="a", available=True, title="Tent XL")])
    assert cat.available_mask().tolist() == [False, True]
    assert cat.title(1) == "Tent XL"
    assert cat.get(["missing"]) == [None]
    cat.close()


def test_two_handles_on_one_file_agree(url: str) -> None:
    one, two = open_catalog(url), open_catalog(url)
    assert one.internal_ids(["a", "b"]) == [1, 2]
    assert two.internal_ids(["c", "a"]) == [3, 1]  # two sees one's rows before claiming new ones
    assert one.internal_ids(["c"]) == [3]
    one.close()
    two.close()


def test_claiming_an_id_another_handle_already_took_leaves_no_gap(url: str) -> None:
    one, two = open_catalog(url), open_catalog(url)
    assert one.internal_ids(["a", "b"]) == [1, 2]
    # two has not seen one's rows and claims an overlapping batch: "a" must not burn an index.
    assert two.internal_ids(["a", "x"]) == [1, 3]
    assert one.internal_ids(["y", "x"]) == [4, 3]
    three = open_catalog(url)
    assert three.external_ids() == ["a", "b", "x", "y"]
    for cat in (one, two, three):
        cat.close()


def test_version_changes_on_every_write(url: str) -> None:
    cat = open_catalog(url)
    v0 = cat.version
    cat.internal_ids(["a"])
    v1 = cat.version
    cat.upsert([ItemIn(item_id="a", available=False)])
    assert v0 < v1 < cat.version
    cat.close()
