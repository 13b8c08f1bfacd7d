"""Fixtures of the dashboard tests: a trained store with two versions and an admin key, and headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from freshrec.access.keys import open_key_store
from freshrec.model.registry import ModelRegistry
from tests.conftest import TrainedStore, make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@dataclass
class DashboardStore:
    data_dir: Path
    parent: str  # the trained version
    child: str  # a second version published on top of it (current)
    admin_key: str
    read_key: str


def publish_child(data_dir: Path) -> str:
    """Publish the current version again as its child, so there is a lineage to roll back along."""
    registry = ModelRegistry(make_settings(data_dir).storage.resolved_model_dir())
    loaded = registry.load()
    meta = {"metrics": {}, "offsets": loaded.meta["offsets"], "kind": "test"}
    return registry.publish(loaded.model, loaded.item_ids, loaded.event_types, meta=meta, parent=loaded.version)


@pytest.fixture
def dashboard_store(trained: TrainedStore, tmp_path: Path) -> DashboardStore:
    data_dir = trained.copy_to(tmp_path / "data")
    child = publish_child(data_dir)
    settings = make_settings(data_dir)
    store = open_key_store(settings.storage.state_url, settings.storage.data_dir)
    try:
        admin, _ = store.create("dashboard", ["admin"])
        read, _ = store.create("reader", ["read"])
    finally:
        store.close()
    return DashboardStore(data_dir, trained.version, child, admin, read)


class Screenshots:
    """Screenshots of a browser test, in its tmp_path and, when FRESHREC_ARTIFACTS names a folder, copied
    there (CI keeps that folder as the run's artefacts)."""

    def __init__(self, driver, folder: Path, test_name: str) -> None:  # type: ignore[no-untyped-def]
        self.driver = driver
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        artefacts = os.environ.get("FRESHREC_ARTIFACTS")
        self.copy_to = Path(artefacts) / "dashboard" / test_name if artefacts else None
        self.saved: list[Path] = []

    def save(self, name: str) -> Path:
        path = self.folder / f"{len(self.saved) + 1:02d}-{name}.png"
        assert self.driver.save_screenshot(str(path)), f"could not save screenshot {path}"
        self.saved.append(path)
        if self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, self.copy_to / path.name)
        return path


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """Headless Debian Chromium through its chromedriver (`make servers` installs both)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"the browser tests need {', '.join(missing)}: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.screenshots = Screenshots(driver, tmp_path / "screenshots", request.node.name)
    try:
        yield driver
    finally:
        driver.quit()


#: A valid 1x1 PNG, for report folders in tests.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def report_folder(path: Path) -> Path:
    """A folder as a replay leaves it: JSON, Markdown, a plot, and a file the dashboard does not show."""
    path.mkdir(parents=True)
    (path / "replay.json").write_text(json.dumps({"strategies": {"live": {"ndcg@10": 0.25}}}))
    (path / "replay.md").write_text("# Streaming replay\n\n| strategy | NDCG@10 |\n")
    (path / "hit_rate.png").write_bytes(PIXEL_PNG)
    (path / "notes.txt").write_text("not a report")
    return path
