from pathlib import Path

import pytest
import torch

from freshrec.model.registry import ModelNotFoundError, ModelRegistry
from freshrec.model.sasrec import SASRec, SASRecConfig


def tiny(n: int = 3) -> SASRec:
    return SASRec(SASRecConfig(num_items=n, dim=8, heads=1, layers=1, max_len=4))


def test_publish_load_roundtrip(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    model = tiny()
    v = reg.publish(model, ["a", "b", "c"], ["view"], {"metrics": {"ndcg@10": 0.5}})
    loaded = reg.load(v)
    assert loaded.item_ids == ["a", "b", "c"] and loaded.event_types == ["view"]
    assert loaded.meta["metrics"] == {"ndcg@10": 0.5} and loaded.meta["version"] == v
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    assert not loaded.model.training


def test_versions_increase_and_current_moves(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    assert reg.current() is None
    v1 = reg.publish(tiny(), ["a", "b", "c"], ["view"], {})
    v2 = reg.publish(tiny(), ["a", "b", "c"], ["view"], {}, parent=v1)
    assert reg.versions() == [v1, v2] and reg.current() == v2
    assert reg.meta(v2)["parent"] == v1
    reg.set_current(v1)
    assert reg.current() == v1
    v3 = reg.publish(tiny(), ["a", "b", "c"], ["view"], {}, make_current=False)
    assert reg.current() == v1 and v3 in reg.versions()
    # no staging directories are left behind
    assert not [p for p in (tmp_path / "versions").iterdir() if p.name.startswith(".")]


def test_errors(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    with pytest.raises(ModelNotFoundError, match="freshrec train"):
        reg.load()
    with pytest.raises(ModelNotFoundError):
        reg.set_current("v99999")
    with pytest.raises(ValueError, match="id map"):
        reg.publish(tiny(), ["a"], ["view"], {})
