"""The online trainer's durable state: weights, id map and committed offsets, switched atomically.

Each checkpoint is a directory written under a temporary name and renamed into place; a pointer file
(``CHECKPOINT``) names the newest one and is replaced with ``os.replace``. The committed offset therefore
always belongs to the weights stored beside it: after a crash the trainer resumes from an offset whose
events are in its weights, and retrains (never skips) whatever came after.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from freshrec.model.sasrec import SASRec, SASRecConfig
from freshrec.position import as_cursor, partition_of


@dataclass
class TrainerState:
    """Where the trainer stands. Cursors are per event-log partition (:mod:`freshrec.position`).

    >>> s = TrainerState(committed=[4], base_version="v00001", published=[4])
    >>> s.add_range(5, 9); s.committed = [9]
    >>> s.unpublished_ranges(), s.trained_ranges
    ([[5, 9]], [[5, 9]])
    """

    committed: list[int]  # cursor: every event up to here is in the weights
    base_version: str  # the registry version these weights descend from
    published: list[int]  # cursor: ``committed`` when the weights were last published (or restarted)
    trained_ranges: list[list[int]] = field(default_factory=list)  # merged [from, to] offset ranges
    batches: int = 0

    def add_range(self, first: int, last: int) -> None:
        merged: list[list[int]] = []
        for lo, hi in sorted([*self.trained_ranges, [first, last]]):
            if merged and lo <= merged[-1][1] + 1 and partition_of(lo) == partition_of(merged[-1][1]):
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self.trained_ranges = merged

    def unpublished_ranges(self) -> list[list[int]]:
        """Per partition with events trained since the last publish, their ``[first, last]`` offsets."""
        return [[p + 1, c] for p, c in zip(self.published, self.committed, strict=True) if c > p]

    @classmethod
    def from_dict(cls, raw: dict[str, Any], partitions: int) -> TrainerState:
        """A state as :meth:`CheckpointStore.save` wrote it (also the one-offset form of one-partition logs)."""
        raw = dict(raw)
        if "committed_offset" in raw:
            raw["committed"] = [raw.pop("committed_offset")]
            raw["published"] = [raw.pop("since_publish_from") - 1]
        raw["committed"] = list(as_cursor(raw["committed"], partitions))
        raw["published"] = list(as_cursor(raw["published"], partitions))
        return cls(**raw)


class CheckpointStore:
    """Checkpoints under ``<model_dir>/trainer/``; keeps the newest two."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, model: SASRec, item_ids: list[str], state: TrainerState) -> None:
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(staging / "weights.safetensors"))
        (staging / "items.json").write_text(json.dumps(item_ids))
        (staging / "state.json").write_text(json.dumps({"config": model.config.to_dict(), **asdict(state)}))
        for f in staging.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        name = f"ckpt-{state.batches:08d}-{uuid.uuid4().hex[:6]}"
        os.rename(staging, self.root / name)
        pointer = self.root / f".CHECKPOINT.{uuid.uuid4().hex}"
        pointer.write_text(name + "\n")
        os.replace(pointer, self.root / "CHECKPOINT")
        keep = {name, self._previous}
        for old in self.root.iterdir():
            if old.is_dir() and old.name.startswith("ckpt-") and old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
        self._previous = name

    _previous: str | None = None

    def load(self, partitions: int = 1) -> tuple[SASRec, list[str], TrainerState] | None:
        try:
            name = (self.root / "CHECKPOINT").read_text().strip()
        except FileNotFoundError:
            return None
        path = self.root / name
        raw = json.loads((path / "state.json").read_text())
        model = SASRec(SASRecConfig.from_dict(raw.pop("config")))
        model.load_state_dict(load_file(str(path / "weights.safetensors")))
        item_ids = json.loads((path / "items.json").read_text())
        self._previous = name
        return model, item_ids, TrainerState.from_dict(raw, partitions)

    def save_holdout(self, holdout: dict[str, Any]) -> dict[str, Any]:
        """The fixed older holdout of this lineage, written once."""
        tmp = self.root / f".holdout.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(holdout))
        os.replace(tmp, self.root / "older_holdout.json")
        return holdout

    def load_holdout(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / "older_holdout.json").read_text())
        except FileNotFoundError:
            return None

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        self._previous = None
