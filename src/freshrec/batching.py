"""Micro-batching: concurrent requests share one model forward pass and one catalogue scan.

Requests queue up; one worker thread takes whatever is waiting (up to ``max_batch``) and runs the batch
function once. It never waits for a batch to fill: under light load each request runs alone with no
added delay, under heavy load requests batch themselves. The model and the index are touched by this
thread only, so their intra-op thread pools are not fought over by request threads.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)
_STOP = object()


class MicroBatcher(Generic[T, R]):
    """Run ``fn(list_of_requests) -> list_of_results`` over whatever requests are waiting.

    Example
    -------
    >>> batcher = MicroBatcher(lambda xs: [x * 2 for x in xs])
    >>> batcher.submit(21)
    42
    >>> batcher.close()
    """

    def __init__(self, fn: Callable[[list[T]], list[R]], max_batch: int = 64, name: str = "freshrec-batcher") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        #: sizes of the batches run so far (for tests and metrics); bounded
        self.batch_sizes: list[int] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit_future(self, item: T) -> Future[R]:
        if self._closed:
            raise RuntimeError("batcher is closed")
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future

    def submit(self, item: T) -> R:
        """Block until the item's batch has run; returns its result or raises its error."""
        return self.submit_future(item).result()

    async def submit_async(self, item: T) -> R:
        """Await the item's result without blocking the event loop."""
        return await asyncio.wrap_future(self.submit_future(item))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if live:
                try:
                    results = self.fn([item for item, _ in live])
                except Exception as exc:  # the error belongs to the callers, not to the worker
                    for _, fut in live:
                        fut.set_exception(exc)
                else:
                    for (_, fut), result in zip(live, results, strict=True):
                        fut.set_result(result)
                if len(self.batch_sizes) < 100_000:
                    self.batch_sizes.append(len(live))
            if stop:
                return

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
