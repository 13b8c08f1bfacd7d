"""From content space into the model's item space: ridge regression fitted on warm items.

The model scores an item by the dot product of the user vector with the item's row, so a new item
needs a row. Warm items have both a content vector and a learned row; a linear map fitted on them
(closed-form ridge, a few hundred milliseconds for 50K items) turns any new item's content into a row
at once. Ridge shrinks predictions toward the mean row, so predicted rows are rescaled to the typical
norm of warm rows: direction carries the match, norm the confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from freshrec.content.store import ContentStore

#: L2 penalty of the ridge regression (content vectors are unit-length, rows ~1 in norm).
RIDGE_L2 = 1.0
#: Most warm items the mapping is fitted on (the solve is closed-form; this bounds its memory and time).
MAX_FIT_ITEMS = 50_000


@dataclass
class MappingReport:
    """How well the map predicts held-out warm rows (cosine between predicted and learned rows)."""

    fitted_on: int
    held_out: int
    cosine_mean: float
    baseline_cosine_mean: float  # the mean row as the prediction, for comparison


class ContentMapping:
    """Linear map content -> item rows.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 8)).astype(np.float32)
    >>> true = rng.normal(size=(8, 4)).astype(np.float32)
    >>> m = ContentMapping(l2=1e-3).fit(x, x @ true)
    >>> bool(m.report.cosine_mean > 0.99)
    True
    >>> m.predict(x[:2]).shape
    (2, 4)
    """

    def __init__(self, l2: float = RIDGE_L2, max_fit_items: int = MAX_FIT_ITEMS, seed: int = 0) -> None:
        self.l2 = l2
        self.max_fit_items = max_fit_items
        self.seed = seed
        self.weights: np.ndarray | None = None  # [C + 1, D], last row the bias
        self.target_norm = 1.0
        self.report: MappingReport | None = None

    def _solve(self, x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
        xb = np.concatenate([x, np.ones((len(x), 1), dtype=x.dtype)], axis=1).astype(np.float64)
        xw = xb * w[:, None] if w is not None else xb
        gram = xw.T @ xb
        reg = self.l2 * np.eye(gram.shape[0])
        reg[-1, -1] = 0.0  # no penalty on the bias
        return np.linalg.solve(gram + reg, xw.T @ y.astype(np.float64))

    def fit(self, content: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None) -> ContentMapping:
        """``content`` [N, C] and the learned ``rows`` [N, D] of the same warm items; ``weights`` [N]
        (e.g. log interaction counts) trust well-trained rows more."""
        if len(content) != len(rows):
            raise ValueError("content and rows must describe the same items")
        if len(content) < 2:
            raise ValueError("the content mapping needs at least two warm items with content")
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(content))
        if len(order) > self.max_fit_items:
            order = order[: self.max_fit_items]
        n_hold = min(len(order) // 10, 2000) if len(order) >= 20 else 0
        hold, fit = order[:n_hold], order[n_hold:]
        w = weights[fit] if weights is not None else None
        if n_hold:
            coef = self._solve(content[fit], rows[fit], w)
            pred = np.concatenate([content[hold], np.ones((n_hold, 1))], axis=1) @ coef
            mean_row = rows[fit].mean(axis=0, keepdims=True)
            self.report = MappingReport(
                fitted_on=len(fit),
                held_out=n_hold,
                cosine_mean=float(_cos(pred, rows[hold]).mean()),
                baseline_cosine_mean=float(_cos(np.repeat(mean_row, n_hold, 0), rows[hold]).mean()),
            )
        # The shipped map uses every sampled item; the hold-out only measured it.
        self.weights = self._solve(content[order], rows[order], weights[order] if weights is not None else None)
        self.target_norm = float(np.median(np.linalg.norm(rows[order], axis=1)))
        if self.report is None:
            self.report = MappingReport(len(order), 0, float("nan"), float("nan"))
        return self

    def predict(self, content: np.ndarray) -> np.ndarray:
        """Rows for items with these content vectors: [M, C] -> [M, D] float32."""
        if self.weights is None:
            raise RuntimeError("the content mapping is not fitted")
        xb = np.concatenate([content, np.ones((len(content), 1), dtype=content.dtype)], axis=1)
        pred = xb.astype(np.float64) @ self.weights
        norms = np.linalg.norm(pred, axis=1, keepdims=True)
        return (pred / np.maximum(norms, 1e-12) * self.target_norm).astype(np.float32)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def fit_for_model(
    content: ContentStore,
    catalog_of_row: np.ndarray,
    table: np.ndarray,
    rows: np.ndarray,
    rng: np.random.Generator,
) -> ContentMapping | None:
    """The mapping for one model's item table: fitted on ``rows`` (its learned rows, sampled down to
    :data:`MAX_FIT_ITEMS`) that have content. ``None`` when fewer than two have any.

    ``catalog_of_row`` translates model rows to catalogue indices; ``table`` is the [N + 1, D] item table.
    Serving (for cold items) and the online trainer (for new rows) both fit through here.
    """
    if len(rows) > MAX_FIT_ITEMS:
        rows = np.sort(rng.choice(rows, MAX_FIT_ITEMS, replace=False))
    x, has = content.vectors(catalog_of_row[rows])
    if has.sum() < 2:
        return None
    return ContentMapping().fit(x[has], table[rows[has]])
