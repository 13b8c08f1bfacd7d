"""The strategies a streaming replay compares, all reading the same live engine (see eval/replay.py)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from freshrec.metrics import ndcg, ndcg_gains, paired_difference, reciprocal_ranks
from freshrec.model.gate import holdout_ranks
from freshrec.model.registry import ModelRegistry
from freshrec.online.trainer import OnlineTrainer
from freshrec.pipeline import train_and_publish
from freshrec.ranking.ranker import load_ranker
from freshrec.recommend import Recommender
from freshrec.schema import EventRecord
from freshrec.serving_model import ServingModel

if TYPE_CHECKING:
    from freshrec.engine import Engine

log = logging.getLogger(__name__)


def _ids(result: Any) -> list[str]:
    return [i.item_id for i in result.items]


class StaticModel:
    """The nightly batch job: every user's list from the model at the cut, computed once and never updated."""

    name = "static"

    def __init__(self, engine: Engine, k: int) -> None:
        model_only = _side_recommender(engine, ranker=False)
        model_only.swap(engine.recommender.serving)
        self.lists = {u: _ids(model_only.recommend(u, k)) for u in engine.state.user_ids()}
        self.fallback = _ids(engine.recommender.trending_list("\x00nobody", k))

    def recommend(self, user_id: str, k: int) -> list[str]:
        return self.lists.get(user_id, self.fallback)

    def learn(self, event: EventRecord) -> None:
        pass


class LiveSequences:
    """The cut model's weights ranking on their own, each user's sequence as of the last event."""

    name = "live-sequences"
    ranker = False

    def __init__(self, engine: Engine) -> None:
        self.recommender = _side_recommender(engine, ranker=self.ranker)
        self.recommender.swap(engine.recommender.serving)

    def recommend(self, user_id: str, k: int) -> list[str]:
        return _ids(self.recommender.recommend(user_id, k))

    def learn(self, event: EventRecord) -> None:
        pass


class Served(LiveSequences):
    """The served pipeline with the cut's weights: every live source's candidates, ordered by the version's
    ranker, from each user's sequence as of the last event (``serving.ranker`` on)."""

    name = "served"
    ranker = True


class LiveTrending:
    """Time-decayed popularity updated per event, the user's seen items excluded."""

    name = "trending"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def recommend(self, user_id: str, k: int) -> list[str]:
        return _ids(self.engine.recommender.trending_list(user_id, k))

    def learn(self, event: EventRecord) -> None:
        pass


def _side_recommender(engine: Engine, ranker: bool | None = None) -> Recommender:
    """A recommender over the engine's live state and trending, with its own model slot; ``ranker``: serve the
    version's ranker (``None``: as the settings say)."""
    ranker = engine.settings.serving.ranker if ranker is None else ranker
    settings = engine.settings.serving.model_copy(update={"micro_batch": 1, "ranker": ranker})
    return Recommender(
        engine.state,
        engine.catalog,
        engine.trending,
        engine.types,
        settings,
        engine.settings.content,
        trending_refresh_s=engine.recommender.trending_refresh_s,
    )


def _bind(engine: Engine, registry: ModelRegistry, version: str) -> ServingModel:
    """A version bound for serving as the engine would bind it (content mapping for cold items included)."""
    loaded = registry.load(version)
    model = ServingModel(loaded, engine.catalog, engine.types, engine.settings.serving.index)
    model.ranker = load_ranker(loaded.ranker)
    if engine.content is not None:
        model.attach_content(engine.content)
    return model


class OnlineLearning:
    """Live sequences plus the online trainer: every ``every`` events the trainer catches up on the log
    (micro-batches, gate, publish) and a published version is swapped in, as `freshrec serve` does. Its
    lists are the transformer's own; :attr:`served` is the same trainer's versions behind the ranker."""

    name = "live+online"

    def __init__(self, engine: Engine, every: int) -> None:
        # Every catch-up is followed by more events, so the gate always has unseen events to judge on;
        # idle publishing (older holdout only, wall-clock dependent) stays off for a reproducible replay.
        online = engine.settings.online.model_copy(update={"publish_interval_s": 0.0, "idle_publish_s": 0.0})
        self.engine = engine
        self.trainer = OnlineTrainer(engine.stores, online)
        self.recommender = _side_recommender(engine, ranker=False)
        self.recommender.swap(engine.recommender.serving)
        self.served = ServedOnline(_side_recommender(engine, ranker=True))
        self.served.recommender.swap(engine.recommender.serving)
        self.every = max(1, every)
        self.seen = 0
        self.published: list[str] = []
        self.decisions = {"accepted": 0, "rejected": 0}
        self.ranker_decisions = {"accepted": 0, "rejected": 0}
        self.ranker_requests = 0
        self.trainer_seconds = {"total": 0.0, "ranker": 0.0}
        self._older = self.trainer.older_eval_set()
        self.before = self._older_ranks(*self.trainer.learner.contender())

    def _older_ranks(self, model: Any, rows: Any) -> np.ndarray:
        if not len(self._older):
            return np.zeros(0, dtype=np.int64)
        return holdout_ranks((model, rows), self._older)

    def recommend(self, user_id: str, k: int) -> list[str]:
        return _ids(self.recommender.recommend(user_id, k))

    def learn(self, event: EventRecord) -> None:
        self.seen += 1
        if self.seen % self.every == 0:
            self.catch_up()

    def catch_up(self) -> None:
        while (report := self.trainer.poll(force=True)) is not None:
            if report.decision is not None:
                self.decisions["accepted" if report.decision.accepted else "rejected"] += 1
            if report.ranker_decision is not None:
                self.ranker_decisions["accepted" if report.ranker_decision.accepted else "rejected"] += 1
            self.ranker_requests += report.ranker_requests
            self.trainer_seconds["total"] += report.seconds
            self.trainer_seconds["ranker"] += report.ranker_seconds
        # follow the registry like `freshrec serve` does: versions also get published between batches
        current = self.engine.registry.current()
        serving = self.recommender.serving
        if current is not None and (serving is None or serving.version != current):
            bound = _bind(self.engine, self.engine.registry, current)
            self.recommender.swap(bound)
            self.served.recommender.swap(bound)
            self.published.append(current)

    def summary(self) -> dict[str, Any]:
        serving = self.recommender.serving
        after = self._older_ranks(serving.model, serving.rows) if serving is not None else self.before
        users = self._older.users
        return {
            "published_versions": len(self.published),
            "gate": self.decisions,
            # the ranker refitted from the stream's requests (served+online), through its own gate
            "ranker_gate": self.ranker_decisions,
            "ranker_requests": self.ranker_requests,
            "trainer_seconds": self.trainer_seconds,
            "older_holdout_ndcg@10": {"before": ndcg(self.before, 10), "after": ndcg(after, 10)},
            # The forgetting estimate with its noise: paired per-user changes on the same holdout, in
            # NDCG@10 and in reciprocal rank without a cut-off (graded for every user, so less noisy).
            "older_holdout_change": {
                "ndcg@10": paired_difference(ndcg_gains(after, 10), ndcg_gains(self.before, 10), users),
                "mrr": paired_difference(reciprocal_ranks(after), reciprocal_ranks(self.before), users),
            },
            "micro_batch_every_events": self.every,
            # what the data-quality guard kept out of training (None: quality.enabled is off)
            "quality": self.trainer.guard.report() if self.trainer.guard is not None else None,
        }


class ServedOnline:
    """The served pipeline (every live source, the ranker) on the online trainer's versions; the trainer runs
    in :class:`OnlineLearning`, whose ``served`` this is."""

    name = "served+online"

    def __init__(self, recommender: Recommender) -> None:
        self.recommender = recommender

    def recommend(self, user_id: str, k: int) -> list[str]:
        return _ids(self.recommender.recommend(user_id, k))

    def learn(self, event: EventRecord) -> None:
        pass


class PeriodicRetrain:
    """Live sequences plus a full retrain from scratch on everything logged, every ``every`` events."""

    name = "live+periodic-retrain"

    def __init__(self, engine: Engine, every: int, work_dir: Path) -> None:
        # The same log and catalogue; its own registry, so its versions never move the main CURRENT.
        self.stores = dataclasses.replace(engine.stores, registry=ModelRegistry(work_dir / "retrain-models"))
        self.engine = engine
        self.recommender = _side_recommender(engine)
        self.recommender.swap(engine.recommender.serving)
        self.every = max(1, every)
        self.seen = 0
        self.retrains = 0

    def recommend(self, user_id: str, k: int) -> list[str]:
        return _ids(self.recommender.recommend(user_id, k))

    def learn(self, event: EventRecord) -> None:
        self.seen += 1
        if self.seen % self.every:
            return
        report = train_and_publish(self.stores, holdout="valid", progress=False)
        self.recommender.swap(_bind(self.engine, self.stores.registry, report.version))
        self.retrains += 1

    def summary(self) -> dict[str, Any]:
        return {"retrains": self.retrains, "every_events": self.every}
