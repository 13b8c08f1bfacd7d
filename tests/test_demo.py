from pathlib import Path

from rich.console import Console

from freshrec.demo import run_demo
from tests.conftest import make_settings


def test_demo_runs_end_to_end_and_lists_change(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    settings = make_settings(tmp_path / "data", train={"max_seconds": 30, "epochs": 10})
    run_demo(settings, n_users=150, n_items=48, console=console, seed=1)
    text = console.export_text()
    assert "published v00001" in text and "serving on http://127.0.0.1:" in text
    assert text.count("after view of") >= 3 and text.count("after purchase of") == 3
    assert "(trending," in text and "(model," in text
    assert "new " in text  # at least one list gained an item after an event
