"""Recommendation latency and throughput at fixed request rates, over loopback, exact vs faiss.

    python benchmarks/serving_latency.py                         # 3.7K, 100K, 1M items; exact + faiss-hnsw
    python benchmarks/serving_latency.py --items 100000 --rates 100,200,500,1000 --duration 20
    python benchmarks/serving_latency.py --quick                 # a few seconds, tiny store (smoke test)

Each store has the given number of generated items, 20K users with 50 events each, and an untrained
default model (SASRec d=64, 2 layers, max_len 200: latency depends on shapes, not weight values) with a
ranker of the shipped shape. A `freshrec serve` process answers `GET /v1/users/{id}/recommendations?k=10`
for random users while an open-loop driver (benchmarks/loadgen.py: httpx + asyncio, fixed schedule,
latency from scheduled send time) keeps the rate fixed. Client and server share the machine's cores.
``--rankers`` measures the served pipeline (every live source + the ranker, ``on``) and the transformer's
own ranking (``off``) on the same store, in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from loadgen import HEADER, Request, open_loop
from machine import ROOT, write_json
from stores import Server, build_store


def recommendation_request(users: list[str], k: int) -> Request:
    """GET recommendations for users in turn."""
    return lambda client, i: client.get(f"/v1/users/{users[i % len(users)]}/recommendations", params={"k": k})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="3700,100000,1000000", help="Catalogue sizes, comma-separated.")
    parser.add_argument("--indexes", default="exact,faiss-hnsw", help="Index kinds, comma-separated.")
    parser.add_argument("--rates", default="100,200,500,1000", help="Request rates (req/s), comma-separated.")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per rate.")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rankers", default="on", help="on (served pipeline), off (transformer only), or both.")
    parser.add_argument("--quick", action="store_true", help="Smoke test: tiny store, one short rate.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serving_latency.json")
    args = parser.parse_args()
    if args.quick:
        args.items, args.indexes, args.rates, args.duration, args.users = "500", "exact,faiss-hnsw", "50", 1.0, 200
        args.rankers = "on,off"
    rows = []
    rng = np.random.default_rng(0)
    for n_items in (int(x) for x in args.items.split(",")):
        with tempfile.TemporaryDirectory(prefix="freshrec-lat-") as tmp:
            store = build_store(Path(tmp), n_items, args.users)
            users = [f"user-{u:07d}" for u in rng.integers(0, args.users, 100_000)]
            for index, ranker in ((i, r) for i in args.indexes.split(",") for r in args.rankers.split(",")):
                env = {"FRESHREC_SERVING__INDEX": index, "FRESHREC_SERVING__RANKER": str(ranker == "on").lower()}
                with Server(Path(tmp), env) as server:
                    print(
                        f"\n{n_items:,} items, index {index}, ranker {ranker}: GET recommendations k={args.k}\n{HEADER}"
                    )
                    for rate in (float(r) for r in args.rates.split(",")):
                        result = open_loop(
                            server.url,
                            recommendation_request(users, args.k),
                            rate,
                            args.duration,
                        )
                        print(result.row())
                        rows.append(
                            {
                                "items": n_items,
                                "index": index,
                                "ranker": ranker,
                                "store": store,
                                **result.__dict__,
                                "server_peak_rss_mb": server.rss_mb(),
                            }
                        )
    write_json(
        args.out,
        {"benchmark": "serving_latency", "driver": "aiohttp+asyncio (uvloop) open loop", "k": args.k, "rows": rows},
    )


if __name__ == "__main__":
    main()
