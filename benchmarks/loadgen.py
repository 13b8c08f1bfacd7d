"""Open-loop HTTP load: requests are sent on a fixed schedule whatever the server's speed.

Latency is measured from each request's *scheduled* send time, so a server that falls behind shows its
queueing in the figures instead of silently slowing the client down (coordinated omission). The driver is
httpx on asyncio in one process; at the highest rates on 2 shared cores the client's own CPU use is part
of what is measured, which the reports say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import numpy as np

Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@dataclass
class LoadResult:
    rate: float
    duration: float
    sent: int
    ok: int
    errors: int
    achieved_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def row(self) -> str:
        return (
            f"{self.rate:>7.0f} {self.achieved_rps:>9.1f} {self.p50_ms:>8.2f} {self.p95_ms:>8.2f} "
            f"{self.p99_ms:>8.2f} {self.max_ms:>8.1f} {self.errors:>6d}"
        )


HEADER = f"{'rate':>7} {'achieved':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}"


async def _run(base_url: str, request: Request, rate: float, duration: float, connections: int) -> LoadResult:
    loop = asyncio.get_running_loop()
    n = max(1, int(rate * duration))
    latencies = np.full(n, np.nan)
    done_at = np.full(n, np.nan)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as client:
        # warm the connection pool so connection set-up is not measured as latency
        await asyncio.gather(*(client.get("/health") for _ in range(min(connections, 32))))
        start = loop.time() + 0.2

        async def one(i: int) -> None:
            scheduled = start + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                response = await request(client, i)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            now = loop.time()
            if ok:
                latencies[i] = now - scheduled
                done_at[i] = now

        await asyncio.gather(*(one(i) for i in range(n)))
    ok_mask = ~np.isnan(latencies)
    ms = latencies[ok_mask] * 1000
    span = (np.nanmax(done_at) - start) if ok_mask.any() else float("nan")
    pct = (lambda q: float(np.percentile(ms, q))) if len(ms) else (lambda q: float("nan"))
    return LoadResult(
        rate,
        duration,
        n,
        int(ok_mask.sum()),
        int(n - ok_mask.sum()),
        float(ok_mask.sum() / span) if span == span and span > 0 else 0.0,
        pct(50),
        pct(95),
        pct(99),
        float(ms.max()) if len(ms) else float("nan"),
    )


def open_loop(base_url: str, request: Request, rate: float, duration: float, connections: int = 256) -> LoadResult:
    """Send ``rate`` requests/s for ``duration`` seconds; see the module docstring."""
    return asyncio.run(_run(base_url, request, rate, duration, connections))
