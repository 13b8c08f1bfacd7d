"""Memory: peak RSS of `freshrec serve` with a large catalogue and many users of live state.

python benchmarks/memory.py                          # 1M items, 100K users x 50 events
python benchmarks/memory.py --items 100000 --users 10000
python benchmarks/memory.py --quick
python benchmarks/memory.py --store /tmp/store-1m             # build the store there once, reuse it after

Peak RSS (VmHWM) counts everything the server ever held at once, start-up included.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from machine import ROOT, write_json
from stores import Server, build_store


def reuse_or_build(data_dir: Path, items: int, users: int, events_per_user: int) -> dict[str, Any]:
    """The store in ``data_dir``: the one built there before (its description in store.json), else a new one."""
    described = data_dir / "store.json"
    if described.is_file():
        return json.loads(described.read_text())
    store = build_store(data_dir, items, users, events_per_user)
    described.write_text(json.dumps(store))
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events-per-user", type=int, default=50)
    parser.add_argument("--index", default="auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--store", type=Path, help="Data directory to build the store in, or reuse when it has one.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory.json")
    args = parser.parse_args()
    if args.quick:
        args.items, args.users, args.events_per_user = 1000, 200, 5
    with tempfile.TemporaryDirectory(prefix="freshrec-mem-") as tmp:
        data_dir = args.store or Path(tmp)
        reused = (data_dir / "store.json").is_file()
        t0 = time.perf_counter()
        store = reuse_or_build(data_dir, args.items, args.users, args.events_per_user)
        build_seconds = time.perf_counter() - t0
        args.items, args.users, args.events_per_user = store["items"], store["users"], store["events"] // store["users"]
        t0 = time.perf_counter()
        with Server(data_dir, {"FRESHREC_SERVING__INDEX": args.index}) as server:
            start_seconds = time.perf_counter() - t0
            for u in range(0, args.users, max(1, args.users // 200)):
                httpx.get(f"{server.url}/v1/users/user-{u:07d}/recommendations", timeout=60).raise_for_status()
            rss = server.rss_mb()
    print(
        f"{args.items:,} items, {args.users:,} users x {args.events_per_user} events, index {args.index}: "
        f"peak RSS {rss:,.0f} MiB; server start (state rebuild + model/index load) {start_seconds:.1f}s"
    )
    write_json(
        args.out,
        {
            "benchmark": "memory",
            "store": store,
            "index": args.index,
            "peak_rss_mb": rss,
            "server_start_seconds": start_seconds,
            "store_build_seconds": None if reused else build_seconds,
        },
    )


if __name__ == "__main__":
    main()
