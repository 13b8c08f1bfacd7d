"""The ranker: gradient-boosted trees with LambdaRank (LightGBM) over the candidates' real-time features.

Trees suit these features: they mix scales (scores, ranks, ages, counts), have missing values (no model row,
no content) and interact (a co-occurrence count means more for a user with a short history). LambdaRank
optimises NDCG over each request's candidates directly. Training data comes from the log: for each event
predicted, the candidates live sources proposed just before it, the chosen item labelled 1
(:mod:`freshrec.ranking.collect`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from freshrec.ranking.features import CATEGORICAL, FEATURES

#: Features whose effect on relevance can only go one way (+1 higher is better, -1 lower is better). The
#: constraints keep a ranker fitted on a few hundred requests sensible (a stronger co-occurrence never ranks an
#: item lower): on MovieLens-100K's held-out events an unconstrained fit ranked below co-occurrence alone
#: (NDCG@10 0.072 vs 0.077), the constrained one above it (0.089).
MONOTONE = {
    "model_score": 1,
    "model_score_gap": 1,
    "model_rank": -1,
    "cooc_score": 1,
    "cooc_share": 1,
    "cooc_rank": -1,
    "sknn_score": 1,
    "sknn_share": 1,
    "sknn_rank": -1,
    "trending_rank": -1,
    "content_sim": 1,
    "sources": 1,
}
#: LightGBM parameters: small trees, many examples per leaf, a slow learning rate, NDCG@10.
PARAMS = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.02,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 20,
    "monotone_constraints": [MONOTONE.get(name, 0) for name in FEATURES],
    "monotone_constraints_method": "advanced",
    "verbose": -1,
    "num_threads": 1,
}
#: Boosting rounds. A fixed number: early stopping on a held-out fifth of a few hundred requests chose
#: anywhere from 3 to 75 rounds from one seed to the next; 100-200 rounds measured alike.
ROUNDS = 100
#: Share of the requests held out to report the fit's quality (the shipped ranker is refitted on all).
HELD_OUT = 0.2


@dataclass
class RankerReport:
    """What a fit did: requests used, rounds kept, held-out NDCG@10 of the ranker and of the model's order."""

    requests: int
    rows: int
    rounds: int
    held_out_ndcg10: float
    held_out_model_ndcg10: float
    importance: dict[str, float] = field(default_factory=dict)


class Ranker:
    """Scores candidates from their features (:data:`~freshrec.ranking.features.FEATURES`).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> groups = [40] * 200
    >>> x = rng.normal(size=(sum(groups), len(FEATURES))).astype(np.float32)
    >>> y = np.zeros(len(x)); y[np.arange(0, len(x), 40) + rng.integers(0, 40, 200)] = 1
    >>> x[y == 1, 3] += 5.0                       # the chosen items stand out on one feature
    >>> ranker, report = Ranker.fit(x, y, groups, seed=0)
    >>> bool(report.held_out_ndcg10 > 0.9), bool(report.held_out_model_ndcg10 < 0.2)
    (True, True)
    """

    def __init__(self, booster) -> None:
        self.booster = booster

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, groups: list[int], seed: int = 42, held_out: float = HELD_OUT
    ) -> tuple[Ranker, RankerReport]:
        """Fit on requests (``groups``: candidates per request, in row order). The report's held-out NDCG@10
        comes from a fit on the other ``1 - held_out`` of the requests (0: no such fit, NaN figures); the
        returned ranker is fitted on all of them."""
        import lightgbm as lgb

        starts = np.concatenate([[0], np.cumsum(groups)]).astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(groups))
        n_held = int(len(groups) * held_out) if len(groups) >= 10 else 0
        held, kept = np.sort(order[:n_held]), np.sort(order[n_held:])

        def rows(requests: np.ndarray) -> np.ndarray:
            if not len(requests):
                return np.zeros(0, dtype=np.int64)
            return np.concatenate([np.arange(starts[r], starts[r + 1]) for r in requests])

        def train(requests: np.ndarray):
            data = lgb.Dataset(
                x[rows(requests)],
                y[rows(requests)],
                group=[groups[r] for r in requests],
                feature_name=list(FEATURES),
                categorical_feature=list(CATEGORICAL),
            )
            return lgb.train({**PARAMS, "seed": seed}, data, ROUNDS)

        held_ndcg, model_ndcg = float("nan"), float("nan")
        if n_held:
            held_x, held_y, held_groups = x[rows(held)], y[rows(held)], [groups[r] for r in held]
            held_ndcg = _ndcg10(train(kept).predict(held_x), held_y, held_groups)
            model_ndcg = _ndcg10(-held_x[:, FEATURES.index("model_rank")], held_y, held_groups)
        booster = train(np.arange(len(groups)))
        gain = booster.feature_importance(importance_type="gain")
        importance = {name: float(g) for name, g in zip(FEATURES, gain / max(gain.sum(), 1e-12), strict=True)}
        report = RankerReport(len(groups), len(x), ROUNDS, held_ndcg, model_ndcg, importance)
        return cls(booster), report

    def score(self, x: np.ndarray) -> np.ndarray:
        """[C] scores of candidates' features [C, F]; higher ranks first."""
        if not len(x):
            return np.zeros(0)
        return self.booster.predict(x, num_threads=1)

    def to_text(self) -> str:
        """The model as text (LightGBM's own format), for the registry."""
        return self.booster.model_to_string()

    @classmethod
    def from_text(cls, text: str) -> Ranker:
        import lightgbm as lgb

        return cls(lgb.Booster(model_str=text))


def load_ranker(text: str | None) -> Ranker | None:
    """The ranker a version stored (:attr:`~freshrec.model.registry.LoadedModel.ranker`), if it has one."""
    return Ranker.from_text(text) if text is not None else None


def _ndcg10(scores: np.ndarray, labels: np.ndarray, groups: list[int]) -> float:
    """Mean NDCG@10 over requests with one relevant candidate each (requests without one count 0)."""
    total, start = 0.0, 0
    for g in groups:
        s, y = scores[start : start + g], labels[start : start + g]
        start += g
        if not y.any():
            continue
        rank = int((s > s[np.argmax(y)]).sum())
        total += 1.0 / np.log2(rank + 2) if rank < 10 else 0.0
    return total / max(len(groups), 1)
