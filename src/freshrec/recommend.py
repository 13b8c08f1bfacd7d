"""The hot path: user state -> encode -> index.topk -> reasons; trending for users the model cannot serve.

Every list is computed fresh from the user's latest sequence: there is no precomputed per-user list to go
stale. :class:`ServingModel` prepares one model version for serving (id translation, the index, the
availability mask); :class:`Recommender` holds exactly one current ``ServingModel`` and swaps it by a
single reference assignment, so a request that started on the old version finishes on it.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from freshrec.catalog.base import Catalog
from freshrec.config import ServingSettings
from freshrec.errors import InvalidInput, ModelUnavailable, NotFound
from freshrec.index.exact import ExactIndex
from freshrec.model.registry import LoadedModel
from freshrec.rerank import describe, explain_by_sequence
from freshrec.schema import RecommendationList, RecommendedItem, SimilarItems
from freshrec.sequence import EventTypes
from freshrec.state.base import StateStore, UserSnapshot
from freshrec.state.trending import Trending


class ServingModel:
    """One model version bound to a catalogue.

    The model's rows follow its own id map; ``catalog_of_row`` and :meth:`rows` translate between model
    rows and catalogue indices, so a version trained elsewhere (or before new items arrived) still
    serves correctly: items the model has no row for are simply not scored by it.
    """

    def __init__(self, loaded: LoadedModel, catalog: Catalog, types: EventTypes) -> None:
        self.version = loaded.version
        self.model = loaded.model.eval()
        self.meta = loaded.meta
        self.max_len = self.model.config.max_len
        cat_idx = np.asarray(catalog.internal_ids(loaded.item_ids, create=True), dtype=np.int64)
        self.catalog_of_row = np.concatenate([[0], cat_idx])  # [Nm + 1]
        self._row_of_catalog = np.zeros(int(cat_idx.max(initial=0)) + 1, dtype=np.int64)
        self._row_of_catalog[cat_idx] = np.arange(1, len(cat_idx) + 1)
        # The model's type codes follow the type list it was trained with; map ours onto them.
        model_code = {name: i + 1 for i, name in enumerate(loaded.event_types)}
        self.type_map = np.array([0] + [model_code.get(n, 0) for n in types.names], dtype=np.int64)
        with torch.no_grad():
            vectors = self.model.item_emb.weight.detach().float().clone()
        self.index = ExactIndex(vectors)
        self.unit = torch.nn.functional.normalize(vectors, dim=1)
        self._allowed: tuple[int, torch.Tensor] | None = None

    @property
    def num_rows(self) -> int:
        return len(self.catalog_of_row) - 1

    def rows(self, catalog_idx: np.ndarray) -> np.ndarray:
        """Model rows of catalogue indices (0 where the model has no row)."""
        idx = np.asarray(catalog_idx, dtype=np.int64)
        inside = idx < len(self._row_of_catalog)
        out = np.zeros(len(idx), dtype=np.int64)
        out[inside] = self._row_of_catalog[idx[inside]]
        return out

    def allowed(self, catalog: Catalog) -> torch.Tensor:
        """[Nm + 1] bool: rows whose item is available now; cached until the catalogue changes."""
        cached = self._allowed
        if cached is None or cached[0] != catalog.version:
            mask = torch.from_numpy(catalog.available_mask()[self.catalog_of_row])
            mask[0] = False
            cached = self._allowed = (catalog.version, mask)
        return cached[1]

    def encode(self, rows: np.ndarray, type_codes: np.ndarray) -> torch.Tensor:
        """User vector from one sequence of model rows (newest last): -> [1, D]."""
        rows, type_codes = rows[-self.max_len :], type_codes[-self.max_len :]
        x = torch.from_numpy(rows)[None, :]
        t = torch.from_numpy(self.type_map[type_codes])[None, :]
        with torch.inference_mode():
            return self.model.encode(x, torch.tensor([len(rows)]), t).float()


class Recommender:
    """Answers recommendation and similar-item requests from live state and the current model."""

    def __init__(
        self,
        state: StateStore,
        catalog: Catalog,
        trending: Trending,
        types: EventTypes,
        settings: ServingSettings,
    ) -> None:
        self.state = state
        self.catalog = catalog
        self.trending = trending
        self.types = types
        self.settings = settings
        self.serving: ServingModel | None = None
        self._swap_lock = threading.Lock()

    def swap(self, serving: ServingModel | None) -> ServingModel | None:
        """Make ``serving`` current; returns the previous one. Requests in flight keep their reference."""
        with self._swap_lock:
            previous, self.serving = self.serving, serving
        return previous

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.settings.max_k:
            raise InvalidInput(f"k must be between 1 and {self.settings.max_k} (serving.max_k), got {k}")

    def recommend(self, user_id: str, k: int | None = None, exclude_seen: bool | None = None) -> RecommendationList:
        """Top-k for a user from their live sequence; trending when the model cannot serve them."""
        k = self.settings.default_k if k is None else k
        self.check_k(k)
        exclude_seen = self.settings.exclude_seen if exclude_seen is None else exclude_seen
        snap = self.state.get(user_id)
        serving = self.serving  # one read: this request uses this version to the end
        if serving is not None and snap is not None:
            rows = serving.rows(snap.items)
            usable = rows > 0
            if usable.any():
                return self._from_model(user_id, serving, snap, rows[usable], snap.types[usable], k, exclude_seen)
        return self._trending(user_id, snap, k, exclude_seen, serving)

    def trending_list(self, user_id: str, k: int | None = None, exclude_seen: bool | None = None) -> RecommendationList:
        """The trending list for a user (their seen items excluded), whatever the model could do."""
        k = self.settings.default_k if k is None else k
        self.check_k(k)
        exclude_seen = self.settings.exclude_seen if exclude_seen is None else exclude_seen
        return self._trending(user_id, self.state.get(user_id), k, exclude_seen, self.serving)

    def _from_model(
        self,
        user_id: str,
        serving: ServingModel,
        snap: UserSnapshot,
        rows: np.ndarray,
        type_codes: np.ndarray,
        k: int,
        exclude_seen: bool,
    ) -> RecommendationList:
        user = serving.encode(rows, type_codes)
        exclude = [serving.rows(snap.seen)] if exclude_seen else None
        ids, scores = serving.index.topk(user, k, exclude=exclude, allowed=serving.allowed(self.catalog))
        keep = np.isfinite(scores[0])
        rec_rows, rec_scores = ids[0][keep], scores[0][keep]
        recent = rows[-self.settings.explain_window :]
        recent_types = [self.types.name(int(c)) for c in type_codes[-self.settings.explain_window :]]
        recent_cat = serving.catalog_of_row[recent]
        labels = [describe(self.catalog.external_id(int(i)), self.catalog.title(int(i))) for i in recent_cat]
        reasons = explain_by_sequence(rec_rows, recent, recent_types, labels, serving.unit)
        cat_idx = serving.catalog_of_row[rec_rows]
        return RecommendationList(
            user_id=user_id,
            source="model",
            model_version=serving.version,
            sequence_length=min(len(rows), serving.max_len),
            items=[
                RecommendedItem(
                    item_id=self.catalog.external_id(int(i)),
                    score=float(s),
                    reason=r,
                    title=self.catalog.title(int(i)),
                )
                for i, s, r in zip(cat_idx, rec_scores, reasons, strict=True)
            ],
        )

    def _trending(
        self,
        user_id: str,
        snap: UserSnapshot | None,
        k: int,
        exclude_seen: bool,
        serving: ServingModel | None,
    ) -> RecommendationList:
        n = len(self.catalog)
        scores = self.trending.scores(n)
        scores[~self.catalog.available_mask()] = -np.inf
        if exclude_seen and snap is not None and len(snap.seen):
            scores[snap.seen[snap.seen <= n]] = -np.inf
        k = min(k, n)
        top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n + 1)
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])][:k]
        return RecommendationList(
            user_id=user_id,
            source="trending",
            model_version=serving.version if serving is not None else None,
            sequence_length=0,
            items=[
                RecommendedItem(
                    item_id=self.catalog.external_id(int(i)),
                    score=float(scores[i]),
                    reason="trending",
                    title=self.catalog.title(int(i)),
                )
                for i in top
            ],
        )

    def similar(self, item_id: str, k: int | None = None) -> SimilarItems:
        """Nearest items to ``item_id`` by cosine similarity of the model's item embeddings."""
        k = self.settings.default_k if k is None else k
        self.check_k(k)
        serving = self.serving
        if serving is None:
            raise ModelUnavailable("no model loaded; train one with `freshrec train`")
        idx = self.catalog.internal_id(item_id, create=False)
        row = int(serving.rows(np.array([idx]))[0]) if idx else 0
        if not row:
            raise NotFound(f"item {item_id!r} is unknown to model {serving.version}")
        query = serving.unit[row][None, :]
        scores = (query @ serving.unit.T)[0]
        allowed = serving.allowed(self.catalog).clone()
        allowed[row] = False
        scores = scores.masked_fill(~allowed, float("-inf"))
        top = torch.topk(scores, min(k, serving.num_rows))
        label = describe(item_id, self.catalog.title(idx))
        items = []
        for r, s in zip(top.indices.tolist(), top.values.tolist(), strict=True):
            if not np.isfinite(s):
                continue
            cat = int(serving.catalog_of_row[r])
            items.append(
                RecommendedItem(
                    item_id=self.catalog.external_id(cat),
                    score=float(s),
                    reason=f"similar to {label}",
                    title=self.catalog.title(cat),
                )
            )
        return SimilarItems(item_id=item_id, model_version=serving.version, items=items)
