"""Freshness: time from an event's 2xx to a recommendation response that reflects it.

    python benchmarks/freshness.py            # 500 probes against a store with a model
    python benchmarks/freshness.py --quick

Each probe posts a view of the item currently ranked first for a user, then polls that user's
recommendations until the item is gone from the list (seen items are excluded), and records the time
from the 2xx of the POST to the first reflecting response. State is updated before the POST returns, so
the first request after the ack already reflects it; the figure is one recommendation round trip.
Background load (`--background-rate`) keeps the server busy with other users' requests meanwhile.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from loadgen import open_loop
from machine import ROOT, write_json
from stores import Server, build_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--background-rate", type=float, default=100.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "freshness.json")
    args = parser.parse_args()
    if args.quick:
        args.items, args.users, args.probes, args.background_rate = 300, 100, 20, 10.0
    lags, polls = [], []
    with tempfile.TemporaryDirectory(prefix="freshrec-fresh-") as tmp:
        build_store(Path(tmp), args.items, args.users)
        with Server(Path(tmp)) as server:
            stop = threading.Event()
            duration = args.probes * 0.05 + 30

            def background() -> None:
                open_loop(
                    server.url,
                    lambda c, i: c.get(f"/v1/users/user-{i % args.users:07d}/recommendations"),
                    args.background_rate,
                    duration,
                )
                stop.set()

            bg = threading.Thread(target=background, daemon=True)
            bg.start()
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for p in range(args.probes):
                    user = f"user-{(p * 7919) % args.users:07d}"
                    top = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()["items"][0][
                        "item_id"
                    ]
                    r = client.post("/v1/events", json={"user_id": user, "item_id": top, "type": "view"})
                    acked = time.perf_counter()
                    r.raise_for_status()
                    for attempt in range(1, 1000):
                        items = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()["items"]
                        if top not in [i["item_id"] for i in items]:
                            lags.append(time.perf_counter() - acked)
                            polls.append(attempt)
                            break
            bg.join(timeout=duration + 60)
    ms = np.array(lags) * 1000
    result = {
        "probes": len(lags),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "first_response_reflected": float(np.mean(np.array(polls) == 1)),
        "items": args.items,
        "users": args.users,
        "background_rate": args.background_rate,
    }
    print(
        f"event 2xx -> reflecting recommendation: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms "
        f"({result['first_response_reflected']:.0%} reflected by the first request after the ack)"
    )
    write_json(args.out, {"benchmark": "freshness", **result})


if __name__ == "__main__":
    main()
