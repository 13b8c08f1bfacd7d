"""ServingModel: one published model version bound to a catalogue, ready for the hot path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from freshrec.candidates.base import Proposal
from freshrec.catalog.base import Catalog
from freshrec.content.mapping import ContentMapping, fit_for_model
from freshrec.content.store import ContentStore
from freshrec.index.base import build_index
from freshrec.model.data import pad_histories
from freshrec.model.registry import LoadedModel
from freshrec.model.rowmap import RowMap
from freshrec.model.sasrec import OBJECTIVES
from freshrec.sequence import EventTypes

log = logging.getLogger(__name__)

#: Items the index proposes per user before the conversion head re-scores them, for a request that ranks for
#: conversion or a blend: the head moves an item's score by a few logits at most, so the items it lifts into
#: a top k are among the best couple of hundred by the dot product.
OBJECTIVE_POOL = 200

#: Seconds a content mapping is reused for versions fine-tuned from the one it was fitted for (a
#: micro-batch barely moves the item table's broad shape, which is all the mapping reads).
MAPPING_REUSE_S = 60.0

#: Smallest norm a row is divided by when made unit length (as torch.nn.functional.normalize does).
NORM_EPS = 1e-12


@dataclass(frozen=True)
class ColdTable:
    """Items the model has no row for, with rows mapped from their content. Replaced, never mutated,
    so a request holding one sees a consistent table."""

    catalog_idx: np.ndarray  # [M] catalogue indices
    vectors: torch.Tensor  # [M, D] mapped rows
    unit: np.ndarray  # [M, D] L2-normalised, for reasons

    @staticmethod
    def empty(dim: int) -> ColdTable:
        return ColdTable(np.zeros(0, dtype=np.int64), torch.zeros(0, dim), np.zeros((0, dim), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.catalog_idx)

    def position(self, catalog_idx: np.ndarray) -> np.ndarray:
        """[C] each item's position in the table, -1 where it is not in it."""
        if not len(self.catalog_idx):
            return np.full(len(catalog_idx), -1)
        order = np.argsort(self.catalog_idx, kind="stable")
        found = np.searchsorted(self.catalog_idx, catalog_idx, sorter=order)
        found = np.minimum(found, len(order) - 1)
        at = order[found]
        return np.where(self.catalog_idx[at] == catalog_idx, at, -1)


class ServingModel:
    """One model version bound to a catalogue.

    The model's rows follow its own id map; ``catalog_of_row`` and :meth:`rows` translate between model
    rows and catalogue indices, so a version trained elsewhere (or before new items arrived) still
    serves correctly: items the model has no row for are simply not scored by it.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        catalog: Catalog,
        types: EventTypes,
        index: str = "auto",
    ) -> None:
        self.version = loaded.version
        self.model = loaded.model.eval()
        self.meta = loaded.meta
        self.max_len = self.model.config.max_len
        self.row_map = RowMap.from_item_ids(catalog, loaded.item_ids)
        self.catalog_of_row = self.row_map.catalog_of_row  # [Nm + 1]
        # The model's type codes follow the type list it was trained with; map ours onto them.
        self.type_map = types.translation(loaded.event_types)
        # One copy of the item table: the model's weights, which the index scans (or re-scores from) in
        # place; at 1M items each float32 copy is 256 MB. Cosines divide by the row norms instead of
        # keeping a normalised copy.
        self.table = self.model.item_emb.weight.detach().float()  # [Nm + 1, D]; no copy when float32
        self.index = build_index(self.table, index)
        self.norms = self.table.norm(dim=1).clamp_min_(NORM_EPS)  # [Nm + 1]
        self._allowed: tuple[int, torch.Tensor] | None = None
        self._conversion_bias: np.ndarray | None = None
        # Rows that never saw a training interaction: never served from the row itself (it only learned
        # to lose), scored from content instead when the item has some.
        untrained = loaded.meta.get("untrained_items") or []
        idx = np.asarray(catalog.internal_ids(untrained, create=False), dtype=np.int64) if untrained else None
        self.unlearned = np.zeros(self.num_rows + 1, dtype=bool)
        if idx is not None and len(idx):
            rows = self.row_map.rows(idx[idx > 0])
            self.unlearned[rows[rows > 0]] = True
        self.content = None
        #: the version's ranker over live candidates (set by whoever binds it for serving); None: the model's
        #: own ranking is served
        self.ranker: Any = None
        self.mapping: ContentMapping | None = None
        self.mapping_fitted_at = float("nan")  # time.monotonic() of the mapping's fit
        self.cold = ColdTable.empty(self.dim)
        self._cold_lock = threading.Lock()

    # ---- cold start ------------------------------------------------------------------------------

    def attach_content(self, content: ContentStore) -> None:
        """Fit the content -> row mapping on this version's warm items and map every item the model has
        no row for, so those items are scored from their content. No-op without a fitted encoder."""
        if not content.fitted:
            return
        table = self.model.item_emb.weight.detach().float().numpy()
        learned = np.flatnonzero(~self.unlearned[1:]) + 1
        mapping = fit_for_model(content, self.catalog_of_row, table, learned, np.random.default_rng(0))
        if mapping is None:
            return
        self.content, self.mapping, self.mapping_fitted_at = content, mapping, time.monotonic()
        report = mapping.report
        log.info(
            "content mapping for %s: fitted on %d warm items, held-out cosine %.3f (mean-row baseline %.3f)",
            self.version,
            report.fitted_on if report else 0,
            report.cosine_mean if report else float("nan"),
            report.baseline_cosine_mean if report else float("nan"),
        )
        self.update_cold(content.with_content())

    def reuse_content(self, previous: ServingModel | None, content: ContentStore) -> bool:
        """Take over ``previous``'s content mapping instead of fitting one, when this version was fine-tuned
        from it (its ``parent``) and the mapping is younger than :data:`MAPPING_REUSE_S`; then map the cold
        items. False (nothing changed) otherwise.

        The online trainer publishes every few seconds, and a micro-batch barely moves the table's broad
        shape, which is all the mapping reads; refitting at every swap would cost the serving process a
        third of the swap's time.
        """
        if (
            previous is None
            or previous.mapping is None
            or previous.content is not content
            or self.meta.get("parent") != previous.version
            or previous.dim != self.dim
            or not time.monotonic() - previous.mapping_fitted_at < MAPPING_REUSE_S
        ):
            return False
        self.content, self.mapping, self.mapping_fitted_at = content, previous.mapping, previous.mapping_fitted_at
        self.update_cold(content.with_content())
        return True

    def update_cold(self, catalog_idx: Sequence[int] | np.ndarray) -> int:
        """(Re)map these items from their current content; items with a model row are skipped.
        Returns how many items are in the cold table afterwards."""
        if self.mapping is None or self.content is None:
            return len(self.cold)
        idx = np.unique(np.asarray(catalog_idx, dtype=np.int64))
        if len(idx):
            idx = idx[idx > 0]
            idx = idx[self.unlearned[self.row_map.rows(idx)] | (self.row_map.rows(idx) == 0)]
        x, has = self.content.vectors(idx) if len(idx) else (np.zeros((0, 1)), np.zeros(0, dtype=bool))
        with self._cold_lock:
            old = self.cold
            keep = ~np.isin(old.catalog_idx, idx)
            new_idx = idx[has]
            mapped = (
                torch.from_numpy(self.mapping.predict(x[has])) if len(new_idx) else torch.zeros(0, old.vectors.shape[1])
            )
            unit = torch.nn.functional.normalize(mapped, dim=1).numpy() if len(new_idx) else old.unit[:0]
            self.cold = ColdTable(
                np.concatenate([old.catalog_idx[keep], new_idx]),
                torch.cat([old.vectors[torch.from_numpy(keep)], mapped]),
                np.concatenate([old.unit[keep], unit]),
            )
            return len(self.cold)

    def cold_rows(self, catalog_idx: Sequence[int]) -> torch.Tensor | None:
        """Mapped rows for items by catalogue index, NaN where there is no content (the online trainer's
        initialiser for new rows); None without a mapping."""
        if self.mapping is None or self.content is None:
            return None
        x, has = self.content.vectors(np.asarray(catalog_idx, dtype=np.int64))
        out = torch.full((len(catalog_idx), self.dim), float("nan"))
        if has.any():
            out[torch.from_numpy(has)] = torch.from_numpy(self.mapping.predict(x[has]))
        return out

    @property
    def dim(self) -> int:
        """D, the width of the item table."""
        return int(self.table.shape[1])

    def unit_rows(self, rows: np.ndarray) -> np.ndarray:
        """[C, D] the model rows ``rows``, L2-normalised (zeros for the padding row): what reasons compare."""
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return (self.table[idx] / self.norms[idx, None]).numpy()

    def cosine(self, query: torch.Tensor) -> torch.Tensor:
        """[Nm + 1] cosine similarity of a unit-length ``query`` ([D]) to every model row."""
        with torch.inference_mode():
            return (self.table @ query.float()) / self.norms

    @property
    def num_rows(self) -> int:
        return len(self.catalog_of_row) - 1

    def rows(self, catalog_idx: np.ndarray) -> np.ndarray:
        """Model rows of catalogue indices (0 where the model has no row)."""
        return self.row_map.rows(catalog_idx)

    def allowed(self, catalog: Catalog) -> torch.Tensor:
        """[Nm + 1] bool: rows whose item is available now; cached until the catalogue changes."""
        cached = self._allowed
        if cached is None or cached[0] != catalog.version:
            cached = self._allowed = (catalog.version, self.allowed_mask(catalog.available_mask()))
        return cached[1]

    def allowed_mask(self, available: np.ndarray) -> torch.Tensor:
        """[Nm + 1] bool: rows whose item is ``available`` (a [N + 1] catalogue mask) and trained."""
        inside = self.catalog_of_row < len(available)
        mask = np.zeros(len(self.catalog_of_row), dtype=bool)
        mask[inside] = available[self.catalog_of_row[inside]]
        mask = torch.from_numpy(mask & ~self.unlearned)
        mask[0] = False
        return mask

    def propose(
        self,
        users: torch.Tensor,
        k: int,
        exclude: Sequence[np.ndarray],
        available: np.ndarray,
        allowed: torch.Tensor,
        conversion: Sequence[float] | None = None,
    ) -> list[Proposal]:
        """The model's own top ``k`` per user vector ([B, D]), best first: learned rows through the index,
        items without a learned row through their content-mapped rows (:attr:`cold`). ``exclude[b]``:
        catalogue indices never to propose; ``available``: [N + 1] the catalogue's availability mask;
        ``allowed``: :meth:`allowed` for it. ``conversion[b]``: the weight of the conversion objective for
        user ``b`` (:data:`~freshrec.model.sasrec.OBJECTIVES`); where it is not 0 the best
        :data:`OBJECTIVE_POOL` items by the dot product are re-scored with the conversion head's item scores
        (cold items with the average item's)."""
        weights = np.zeros(len(users)) if conversion is None else np.asarray(conversion, dtype=np.float64)
        bias = self.conversion_bias if weights.any() else None
        fetch = max(k, OBJECTIVE_POOL) if bias is not None else k
        rows = [self.rows(np.asarray(e, dtype=np.int64)) for e in exclude]
        ids, scores = self.index.topk(users, fetch, exclude=rows, allowed=allowed)
        cold = self.cold
        cold_scores = None
        if len(cold):
            with torch.inference_mode():
                cold_scores = (users.float() @ cold.vectors.T).numpy()  # [B, M]
            cold_scores[:, ~available[cold.catalog_idx]] = -np.inf
        out = []
        for b in range(len(users)):
            keep = np.isfinite(scores[b])
            found, sc = ids[b][keep], scores[b][keep].astype(np.float64)
            shift = 0.0
            if bias is not None and weights[b]:
                sc = sc + weights[b] * bias[found]
                shift = weights[b] * float(bias[1:].mean()) if len(bias) > 1 else 0.0
            cat = self.catalog_of_row[found]
            if cold_scores is not None:
                cs = cold_scores[b].copy()
                if len(exclude[b]):
                    cs[np.isin(cold.catalog_idx, exclude[b])] = -np.inf
                top = np.argsort(-cs, kind="stable")[:k]
                top = top[np.isfinite(cs[top])]
                cat, sc = np.concatenate([cat, cold.catalog_idx[top]]), np.concatenate([sc, cs[top] + shift])
            order = np.argsort(-sc, kind="stable")[:k]
            out.append(Proposal(cat[order].astype(np.int64), sc[order].astype(np.float64)))
        return out

    @property
    def conversion_bias(self) -> np.ndarray | None:
        """[Nm + 1] the conversion head's score of each model row (None without the head)."""
        if self.model.conversion is None:
            return None
        if self._conversion_bias is None:
            self._conversion_bias = self.model.conversion.weight.detach().float()[:, 0].numpy().astype(np.float64)
        return self._conversion_bias

    def score(self, users: torch.Tensor, items: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per user vector, the model's score of each of ``items[b]`` (catalogue indices): through its learned
        row, else its content-mapped row; NaN for an item with neither."""
        vectors = self.vectors_of(np.concatenate(list(items)) if len(items) else np.zeros(0, dtype=np.int64))
        out, start = [], 0
        with torch.inference_mode():
            for b, idx in enumerate(items):
                part = vectors[start : start + len(idx)]
                start += len(idx)
                out.append((part @ users[b].float()).numpy().astype(np.float64))
        return out

    def vectors_of(self, catalog_idx: np.ndarray) -> torch.Tensor:
        """[C, D] the rows the model scores these items with: learned rows, content-mapped rows for the
        items without one, NaN rows for items with neither."""
        idx = np.asarray(catalog_idx, dtype=np.int64)
        out = torch.full((len(idx), self.dim), float("nan"))
        rows = self.rows(idx)
        learned = (rows > 0) & ~self.unlearned[rows]
        if learned.any():
            out[torch.from_numpy(learned)] = self.table[torch.from_numpy(rows[learned])]
        cold = self.cold
        if len(cold) and (~learned).any():
            wanted = np.flatnonzero(~learned)
            at = cold.position(idx[wanted])
            has = at >= 0
            if has.any():
                out[torch.from_numpy(wanted[has])] = cold.vectors[torch.from_numpy(at[has])]
        return out

    def learned(self, catalog_idx: np.ndarray) -> np.ndarray:
        """[C] bool: whether each item has a row that trained (not cold, not unlearned)."""
        rows = self.rows(np.asarray(catalog_idx, dtype=np.int64))
        return (rows > 0) & ~self.unlearned[rows]

    def unit_of(self, catalog_idx: np.ndarray) -> np.ndarray:
        """[C, D] L2-normalised scoring rows (:meth:`vectors_of`), zeros for items with none: what reasons compare."""
        unit = torch.nn.functional.normalize(torch.nan_to_num(self.vectors_of(catalog_idx)), dim=1)
        return unit.numpy()

    @property
    def objectives(self) -> tuple[str, ...]:
        """What this version can rank for: every objective with a conversion head, else engagement only."""
        return tuple(OBJECTIVES) if self.model.conversion is not None else ("engagement",)

    def encode(self, rows: list[np.ndarray], type_codes: list[np.ndarray]) -> torch.Tensor:
        """User vectors from sequences of model rows (newest last), in one forward pass: -> [B, D]."""
        x, t, lengths = pad_histories(rows, [self.type_map[c] for c in type_codes], self.max_len)
        with torch.inference_mode():
            return self.model.encode(x, lengths, t).float()
