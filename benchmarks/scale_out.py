"""Scaled out on Kafka and Redis: durable ingestion, freshness across workers, one worker against two.

    python benchmarks/scale_out.py              # 100,000 items, 10,000 users x 50 events
    python benchmarks/scale_out.py --quick
    python benchmarks/scale_out.py --partitions 3 --phases freshness,ingestion \
        --out benchmarks/results/scale_out_3_partitions.json

A Kafka-protocol broker (tansu, in-memory storage) and a redis-server (AOF on, fsync every second) are started
on free loopback ports; the store is built on them (the event log a topic of ``--partitions``; live state, trending,
the catalogue and event-id de-duplication in Redis) with an untrained default model (latency does not depend on the
weights), and `freshrec serve` processes (online trainer off) run against it:

1. **Ingestion**: closed-loop clients post batches of 1,000 events to one worker; an event is acknowledged
   once the broker acknowledged it and it is folded into Redis. Single-event POSTs open loop at ``--rate``.
2. **Freshness across workers**: each probe posts a view of a user's top item to worker A, then asks worker
   B for the user's list until the item is gone; timed from the POST's send to B's reflecting answer.
3. **One worker against two** on one port (`freshrec serve --workers 2`): recommendation requests open loop
   at rising rates; reported per rate, with the highest whose p99 stays within 50 ms; then the embedded
   default (SQLite log, state in memory) on a store with the same catalogue and users, for reference.

The load driver runs on the same cores as the servers, the broker and Redis (the report says how many).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from ingest import closed_loop, single_posts
from loadgen import open_loop
from machine import ROOT, write_json
from stores import Server, build_store

sys.path.insert(0, str(ROOT))
from tests.servers import KafkaBroker, RedisServer

P99_BUDGET_MS = 50.0


async def _both(urls: list[str], clients: int, duration: float) -> list[dict]:
    loops = (closed_loop(url, 1000, clients // len(urls), duration, tag=f"w{w}-") for w, url in enumerate(urls))
    return await asyncio.gather(*loops)


def ingestion(a: Server, b: Server, args: argparse.Namespace) -> dict:
    """Single-event POSTs, then batches of 1,000 from ``args.clients`` closed-loop clients to one worker, then
    split over two (single POSTs first, so their tail is not the bulk phases' aftermath)."""
    single_posts(a.url, args.rate, min(2.0, args.duration))  # warm-up, not counted: first connections, lazy set-up
    single = single_posts(a.url, args.rate, args.duration)
    one = asyncio.run(closed_loop(a.url, 1000, args.clients, args.duration, a.log))
    two = asyncio.run(_both([a.url, b.url], args.clients, args.duration))
    both = {
        "events": sum(r["events"] for r in two),
        "events_per_second": sum(r["events"] for r in two) / max(r["seconds"] for r in two),
        "per_worker": two,
    }
    return {"batched_one_worker": one, "batched_two_workers": both, "single_post": single.__dict__}


def freshness(a: Server, b: Server, args: argparse.Namespace) -> dict:
    lags, polls = [], []
    with httpx.Client(timeout=30) as client:
        for p in range(args.probes):
            user = f"user-{(p * 7919) % args.users:07d}"
            top = client.get(f"{b.url}/v1/users/{user}/recommendations", params={"k": 10}).json()["items"][0]["item_id"]
            sent = time.perf_counter()
            client.post(f"{a.url}/v1/events", json={"user_id": user, "item_id": top, "type": "view"}).raise_for_status()
            for attempt in range(1, 1000):
                items = client.get(f"{b.url}/v1/users/{user}/recommendations", params={"k": 10}).json()["items"]
                if top not in [i["item_id"] for i in items]:
                    lags.append(time.perf_counter() - sent)
                    polls.append(attempt)
                    break
    ms = np.array(lags) * 1000
    return {
        "probes": len(lags),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "first_response_reflected": float(np.mean(np.array(polls) == 1)),
    }


def capacity(server: Server, args: argparse.Namespace) -> list[dict]:
    rows = []
    for rate in args.rates:
        result = open_loop(
            server.url,
            lambda c, i: c.get(f"/v1/users/user-{(i * 31) % args.users:07d}/recommendations", params={"k": 10}),
            rate,
            args.duration,
        )
        rows.append(result.__dict__)
        print(
            f"  {rate:>5} req/s offered: achieved {result.achieved_rps:.0f}/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, errors {result.errors}"
        )
        if result.p99_ms > 4 * P99_BUDGET_MS:
            break  # saturated: higher rates only queue more
    return rows


def best_rate(rows: list[dict]) -> float:
    ok = [r["achieved_rps"] for r in rows if r["p99_ms"] <= P99_BUDGET_MS and not r["errors"]]
    return max(ok, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--events-per-user", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200.0, help="single-event POSTs per second")
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[100, 200, 300, 400, 500, 700]
    )
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the event topic")
    parser.add_argument(
        "--phases",
        type=lambda s: set(s.split(",")),
        default={"freshness", "ingestion", "capacity"},
        help="comma-separated: freshness, ingestion, capacity (one worker against two, and the embedded default)",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale_out.json")
    args = parser.parse_args()
    if args.quick:
        args.items, args.users, args.events_per_user, args.probes = 300, 100, 5, 10
        args.duration, args.rates, args.clients, args.rate = 1.0, [20.0], 2, 20.0
    broker, redis_server = KafkaBroker(), RedisServer()
    env = {
        "FRESHREC_STORAGE__EVENT_LOG_URL": broker.url(f"bench-events?partitions={args.partitions}"),
        "FRESHREC_STORAGE__STATE_URL": redis_server.url,
        "FRESHREC_STORAGE__CATALOG_URL": redis_server.url,
        "FRESHREC_SERVING__TORCH_THREADS": "1",
    }
    os.environ.update(env)  # the store is built in a child process, which reads them
    result: dict = {"items": args.items, "users": args.users, "events": args.users * args.events_per_user}
    result["partitions"] = args.partitions
    result["cpu_cores"] = os.cpu_count()
    try:
        with tempfile.TemporaryDirectory(prefix="freshrec-scale-") as tmp:
            data = Path(tmp) / "data"
            t0 = time.perf_counter()
            build_store(data, args.items, args.users, args.events_per_user)
            result["store_build_s"] = time.perf_counter() - t0
            print(f"store on Kafka + Redis built in {result['store_build_s']:.0f} s")
            with Server(data, env) as a, Server(data, env) as b:
                if "freshness" in args.phases:
                    result["freshness"] = f = freshness(a, b, args)
                    print(f"worker A 2xx -> worker B reflects: p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms")
                if "ingestion" in args.phases:
                    result["ingestion"] = i = ingestion(a, b, args)
                    print(
                        f"ingestion, batched: {i['batched_one_worker']['events_per_second']:,.0f} events/s to one "
                        f"worker, {i['batched_two_workers']['events_per_second']:,.0f} to two; single POST "
                        f"p50 {i['single_post']['p50_ms']:.2f} ms, p99 {i['single_post']['p99_ms']:.2f} ms"
                    )
            for workers in (1, 2) if "capacity" in args.phases else ():
                print(f"{workers} worker(s) on Kafka + Redis:")
                with Server(data, env, args=["--workers", str(workers)]) as server:
                    rows = capacity(server, args)
                result[f"workers_{workers}"] = {"rates": rows, "best_rate_within_p99_50ms": best_rate(rows)}
        if "capacity" in args.phases:  # the embedded default on the same catalogue and users, for reference
            for key in env:
                if key != "FRESHREC_SERVING__TORCH_THREADS":
                    os.environ.pop(key)
            with tempfile.TemporaryDirectory(prefix="freshrec-embedded-") as tmp:
                data = Path(tmp) / "data"
                build_store(data, args.items, args.users, args.events_per_user)
                print("1 worker, embedded (SQLite log, state in memory):")
                with Server(data, {"FRESHREC_SERVING__TORCH_THREADS": "1"}) as server:
                    rows = capacity(server, args)
                result["embedded"] = {"rates": rows, "best_rate_within_p99_50ms": best_rate(rows)}
    finally:
        broker.stop()
        redis_server.stop()
    if "capacity" in args.phases:
        one, two, embedded = (result[k]["best_rate_within_p99_50ms"] for k in ("workers_1", "workers_2", "embedded"))
        print(f"best rate within p99 50 ms: one worker {one:.0f}/s, two {two:.0f}/s; embedded {embedded:.0f}/s")
    write_json(args.out, {"benchmark": "scale_out", **result})


if __name__ == "__main__":
    main()
