"""Start-up: an engine that rebuilds live state from the event log (memory://) against one that reads the
state a shared Redis already holds (redis://), on the same log.

    python benchmarks/startup.py                     # 20,000 users x 50 events (1M events)
    python benchmarks/startup.py --users 100000      # 5M events
    python benchmarks/startup.py --quick

A ``redis-server`` (Debian package) is started on a free loopback port for the run. The log and Redis are
filled by one engine (events round-robin over the users, 1,000 per append, as a stream interleaves them);
then each start is timed as ``build_engine`` without a model (the state rebuild or lookup is what differs),
followed by reading 1,000 users' state.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from freshrec.config import load_settings
from freshrec.engine import build_engine
from freshrec.schema import EventRecord
from machine import ROOT, write_json

sys.path.insert(0, str(ROOT))
from tests.servers import RedisServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--events-per-user", type=int, default=50)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup.json")
    args = parser.parse_args()
    if args.quick:
        args.users, args.events_per_user, args.items = 200, 5, 100
    with tempfile.TemporaryDirectory(prefix="freshrec-startup-") as tmp:
        redis_server = RedisServer(aof=False)
        try:
            result = run(Path(tmp), redis_server.url, args)
        finally:
            redis_server.stop()
    print(
        f"{result['events']:,} events: start with memory:// (rebuild) {result['memory_start_s']:.2f} s, "
        f"with redis:// {result['redis_start_s']:.2f} s; state read p50 {result['memory_get_ms_p50']:.3f} ms / "
        f"{result['redis_get_ms_p50']:.3f} ms; filling Redis {result['redis_fill_events_per_s']:,.0f} events/s"
    )
    write_json(args.out, {"benchmark": "startup", **result})


def run(work: Path, redis_url: str, args: argparse.Namespace) -> dict:
    data = work / "data"
    storage = {"data_dir": data, "sqlite_synchronous": "NORMAL"}
    total = args.users * args.events_per_user
    engine = build_engine(load_settings(storage={**storage, "state_url": redis_url}), load_model=False)
    try:
        t0 = time.perf_counter()
        batch: list[EventRecord] = []
        for n in range(total):
            user, step = n % args.users, n // args.users
            item = (user * 7 + step * 13) % args.items
            batch.append(EventRecord(0, f"user-{user:07d}", f"item-{item:06d}", "view", 1_700_000_000.0 + n))
            if len(batch) == 1000:
                engine.append_records(batch)
                batch = []
        if batch:
            engine.append_records(batch)
        fill = time.perf_counter() - t0
    finally:
        engine.close()
    users = [f"user-{u:07d}" for u in range(0, args.users, max(1, args.users // 1000))]
    out: dict = {"events": total, "users": args.users, "items": args.items, "fill_seconds": fill}
    out["redis_fill_events_per_s"] = total / fill
    for name, url in (("memory", "memory://"), ("redis", redis_url)):
        t0 = time.perf_counter()
        engine = build_engine(load_settings(storage={**storage, "state_url": url}), load_model=False)
        out[f"{name}_start_s"] = time.perf_counter() - t0
        try:
            times = []
            for user in users:
                t1 = time.perf_counter()
                snap = engine.state.get(user)
                times.append((time.perf_counter() - t1) * 1000)
                assert snap is not None and len(snap.items) == min(args.events_per_user, 200)
            out[f"{name}_get_ms_p50"] = statistics.median(times)
            out[f"{name}_applied_offset"] = engine.state.applied()[0]
        finally:
            engine.close()
    return out


if __name__ == "__main__":
    main()
