"""The HTTP protocol uvicorn runs, with a deadline for a request's headers.

uvicorn times out idle keep-alive connections, but not a client that sends its headers slowly: each half-sent
request would hold a file descriptor for ever. Here a connection whose request headers are not
complete :attr:`read_timeout_s` after it opened (or after its previous response) is closed; the body has the
same deadline in :class:`~freshrec.serving.security.Guard`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:  # uvicorn's faster parser, which it picks itself when installed
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class _HeaderDeadline:
    """Mixed into a uvicorn protocol: arm a timer when a request may begin, disarm it once its headers are in."""

    #: Seconds for a request's headers (set from ``security.read_timeout_s`` by the server).
    read_timeout_s: float = 30.0
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.read_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline


class DeadlineH11(_HeaderDeadline, H11Protocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        import h11

        if self.conn.their_state is not h11.IDLE:
            self._disarm()


if HttpToolsProtocol is not None:

    class DeadlineHttpTools(_HeaderDeadline, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()


def http_protocol(read_timeout_s: float) -> type:
    """The protocol class to hand uvicorn (``http=``), with its header deadline set in this process."""
    cls: type[_HeaderDeadline] = DeadlineHttpTools if HttpToolsProtocol is not None else DeadlineH11
    cls.read_timeout_s = read_timeout_s
    return cls
