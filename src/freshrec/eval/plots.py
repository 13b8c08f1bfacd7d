"""PNG plots of a streaming replay: the metric per time window, and cumulative, per strategy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def plot_replay(report: dict[str, Any], out_dir: Path, stem: str = "replay") -> list[Path]:
    """Write ``<stem>_windows.png`` and ``<stem>_cumulative.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    k = report["options"]["k"]
    strategies: dict[str, Any] = report["strategies"]
    title = f"{report['dataset']}: {report['protocol']}"
    paths = []

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, res in strategies.items():
        mids = [datetime.fromtimestamp((w["start_ts"] + w["end_ts"]) / 2, UTC) for w in res["windows"]]
        ax.plot(mids, [w[f"ndcg@{k}"] for w in res["windows"]], marker="o", label=name)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(f"NDCG@{k} per window")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_windows.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, res in strategies.items():
        curve = res["cumulative_ndcg"]
        xs = [i * report["events_scored"] / max(1, len(curve) - 1) for i in range(len(curve))]
        ax.plot(xs, curve, label=name)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("scored events")
    ax.set_ylabel(f"cumulative NDCG@{k}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_cumulative.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
