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

#: LightGBM parameters: small trees, many examples per leaf (a few thousand requests train it), NDCG@10.
PARAMS = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 20,
    "verbose": -1,
    "num_threads": 1,
}
#: Most boosting rounds; early stopping on the held-out requests usually ends sooner.
MAX_ROUNDS = 300
#: Rounds without a gain on the held-out requests before stopping.
PATIENCE = 30
#: Share of the requests held out to choose the number of rounds.
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
    def fit(cls, x: np.ndarray, y: np.ndarray, groups: list[int], seed: int = 42) -> tuple[Ranker, RankerReport]:
        """Fit on requests (``groups``: candidates per request, in row order), holding :data:`HELD_OUT` of the
        requests out for early stopping; then refit on all of them with the rounds found."""
        import lightgbm as lgb

        starts = np.concatenate([[0], np.cumsum(groups)])
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(groups))
        n_held = max(1, int(len(groups) * HELD_OUT)) if len(groups) >= 10 else 0
        held, kept = np.sort(order[:n_held]), np.sort(order[n_held:])

        def rows(requests: np.ndarray) -> np.ndarray:
            if not len(requests):
                return np.zeros(0, dtype=np.int64)
            return np.concatenate([np.arange(starts[r], starts[r + 1]) for r in requests])

        params = {**PARAMS, "seed": seed}
        train = lgb.Dataset(
            x[rows(kept)],
            y[rows(kept)],
            group=[groups[r] for r in kept],
            feature_name=list(FEATURES),
            categorical_feature=list(CATEGORICAL),
            free_raw_data=False,
        )
        rounds, held_ndcg, model_ndcg = MAX_ROUNDS, float("nan"), float("nan")
        if n_held:
            valid = lgb.Dataset(x[rows(held)], y[rows(held)], group=[groups[r] for r in held], reference=train)
            booster = lgb.train(
                params, train, MAX_ROUNDS, valid_sets=[valid], callbacks=[lgb.early_stopping(PATIENCE, verbose=False)]
            )
            rounds = max(1, booster.best_iteration)
            held_x, held_y = x[rows(held)], y[rows(held)]
            held_groups = [groups[r] for r in held]
            held_ndcg = _ndcg10(booster.predict(held_x, num_iteration=rounds), held_y, held_groups)
            model_ndcg = _ndcg10(-held_x[:, FEATURES.index("model_rank")], held_y, held_groups)
        everything = lgb.Dataset(
            x, y, group=list(groups), feature_name=list(FEATURES), categorical_feature=list(CATEGORICAL)
        )
        booster = lgb.train(params, everything, rounds)
        gain = booster.feature_importance(importance_type="gain")
        importance = {name: float(g) for name, g in zip(FEATURES, gain / max(gain.sum(), 1e-12), strict=True)}
        report = RankerReport(len(groups), len(x), rounds, held_ndcg, model_ndcg, importance)
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
