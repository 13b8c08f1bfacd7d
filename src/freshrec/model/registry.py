"""ModelRegistry: immutable model versions in a directory, with an atomically switched current pointer.

Layout::

    <model_dir>/
      CURRENT                  the current version's name (replaced atomically with os.replace)
      versions/v00001/
        model.safetensors      weights
        meta.json              config, metrics, data range, parent, created_at, event types
        items.json             the id map: row i + 1 of the item table is items[i]

A version directory is written under a temporary name and renamed into place, so a reader never sees a
half-written version; the name ``vNNNNN`` is claimed by that rename, so concurrent publishers never
overwrite each other.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from freshrec.model.sasrec import SASRec, SASRecConfig

_WEIGHTS, _META, _ITEMS, _CURRENT, _PIN = "model.safetensors", "meta.json", "items.json", "CURRENT", "PINNED"
_RANKER = "ranker.txt"


@dataclass
class LoadedModel:
    """A version read from the registry: the module (eval mode), its id map and its metadata."""

    version: str
    model: SASRec
    item_ids: list[str]
    event_types: list[str]
    meta: dict[str, Any]
    ranker: str | None = None  # the ranker over live candidates (LightGBM text), when the version has one


def _check_name(version: str) -> None:
    """Versions are named, never addressed by path: anything but a published version's name is unknown."""
    if not isinstance(version, str) or _number(version) is None:
        raise ModelNotFoundError(f"no model version {version!r} (versions are named like v00001)")


class ModelNotFoundError(LookupError):
    pass


def _number(version: str) -> int | None:
    """The number of a version name ``vNNNNN`` (more digits past v99999), or None for other names."""
    digits = version[1:]
    return int(digits) if version.startswith("v") and digits.isdigit() else None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())


class ModelRegistry:
    """Versions on disk; see the module docstring for the layout and guarantees.

    Example
    -------
    >>> import tempfile
    >>> from freshrec.model.sasrec import SASRec, SASRecConfig
    >>> reg = ModelRegistry(tempfile.mkdtemp())
    >>> m = SASRec(SASRecConfig(num_items=2, dim=8, heads=1, layers=1, max_len=4))
    >>> v = reg.publish(m, item_ids=["a", "b"], event_types=["view"], meta={"metrics": {}})
    >>> v, reg.current(), reg.load().item_ids
    ('v00001', 'v00001', ['a', 'b'])
    """

    def __init__(self, root: Path | str, on_current: Callable[[str], None] | None = None) -> None:
        """``on_current`` is called with each version made current (the deployment announces it)."""
        self.root = Path(root)
        self.on_current = on_current
        self.versions_dir = self.root / "versions"
        self.versions_dir.mkdir(parents=True, exist_ok=True)

    def versions(self) -> list[str]:
        """Published version names, oldest first."""
        names = [p.name for p in self.versions_dir.iterdir() if p.is_dir() and _number(p.name) is not None]
        return sorted(names, key=_number)

    def current(self) -> str | None:
        """The version serving should use, or ``None`` when nothing was published."""
        try:
            name = (self.root / _CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def set_current(self, version: str) -> None:
        """Point CURRENT at an existing version, atomically."""
        _check_name(version)
        if not (self.versions_dir / version / _META).is_file():
            raise ModelNotFoundError(f"no model version {version!r}")
        tmp = self.root / f".{_CURRENT}.{uuid.uuid4().hex}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / _CURRENT)
        _fsync_dir(self.root)
        if self.on_current is not None:
            self.on_current(version)

    def pinned(self) -> str | None:
        """The version pinned as current, or ``None``. While pinned, automatic publishing (the online
        trainer) does not move the current pointer."""
        try:
            return (self.root / _PIN).read_text().strip() or None
        except FileNotFoundError:
            return None

    def pin(self, version: str | None = None) -> str:
        """Make ``version`` (default: the current one) current and keep it there until :meth:`unpin`."""
        version = version or self.current()
        if version is None:
            raise ModelNotFoundError("no model published yet")
        self.set_current(version)
        tmp = self.root / f".{_PIN}.{uuid.uuid4().hex}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / _PIN)
        return version

    def unpin(self) -> None:
        (self.root / _PIN).unlink(missing_ok=True)

    def rollback(self, to: str | None = None) -> str:
        """Point CURRENT at ``to``, or at the current version's parent (else the version before it)."""
        current = self.current()
        if to is None:
            if current is None:
                raise ModelNotFoundError("no model published yet")
            to = self.meta(current).get("parent")
            if to is None:
                older = [v for v in self.versions() if _number(v) < _number(current)]
                if not older:
                    raise ModelNotFoundError(f"{current} has no parent and no older version to roll back to")
                to = older[-1]
        if self.pinned() not in (None, to):
            raise ValueError(f"version {self.pinned()} is pinned; unpin it first (`freshrec model unpin`)")
        self.set_current(to)
        return to

    def history(self) -> list[dict[str, Any]]:
        """Every version's lineage, oldest first: parent, kind, offsets, metrics, time."""
        out = []
        for v in self.versions():
            meta = self.meta(v)
            out.append(
                {
                    k: meta.get(k)
                    for k in ("version", "parent", "created_at", "kind", "offsets", "metrics", "data", "gate")
                }
            )
        return out

    def meta(self, version: str) -> dict[str, Any]:
        _check_name(version)
        path = self.versions_dir / version / _META
        if not path.is_file():
            raise ModelNotFoundError(f"no model version {version!r}")
        # The directory name is the version: it is claimed by the rename, so it is not stored inside.
        return {**json.loads(path.read_text(encoding="utf-8")), "version": version}

    def publish(
        self,
        model: SASRec,
        item_ids: list[str],
        event_types: list[str],
        meta: dict[str, Any],
        parent: str | None = None,
        make_current: bool = True,
        ranker: str | None = None,
    ) -> str:
        """Write a new immutable version and (by default) make it current; returns its name. ``ranker``: the
        version's ranker over live candidates, as text."""
        if len(item_ids) != model.num_items:
            raise ValueError(f"id map has {len(item_ids)} items, model has {model.num_items} rows")
        staging = self.versions_dir / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(staging / _WEIGHTS))
        _write_json(staging / _ITEMS, item_ids)
        if ranker is not None:
            with open(staging / _RANKER, "w", encoding="utf-8") as f:
                f.write(ranker)
                f.flush()
                os.fsync(f.fileno())
        full_meta = {
            **meta,
            "config": model.config.to_dict(),
            "event_types": list(event_types),
            "parent": parent,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_json(staging / _META, full_meta)
        _fsync_dir(staging)
        existing = self.versions()
        number = _number(existing[-1]) + 1 if existing else 1
        while True:
            name = f"v{number:05d}"
            try:
                os.rename(staging, self.versions_dir / name)  # fails if another publisher took the name
                break
            except OSError:
                if not (self.versions_dir / name).exists():
                    raise
                number += 1
        _fsync_dir(self.versions_dir)
        if make_current:
            self.set_current(name)
        return name

    def load(self, version: str | None = None, device: str | torch.device = "cpu") -> LoadedModel:
        """Load a version (default: the current one) in eval mode."""
        version = version or self.current()
        if version is None:
            raise ModelNotFoundError("no model published yet; run `freshrec train` first")
        meta = self.meta(version)
        path = self.versions_dir / version
        # The model takes the loaded tensors themselves (on CPU, pages of the file mapped copy-on-write),
        # so its item table is held once, not allocated, initialised and then overwritten by a copy.
        state = load_file(str(path / _WEIGHTS), device=str(device))
        model = SASRec.from_state(SASRecConfig.from_dict(meta["config"]), state)
        model.to(device).eval()
        item_ids = json.loads((path / _ITEMS).read_text(encoding="utf-8"))
        return LoadedModel(version, model, item_ids, meta["event_types"], meta, self.ranker(version))

    def ranker(self, version: str) -> str | None:
        """A version's ranker (text), or ``None`` when it has none."""
        _check_name(version)
        try:
            return (self.versions_dir / version / _RANKER).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
