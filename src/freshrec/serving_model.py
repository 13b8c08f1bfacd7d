"""ServingModel: one published model version bound to a catalogue, ready for the hot path."""

from __future__ import annotations

import numpy as np
import torch

from freshrec.catalog.base import Catalog
from freshrec.index.base import build_index
from freshrec.model.data import pad_histories
from freshrec.model.registry import LoadedModel
from freshrec.model.rowmap import RowMap
from freshrec.sequence import EventTypes


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
        index: str = "exact",
        index_auto_threshold: int = 200_000,
    ) -> None:
        self.version = loaded.version
        self.model = loaded.model.eval()
        self.meta = loaded.meta
        self.max_len = self.model.config.max_len
        self.row_map = RowMap.from_item_ids(catalog, loaded.item_ids)
        self.catalog_of_row = self.row_map.catalog_of_row  # [Nm + 1]
        # The model's type codes follow the type list it was trained with; map ours onto them.
        model_code = {name: i + 1 for i, name in enumerate(loaded.event_types)}
        self.type_map = np.array([0] + [model_code.get(n, 0) for n in types.names], dtype=np.int64)
        with torch.no_grad():
            vectors = self.model.item_emb.weight.detach().float().clone()
        self.index = build_index(vectors, index, index_auto_threshold)
        self.unit = torch.nn.functional.normalize(vectors, dim=1)
        self.unit_np = self.unit.numpy()  # numpy is cheaper than torch for the tiny products in reasons
        self._allowed: tuple[int, torch.Tensor] | None = None

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
            mask = torch.from_numpy(catalog.available_mask()[self.catalog_of_row])
            mask[0] = False
            cached = self._allowed = (catalog.version, mask)
        return cached[1]

    def encode(self, rows: list[np.ndarray], type_codes: list[np.ndarray]) -> torch.Tensor:
        """User vectors from sequences of model rows (newest last), in one forward pass: -> [B, D]."""
        x, t, lengths = pad_histories(rows, [self.type_map[c] for c in type_codes], self.max_len)
        with torch.inference_mode():
            return self.model.encode(x, lengths, t).float()
