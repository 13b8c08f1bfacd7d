"""Open-loop HTTP load: requests are sent on a fixed schedule whatever the server's speed.

Latency is measured from each request's *scheduled* send time, so a server that falls behind shows its
queueing in the figures instead of silently slowing the client down (coordinated omission). The driver is
aiohttp on asyncio in one process, with a pool of keep-alive connections; it costs a fraction of httpx's
CPU per request, which matters because on 2 shared cores the client's own CPU use is part of what is
measured (the reports say so).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import numpy as np


@dataclass
class Response:
    status_code: int
    body: bytes


class Client:
    """The two calls the benchmarks make, over one aiohttp session (keep-alive pool)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session, self.base_url = session, base_url

    async def get(self, path: str, params: dict | None = None) -> Response:
        async with self.session.get(self.base_url + path, params=params) as r:
            return Response(r.status, await r.read())

    async def post(self, path: str, json: object = None) -> Response:
        async with self.session.post(self.base_url + path, json=json) as r:
            return Response(r.status, await r.read())


Request = Callable[[Client, int], Awaitable[Response]]


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


async def _run(
    base_url: str, request: Request, rate: float, duration: float, connections: int, keep: list[float] | None
) -> LoadResult:
    n = max(1, int(rate * duration))
    latencies = np.full(n, np.nan)
    done_at = np.full(n, np.nan)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=60.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = Client(session, base_url)
        # warm the connection pool so connection set-up is not measured as latency
        await asyncio.gather(*(client.get("/health") for _ in range(min(connections, 32))))
        start = time.perf_counter() + 0.2  # not loop.time(): uvloop's clock ticks in whole milliseconds

        async def one(i: int) -> None:
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                response = await request(client, i)
                ok = response.status_code == 200
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            now = time.perf_counter()
            if ok:
                latencies[i] = now - scheduled
                done_at[i] = now

        await asyncio.gather(*(one(i) for i in range(n)))
    ok_mask = ~np.isnan(latencies)
    ms = latencies[ok_mask] * 1000
    if keep is not None:
        keep.extend(ms.tolist())
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


def open_loop(
    base_url: str,
    request: Request,
    rate: float,
    duration: float,
    connections: int = 256,
    keep: list[float] | None = None,
) -> LoadResult:
    """Send ``rate`` requests/s for ``duration`` seconds; see the module docstring. ``keep``, when given,
    receives every successful request's latency in ms (to pool several runs)."""
    coro = _run(base_url, request, rate, duration, connections, keep)
    try:
        import uvloop  # the server's event loop too (uvicorn[standard]); cheaper per request
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
