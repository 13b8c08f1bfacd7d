"""Ingestion: durable, acknowledged events/s at batch sizes 1, 100, 1000, and single-POST latency.

    python benchmarks/ingest.py                   # batch sizes 1,100,1000; 20 s each
    python benchmarks/ingest.py --quick

Events go over loopback HTTP to `freshrec serve` (SQLite, synchronous=FULL: fsync before every 2xx).
Throughput uses closed-loop clients (each sends its next batch when the previous one is acknowledged,
`--clients` of them), which is what a producer does; single-POST latency is measured open-loop at a fixed
rate (`--rate`), from each request's scheduled time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from loadgen import LoadResult, open_loop
from machine import ROOT, write_json
from stores import Server


async def closed_loop(
    url: str, batch: int, clients: int, duration: float, server_log=lambda: "", tag: str = ""
) -> dict:
    """Closed-loop clients posting batches of distinct events for ``duration`` seconds; ``tag`` keeps the ids
    of loops run side by side (one per worker) apart, so no worker receives another's events as duplicates."""
    acked = 0
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def client(c: int) -> None:
        nonlocal acked
        n = 0
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while time.perf_counter() < stop:
                body = [
                    {
                        "user_id": f"u{tag}{c}-{n % 500}",
                        "item_id": f"i{(n * 7 + j) % 5000}",
                        "type": "view",
                        "event_id": f"{tag}c{c}-b{n}-{j}",
                    }
                    for j in range(batch)
                ]
                t0 = time.perf_counter()
                r = await http.post("/v1/events", json=body)
                latencies.append(time.perf_counter() - t0)
                if r.is_error:
                    raise RuntimeError(f"POST /v1/events -> {r.status_code}: {r.text[:300]}\n{server_log()}")
                acked += r.json()["accepted"]
                n += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    seconds = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "batch": batch,
        "clients": clients,
        "events": acked,
        "seconds": seconds,
        "events_per_second": acked / seconds,
        "request_p50_ms": float(np.percentile(ms, 50)),
        "request_p99_ms": float(np.percentile(ms, 99)),
    }


def single_posts(url: str, rate: float, duration: float) -> LoadResult:
    """One event per POST, open loop at ``rate`` per second."""
    return open_loop(
        url,
        lambda c, i: c.post("/v1/events", json={"user_id": f"s{i % 300}", "item_id": f"i{i % 4000}", "type": "click"}),
        rate,
        duration,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,100,1000")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="Open-loop rate for single-POST latency.")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest.json")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.duration, args.rate = "1,10", 1.0, 20.0
    rows = []
    with tempfile.TemporaryDirectory(prefix="freshrec-ingest-") as tmp, Server(Path(tmp)) as server:
        print(f"{'batch':>6} {'clients':>7} {'events/s':>10} {'req p50 ms':>11} {'req p99 ms':>11}")
        for batch in (int(b) for b in args.batches.split(",")):
            row = asyncio.run(closed_loop(server.url, batch, args.clients, args.duration, server.log))
            rows.append(row)
            print(
                f"{batch:>6} {args.clients:>7} {row['events_per_second']:>10.0f} {row['request_p50_ms']:>11.2f} "
                f"{row['request_p99_ms']:>11.2f}"
            )
        single = single_posts(server.url, args.rate, args.duration)
        print(
            f"single POST, open loop at {args.rate:.0f}/s: p50 {single.p50_ms:.2f} ms, p99 {single.p99_ms:.2f} ms, "
            f"errors {single.errors}"
        )
    write_json(
        args.out,
        {
            "benchmark": "ingest",
            "durability": "sqlite WAL, synchronous=FULL",
            "closed_loop": rows,
            "single_post_open_loop": single.__dict__,
        },
    )


if __name__ == "__main__":
    main()
