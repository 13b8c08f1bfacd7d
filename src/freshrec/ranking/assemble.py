"""One request's ranked list, the same way when serving and when collecting training data from the log:
candidates from every source, merged; their features; the ranker's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from freshrec.candidates.base import CandidateSource
from freshrec.content.store import ContentStore
from freshrec.ranking.candidates import PER_SOURCE, SOURCES, CandidateSet, merge
from freshrec.ranking.features import CONTENT_PROFILE, ItemStats, compute, content_profile, content_profile_similarity
from freshrec.ranking.ranker import Ranker
from freshrec.schema import UserSnapshot
from freshrec.serving_model import ServingModel


@dataclass(frozen=True)
class Live:
    """What candidates and features are read from at one moment: the live sources after the model (in
    :data:`~freshrec.ranking.candidates.SOURCES` order), item statistics, content vectors, availability."""

    sources: Sequence[CandidateSource]
    stats: ItemStats
    content: ContentStore | None
    available: np.ndarray  # [N + 1] bool


def gather(
    serving: ServingModel,
    live: Live,
    users: torch.Tensor,
    snaps: Sequence[UserSnapshot],
    exclude: Sequence[np.ndarray],
    allowed: torch.Tensor | None = None,
) -> list[tuple[CandidateSet, np.ndarray]]:
    """Per user (vectors ``users`` [B, D], states ``snaps``, items never to propose ``exclude``): the merged
    candidates of the model and every live source, and their features [C, F]. Unavailable items are dropped.
    ``allowed``: the model's row mask for ``live.available`` when the caller has it cached."""
    if len(live.sources) != len(SOURCES) - 1:
        raise ValueError(f"{len(live.sources)} live sources for {SOURCES[1:]}")
    allowed = serving.allowed_mask(live.available) if allowed is None else allowed
    model = serving.propose(users, PER_SOURCE, exclude, live.available, allowed)
    others = [source.propose(snaps, PER_SOURCE, exclude) for source in live.sources]
    merged = []
    for b in range(len(snaps)):
        cands = merge([model[b], *(o[b] for o in others)])
        keep = live.available[np.minimum(cands.items, len(live.available) - 1)] & (cands.items < len(live.available))
        merged.append(CandidateSet(cands.items[keep], cands.scores[keep], cands.ranks[keep]))
    scores = serving.score(users, [c.items for c in merged])
    out = []
    for b, (cands, snap) in enumerate(zip(merged, snaps, strict=True)):
        sim = _content_similarity(live.content, cands.items, snap)
        x = compute(cands, snap, scores[b], serving.learned(cands.items), live.stats, sim)
        out.append((cands, x))
    return out


def rank(
    serving: ServingModel,
    ranker: Ranker,
    live: Live,
    users: torch.Tensor,
    snaps: Sequence[UserSnapshot],
    exclude: Sequence[np.ndarray],
    allowed: torch.Tensor | None = None,
) -> list[tuple[CandidateSet, np.ndarray]]:
    """:func:`gather`, then each user's candidates in the ranker's order with its scores: ``(cands, scores)``."""
    out = []
    for cands, x in gather(serving, live, users, snaps, exclude, allowed):
        scores = ranker.score(x)
        order = np.argsort(-scores, kind="stable")
        out.append((CandidateSet(cands.items[order], cands.scores[order], cands.ranks[order]), scores[order]))
    return out


def _content_similarity(content: ContentStore | None, items: np.ndarray, snap: UserSnapshot) -> np.ndarray | None:
    if content is None or not content.fitted or not len(items):
        return None
    recent = snap.items[-CONTENT_PROFILE:]
    vectors, has = content.vectors(np.concatenate([items, recent]))
    profile = content_profile(vectors[len(items) :], has[len(items) :])
    return content_profile_similarity(vectors[: len(items)], has[: len(items)], profile)
