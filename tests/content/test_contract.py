"""The ContentEncoder contract, run against every encoder.

Guarantees (from :class:`freshrec.content.encoders.ContentEncoder`): ``encode`` answers [N, dim] float32
with L2-normalised rows and all-zero rows for items with no content; once fitted, encoding is
deterministic, so every process (and the :class:`~freshrec.content.store.ContentStore`, which pickles the
fitted encoder) gets the same vector for the same item; similar items land closer than unrelated ones.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from freshrec.content.document import has_content
from freshrec.content.encoders import ContentEncoder, MiniLMEncoder, make_encoder
from freshrec.schema import ItemIn

CORPUS = [
    ItemIn(item_id="tent", title="Ultralight camping tent", categories=["camping"], text="Sleeps two hikers."),
    ItemIn(item_id="tent2", title="Family camping tent", categories=["camping"], text="Sleeps six campers."),
    ItemIn(item_id="bag", title="Down sleeping bag", categories=["camping"], text="Warm on cold camping nights."),
    ItemIn(item_id="pan", title="Cast iron skillet", categories=["kitchen"], text="Sears steak in the kitchen."),
    ItemIn(item_id="wok", title="Carbon steel wok", categories=["kitchen"], text="Stir fry in the kitchen."),
    ItemIn(item_id="knife", title="Chef knife", categories=["kitchen"], text="Slices vegetables for the kitchen."),
    ItemIn(item_id="shoe", title="Trail running shoe", categories=["running"], attributes={"price": 120}),
    ItemIn(item_id="road", title="Road running shoe", categories=["running"], attributes={"price": 90}),
]
BARE = ItemIn(item_id="bare")

# A new encoder is one entry here (its name in make_encoder); the minilm one needs the `text` extra.
ENCODERS = [
    "tfidf",
    pytest.param("minilm", marks=pytest.mark.skipif(not MiniLMEncoder.available(), reason="needs freshrec[text]")),
]


@pytest.fixture(scope="module", params=ENCODERS)
def encoder(request: pytest.FixtureRequest) -> ContentEncoder:
    """Fitted once per module: minilm takes seconds to load."""
    return make_encoder(request.param, dim=16).fit(CORPUS)


@pytest.fixture(scope="module")
def corpus_vectors(encoder: ContentEncoder) -> np.ndarray:
    return encoder.encode(CORPUS)


def by_id(vectors: np.ndarray, item_id: str) -> np.ndarray:
    return vectors[[it.item_id for it in CORPUS].index(item_id)]


def test_encoder_satisfies_the_protocol(encoder: ContentEncoder) -> None:
    assert isinstance(encoder, ContentEncoder)
    assert isinstance(encoder.name, str) and encoder.name


def test_encode_returns_n_by_dim_float32(encoder: ContentEncoder) -> None:
    vectors = encoder.encode([*CORPUS, BARE])
    assert vectors.shape == (len(CORPUS) + 1, encoder.dim) and vectors.dtype == np.float32
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_rows_with_content_are_l2_normalised(corpus_vectors: np.ndarray) -> None:
    assert np.allclose(np.linalg.norm(corpus_vectors, axis=1), 1.0, atol=1e-5)


def test_rows_of_items_with_no_content_are_all_zero(encoder: ContentEncoder) -> None:
    bare = [BARE, ItemIn(item_id="empty", title="", text="", categories=[], attributes={})]
    vectors = encoder.encode([CORPUS[0], *bare, CORPUS[1]])
    assert not vectors[1:3].any()
    assert np.allclose(np.linalg.norm(vectors[[0, 3]], axis=1), 1.0, atol=1e-5)  # neighbours unaffected


def test_each_content_field_alone_gives_a_unit_row(encoder: ContentEncoder) -> None:
    alone = [
        ItemIn(item_id="t", title="Camping tent"),
        ItemIn(item_id="x", text="A skillet for the kitchen."),
        ItemIn(item_id="c", categories=["running"]),
    ]
    assert np.allclose(np.linalg.norm(encoder.encode(alone), axis=1), 1.0, atol=1e-5)


def test_an_item_with_only_attributes_gives_a_unit_row(encoder: ContentEncoder, request: pytest.FixtureRequest) -> None:
    if encoder.name == "minilm":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                raises=AssertionError,
                reason="has_content() counts attributes as content (ContentStore then marks the item as having "
                "a vector), but MiniLMEncoder reads only title, categories and text and returns a zero row",
            )
        )
    item = ItemIn(item_id="a", attributes={"price": 300})
    assert has_content(item)
    [vector] = encoder.encode([item])
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_an_item_whose_words_the_fit_never_saw_gives_a_unit_row(
    encoder: ContentEncoder, request: pytest.FixtureRequest
) -> None:
    if encoder.name == "tfidf":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                raises=AssertionError,
                reason="TfidfEncoder maps text made only of words absent from the fit corpus to a zero row, "
                "although has_content() is True (ContentStore marks such new items as having a vector)",
            )
        )
    item = ItemIn(item_id="new", title="Zorbulating quixwidget")
    assert has_content(item)
    [vector] = encoder.encode([item])
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_encoding_is_deterministic(encoder: ContentEncoder, corpus_vectors: np.ndarray) -> None:
    first = corpus_vectors
    assert np.array_equal(encoder.encode(CORPUS), first)
    # Another batch (as ContentStore.update encodes a few items at a time) gives the same vectors up to
    # float rounding: batched transformers pad to the batch's longest text.
    assert np.allclose(encoder.encode(CORPUS[4:1:-1]), first[4:1:-1], atol=1e-5)


def test_a_fitted_encoder_encodes_identically_after_pickling(
    encoder: ContentEncoder, corpus_vectors: np.ndarray
) -> None:
    before = corpus_vectors
    restored = pickle.loads(pickle.dumps(encoder))
    assert restored.name == encoder.name and restored.dim == encoder.dim
    assert np.array_equal(restored.encode(CORPUS), before)


def test_similar_items_are_closer_than_unrelated_ones(corpus_vectors: np.ndarray) -> None:
    v = corpus_vectors

    def cos(a: str, b: str) -> float:
        return float(by_id(v, a) @ by_id(v, b))

    assert cos("tent", "tent2") > cos("tent", "pan")
    assert cos("tent", "tent2") > cos("tent", "wok")
    assert cos("pan", "wok") > cos("pan", "tent")
    assert cos("shoe", "road") > cos("shoe", "knife")
