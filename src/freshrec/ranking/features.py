"""Real-time features of a user's merged candidates: what the ranker reads.

Every feature is computed from live state at the moment of the request (or, when training data is collected
from the log, at the moment of the event being predicted), with the same code, so the ranker is trained on
exactly what it is served:

* each source's view: the transformer's score (and its gap to the best candidate's), the co-occurrence and
  session-kNN scores (raw, log-scaled, and as a share of the best candidate's), each source's rank;
* the item's popularity: decayed at the trending half-life, a day, a week and a month (each as a share of the
  most popular item's), its all-time interactions, its age since its first event, whether the model has a
  learned row for it;
* the user's moment: time since their last event, their last event's type, their history's length;
* content: cosine between the item's content vector and the mean of the user's newest items' vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from freshrec.ranking.candidates import PER_SOURCE, SOURCES, CandidateSet
from freshrec.schema import UserSnapshot
from freshrec.state.trending import Trending

DAY = 86_400.0
#: Half-lives of the popularity features after the trending one: a day, a week, a month.
POPULARITY_HALF_LIVES = (DAY, 7 * DAY, 30 * DAY)
#: The user's newest entries whose content vectors make their content profile.
CONTENT_PROFILE = 5

FEATURES = (
    "model_score",
    "model_score_gap",
    "model_rank",
    "cooc_score",
    "cooc_share",
    "cooc_rank",
    "sknn_score",
    "sknn_share",
    "sknn_rank",
    "trending_rank",
    "pop_trending",
    "pop_day",
    "pop_week",
    "pop_month",
    "interactions",
    "item_age_days",
    "user_gap_hours",
    "last_type",
    "history_len",
    "content_sim",
    "learned",
    "sources",
)
#: Features the ranker treats as categories, not quantities.
CATEGORICAL = ("last_type",)

_MODEL, _COOC, _SKNN, _TRENDING = (SOURCES.index(s) for s in ("model", "co-occurrence", "session-knn", "trending"))


@dataclass(frozen=True)
class ItemStats:
    """Per-item popularity at one moment: ``popularity`` [H, N + 1] decayed counts at each half-life as a share
    of the most popular item's, ``interactions`` [N + 1], ``first_seen`` [N + 1] (NaN: never), ``clock`` (the
    newest event time)."""

    popularity: np.ndarray
    interactions: np.ndarray
    first_seen: np.ndarray
    clock: float

    @staticmethod
    def of(trending: Trending, num_items: int) -> ItemStats:
        """The statistics of a :class:`Trending` that tracks the trending half-life and
        :data:`POPULARITY_HALF_LIVES`."""
        pop = np.stack([trending.scores(num_items, which=h) for h in range(len(trending.half_lives))])
        pop = pop / np.maximum(pop.max(axis=1, keepdims=True), 1e-12)
        return ItemStats(pop, trending.counts(num_items), trending.first_seen(num_items), trending.clock)

    def at(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(popularity [H, C], interactions [C], first_seen [C]) of catalogue indices (zeros / NaN beyond)."""
        n = self.interactions.shape[0]
        inside = items < n
        safe = np.where(inside, items, 0)
        pop = np.where(inside, self.popularity[:, safe], 0.0)
        inter = np.where(inside, self.interactions[safe], 0)
        first = np.where(inside, self.first_seen[safe], np.nan)
        return pop, inter, first


def compute(
    cands: CandidateSet,
    snap: UserSnapshot,
    model_scores: np.ndarray,
    learned: np.ndarray,
    stats: ItemStats,
    content_sim: np.ndarray | None = None,
    now: float | None = None,
) -> np.ndarray:
    """[C, F] float32 features (columns :data:`FEATURES`) of one user's candidates; NaN marks a missing value.

    ``model_scores`` [C]: the transformer's score of each candidate (NaN: no row to score it with);
    ``learned`` [C]: whether its row trained; ``content_sim`` [C] or ``None``; ``now``: the moment (default
    the newest event time the statistics have seen, or the user's last event if later).
    """
    c = len(cands)
    if now is None:
        now = max(stats.clock, float(snap.ts[-1])) if len(snap.ts) else stats.clock
    out = np.full((c, len(FEATURES)), np.nan, dtype=np.float32)
    if not c:
        return out
    col = {name: j for j, name in enumerate(FEATURES)}
    scores, ranks = cands.scores, cands.ranks.astype(np.float32)
    out[:, col["model_score"]] = model_scores
    if np.isfinite(model_scores).any():
        out[:, col["model_score_gap"]] = model_scores - np.nanmax(model_scores)
    out[:, col["model_rank"]] = ranks[:, _MODEL]
    for name, s in (("cooc", _COOC), ("sknn", _SKNN)):
        raw = scores[:, s]
        out[:, col[f"{name}_score"]] = np.log1p(raw)
        out[:, col[f"{name}_share"]] = raw / raw.max() if raw.max() > 0 else 0.0
        out[:, col[f"{name}_rank"]] = ranks[:, s]
    out[:, col["trending_rank"]] = ranks[:, _TRENDING]
    pop, interactions, first = stats.at(cands.items)
    for j, name in enumerate(("pop_trending", "pop_day", "pop_week", "pop_month")[: pop.shape[0]]):
        out[:, col[name]] = pop[j]
    out[:, col["interactions"]] = np.log1p(interactions)
    out[:, col["item_age_days"]] = (now - first) / DAY
    if len(snap.ts):
        out[:, col["user_gap_hours"]] = (now - float(snap.ts[-1])) / 3600.0
        out[:, col["last_type"]] = float(snap.types[-1])
    out[:, col["history_len"]] = len(snap.items)
    if content_sim is not None:
        out[:, col["content_sim"]] = content_sim
    out[:, col["learned"]] = learned.astype(np.float32)
    out[:, col["sources"]] = (cands.ranks < PER_SOURCE).sum(axis=1)
    return out


def content_profile_similarity(vectors: np.ndarray, has: np.ndarray, profile: np.ndarray | None) -> np.ndarray:
    """Cosine of each candidate's content vector ([C, E], ``has`` [C]) with a user's content ``profile`` [E]
    (NaN where the candidate or the user has no content).

    >>> v = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> content_profile_similarity(v, np.array([True, False]), np.array([1.0, 0.0])).tolist()
    [1.0, nan]
    """
    out = np.full(len(vectors), np.nan)
    if profile is None or not has.any():
        return out
    norm = np.linalg.norm(profile)
    if norm <= 0:
        return out
    x = vectors[has].astype(np.float64)
    out[has] = (x @ profile) / (np.maximum(np.linalg.norm(x, axis=1), 1e-12) * norm)
    return out


def content_profile(vectors: np.ndarray, has: np.ndarray) -> np.ndarray | None:
    """The mean content vector of a user's newest items (``vectors`` [P, E] of those with content ``has``)."""
    return vectors[has].astype(np.float64).mean(axis=0) if has.any() else None
