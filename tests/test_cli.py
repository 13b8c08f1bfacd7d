"""The command line, driven through typer's runner on real files and a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from freshrec.cli import app

runner = CliRunner()
COMMANDS = [
    [],
    ["import"],
    ["train"],
    ["evaluate"],
    ["serve"],
    ["demo"],
    ["generate"],
    ["model"],
    ["model", "list"],
    ["model", "show"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_generate_import_train_evaluate_model(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    out = tmp_path / "shop"
    r = runner.invoke(app, ["generate", str(out), "--users", "120", "--items", "40", "--seed", "2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*data, "import", str(out / "items.jsonl"), "--kind", "items"])
    assert r.exit_code == 0 and "imported 40 items" in r.output, r.output
    r = runner.invoke(app, [*data, "import", str(out / "events.jsonl")])
    assert r.exit_code == 0 and "events" in r.output, r.output
    r = runner.invoke(
        app, [*data, "train", "--epochs", "2", "--dim", "16", "--heads", "1", "--layers", "1", "--device", "cpu"]
    )
    assert r.exit_code == 0 and "published v00001" in r.output, r.output
    assert "NDCG@10" in r.output and "popularity" in r.output
    r = runner.invoke(app, [*data, "evaluate", "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["protocol"] == "offline leave-one-out, full ranking" and metrics["version"] == "v00001"
    assert set(metrics["model"]) >= {"hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20"}
    r = runner.invoke(app, [*data, "model", "list"])
    assert r.exit_code == 0 and "v00001" in r.output
    r = runner.invoke(app, [*data, "model", "show"])
    assert r.exit_code == 0 and '"num_items": 40' in r.output


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    bad = tmp_path / "u.data"
    bad.write_text("1\t2\t3\n")
    r = runner.invoke(app, [*data, "import", str(bad)])
    assert r.exit_code == 2 and "u.data:1: expected 4 fields" in r.output
    r = runner.invoke(app, [*data, "import", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = runner.invoke(app, [*data, "import", str(bad), "--map", "nonsense"])
    assert r.exit_code == 2 and "FIELD=COLUMN" in r.output
    r = runner.invoke(app, [*data, "train"])
    assert r.exit_code == 2 and "event log is empty" in r.output
    r = runner.invoke(app, [*data, "model", "show"])
    assert r.exit_code == 2 and "no model published" in r.output
    r = runner.invoke(app, [*data, "evaluate"])
    assert r.exit_code == 2 and "freshrec train" in r.output


def test_replay_writes_its_report_with_what_produced_it(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    assert runner.invoke(app, ["generate", str(shop), "--users", "60", "--items", "30", "--seed", "1"]).exit_code == 0
    out = tmp_path / "report"
    r = runner.invoke(
        app,
        ["replay", str(shop), "--epochs", "1", "--online-every", "0", "--max-events", "300", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    report = json.loads((out / "replay.json").read_text())
    assert report["protocol"] == "streaming replay (prequential)" and report["seed"] == 42
    assert report["machine"]["cores"] >= 1 and report["machine"]["git_commit"]
    assert {"served", "co-occurrence", "session-knn"} <= set(report["strategies"])


def test_keys_are_created_listed_and_revoked(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "data")]
    created = runner.invoke(app, [*data, "keys", "create", "frontend", "--scope", "read", "--scope", "ingest"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("fr_")
    listed = runner.invoke(app, [*data, "keys", "list"])
    key_id = key.split("_")[1]
    assert key_id in listed.output and "frontend" in listed.output and key not in listed.output
    assert runner.invoke(app, [*data, "keys", "revoke", key_id]).exit_code == 0
    assert runner.invoke(app, [*data, "keys", "revoke", "deadbeef"]).exit_code == 2
    bad = runner.invoke(app, [*data, "keys", "create", "x", "--scope", "root"])
    assert bad.exit_code == 2 and "scopes must be some of" in bad.output
    audit = (tmp_path / "data" / "audit.log").read_text()
    assert f"keys create {key_id}" in audit and f"keys revoke {key_id}" in audit


def test_insecure_serving_is_refused_off_loopback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path / "data"), "serve", "--insecure", "--host", "0.0.0.0", "--no-online"]
    )
    assert result.exit_code != 0 and "loopback" in result.output
