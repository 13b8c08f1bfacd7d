"""deploy/docker-compose.yml stays in step with the code: every freshrec service runs a real command with
options that exist, and its settings load (there is no Docker daemon in CI to start it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from freshrec.cli import app
from freshrec.config import load_settings
from freshrec.events.kafka import parse_kafka_url

COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "docker-compose.yml"


def freshrec_services() -> dict[str, dict]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    return {name: s for name, s in services.items() if s.get("image") == "freshrec"}


def test_the_deployment_runs_kafka_redis_workers_and_the_trainer() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"kafka", "redis", "api", "trainer", "ingest"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    assert services["api"]["command"][:2] == ["freshrec", "serve"] and "--workers" in services["api"]["command"]


@pytest.mark.parametrize("name", sorted(freshrec_services()))
def test_each_freshrec_service_runs_a_command_that_exists(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = freshrec_services()[name]
    command = service["command"]
    assert command[0] == "freshrec"
    help_text = CliRunner().invoke(app, [command[1], "--help"], terminal_width=200).output
    for option in (c for c in command[2:] if c.startswith("--")):
        assert option in help_text, f"{name}: `freshrec {command[1]}` has no option {option}"
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = load_settings()
    assert parse_kafka_url(settings.storage.event_log_url)[1] == "freshrec-events"
    assert settings.storage.state_url.startswith("redis://")
    assert settings.storage.catalog_url is not None and settings.storage.catalog_url.startswith("redis://")
