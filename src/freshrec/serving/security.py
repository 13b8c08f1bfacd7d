"""Access control for the HTTP service: API keys and scopes, rate limits, the audit trail, and the guard every
request passes before a route sees it (allowed hosts, JSON-only bodies, body size and read time).

Routes declare what they need with ``dependencies=[require("read")]``; ``require("admin")`` also writes the
action to the audit log. With ``security.auth`` off (``freshrec serve --insecure``) every route is open and
nothing is rate limited.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import Depends, HTTPException, Request

from freshrec.access.keys import KeyInfo
from freshrec.errors import Forbidden, TooManyRequests, Unauthorized

#: Seconds a verified key is trusted without asking the key store again (a revocation takes this long).
KEY_CACHE_S = 2.0
#: Host names a keyless server answers to.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]", "testserver")
_BODY_METHODS = {b"POST", b"PUT", b"PATCH", b"DELETE"}


class KeyCache:
    """Verified keys for :data:`KEY_CACHE_S`: one key-store lookup per key and interval, not per request."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._cache: dict[str, tuple[KeyInfo | None, float]] = {}

    def verify(self, key: str) -> KeyInfo | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        info = self.store.verify(key)
        if len(self._cache) > 10_000:  # a flood of made-up keys must not grow this without bound
            self._cache.clear()
        self._cache[key] = (info, now + KEY_CACHE_S)
        return info


def check_scope(request: Request, scope: str) -> KeyInfo | None:
    """The caller's key, which must carry ``scope`` (``admin`` carries every scope) and be within its rate
    limit; ``admin`` requests are marked for the audit log. ``None`` with ``security.auth`` off."""
    app = request.app
    security = app.state.settings.security
    if scope == "admin":
        request.state.audit = f"{request.method} {request.url.path}"
    if not security.auth:
        return None
    header = request.headers.get("authorization", "")
    kind, _, key = header.partition(" ")
    if kind.lower() != "bearer" or not key.strip():
        raise Unauthorized("this API needs a key: send 'Authorization: Bearer <key>' (freshrec keys create)")
    info = app.state.keys.verify(key.strip())
    if info is None:
        raise Unauthorized("unknown or revoked API key")
    request.state.key = info
    if not info.allows(scope):
        has = ", ".join(info.scopes)
        raise Forbidden(f"key {info.key_id} ({info.name}) lacks the {scope!r} scope; it has {has}")
    wait = app.state.limiter.take(info.key_id, info.rate_limit)
    if wait > 0:
        raise TooManyRequests(f"key {info.key_id} exceeded its rate limit; retry in {wait:.2f} s", wait)
    return info


def require(scope: str) -> Any:
    """A route dependency running :func:`check_scope`: ``dependencies=[require("read")]``."""

    def check(request: Request) -> KeyInfo | None:
        return check_scope(request, scope)

    return Depends(check)


def _reply(status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> list[dict]:
    body = json.dumps({"detail": detail}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": head + (headers or [])},
        {"type": "http.response.body", "body": body},
    ]


class Guard:
    """Plain ASGI middleware in front of every route: the Host header, JSON-only bodies (no form or plain-text
    posts a web page could send from a visitor's browser), the body's size (counted as it streams in, chunked
    bodies too) and the time it takes to arrive; then the audit line of an admin route, fsynced before its
    response starts."""

    def __init__(self, app: Any, settings: Any, audit: Callable[..., None]) -> None:
        self.app = app
        self.max_bytes = settings.events.max_body_bytes
        self.timeout = settings.security.read_timeout_s
        hosts = settings.security.allowed_hosts or (["*"] if settings.security.auth else list(LOCAL_HOSTS))
        self.hosts = None if "*" in hosts else {h.lower() for h in hosts}
        self.audit = audit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            for message in _reply(*refusal):
                await send(message)
            return
        received = 0

        async def bounded_receive() -> dict:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                raise _BodyProblem(408, f"the request body did not arrive within {self.timeout:g} s") from None
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyProblem(413, f"request body exceeds {self.max_bytes} bytes (events.max_body_bytes)")
            return message

        started = False

        async def audited_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                action = scope.get("state", {}).get("audit")
                if action is not None:
                    key = scope.get("state", {}).get("key")
                    self.audit(key.key_id if key else None, key.name if key else None, action, message["status"])
            await send(message)

        try:
            await self.app(scope, bounded_receive, audited_send)
        except _BodyProblem as problem:
            if started:
                raise
            for message in _reply(problem.status, str(problem)):
                await send(message)

    def _refusal(self, scope: dict, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if self.hosts is not None:
            host = headers.get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.hosts:
                return 400, f"host {host!r} is not allowed (security.allowed_hosts)"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return 413, f"request body of {int(declared)} bytes exceeds {self.max_bytes} (events.max_body_bytes)"
        has_body = (declared is not None and declared != b"0") or b"transfer-encoding" in headers
        if scope["method"].encode() in _BODY_METHODS and has_body:
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if kind != b"application/json" and not kind.endswith(b"+json"):
                shown = kind.decode("latin-1") or "none"
                return 415, f"request bodies must be JSON (Content-Type: application/json), not {shown}"
        return None


class _BodyProblem(HTTPException):
    """Raised from ``receive`` while a route reads the body; an HTTPException, so FastAPI's body parsing passes
    it on instead of turning it into a 400."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status

    def __str__(self) -> str:
        return str(self.detail)
