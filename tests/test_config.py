from pathlib import Path

import pytest
from pydantic import ValidationError

from freshrec.config import BUILTIN_EVENT_TYPES, load_settings


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(storage={"data_dir": tmp_path})
    assert s.model.max_len == 200
    assert s.state.max_sequence_length == 200
    assert s.storage.resolved_event_log_url() == f"sqlite:///{tmp_path}/events.db"
    assert s.events.types[: len(BUILTIN_EVENT_TYPES)] == list(BUILTIN_EVENT_TYPES)


def test_env_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRESHREC_TRAIN__EPOCHS", "7")
    monkeypatch.setenv("FRESHREC_EVENTS__CUSTOM_TYPES", '["wishlist"]')
    s = load_settings(storage={"data_dir": tmp_path})
    assert s.train.epochs == 7
    assert "wishlist" in s.events.types


def test_toml_file_layers_under_env_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "freshrec.toml"
    cfg.write_text("[train]\nepochs = 11\nlr = 0.01\n[model]\ndim = 48\nheads = 4\n")
    monkeypatch.setenv("FRESHREC_TRAIN__LR", "0.02")
    s = load_settings(cfg, train={"epochs": 3})
    assert (s.train.epochs, s.train.lr, s.model.dim) == (3, 0.02, 48)
    monkeypatch.setenv("FRESHREC_CONFIG", str(cfg))
    assert load_settings().model.dim == 48


def test_invalid_values_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="divisible"):
        load_settings(model={"dim": 30, "heads": 4})
    with pytest.raises(ValidationError):
        load_settings(train={"epochs": 0})
    with pytest.raises(ValidationError, match="unknown event types"):
        load_settings(events={"negative_types": ["nope"]})
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.toml")
