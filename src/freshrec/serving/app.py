"""create_app(settings): the FastAPI service. The engine is built in the lifespan, never at import."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import freshrec
from freshrec.access.audit import AuditLog
from freshrec.access.keys import open_key_store
from freshrec.access.limits import RateLimiter
from freshrec.config import Settings
from freshrec.engine import Engine, build_engine
from freshrec.errors import FreshrecError, TooManyRequests, Unauthorized
from freshrec.schema import EventIn, ItemIn, format_validation_error
from freshrec.serving.prometheus import ServiceMetrics
from freshrec.serving.protocol import http_protocol
from freshrec.serving.routes import dashboard, events, health, items, models, quality, users
from freshrec.serving.security import Guard, KeyCache

log = logging.getLogger(__name__)


#: The environment variable that hands a `freshrec serve --workers N` worker its settings (JSON).
WORKER_SETTINGS_ENV = "FRESHREC_WORKER_SETTINGS"


class EventBatch(BaseModel):
    events: list[EventIn]


class ItemBatch(BaseModel):
    items: list[ItemIn]


def _follow_registry(app: FastAPI, stop: threading.Event, interval: float) -> None:
    """Swap in each new current version (published by the online trainer, a retrain or a rollback): at once
    when the deployment announces it (Redis), else at the next poll of the registry."""
    channel = app.state.engine.stores.model_channel
    next_poll = time.monotonic() + interval
    while not stop.is_set():
        # short waits, so shutting down never waits on a long poll interval
        wait = max(0.0, min(1.0, next_poll - time.monotonic()))
        if channel is not None:
            announced = channel.wait(wait) is not None
        else:
            stop.wait(wait)
            announced = False
        if stop.is_set():
            return
        if not announced and time.monotonic() < next_poll:
            continue
        next_poll = time.monotonic() + interval
        try:
            if app.state.engine.refresh_model():
                app.state.metrics.model_swaps.inc()
        except Exception:  # a bad version must not kill the watcher; the old one keeps serving
            log.exception("could not load the new current model version")


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The HTTP service. Pass ``engine`` to share one already built (the app then does not close it).

    Example
    -------
    >>> import tempfile
    >>> from fastapi.testclient import TestClient
    >>> from freshrec.config import load_settings
    >>> settings = load_settings(storage={"data_dir": tempfile.mkdtemp()}, security={"auth": True})
    >>> key, _ = open_key_store(settings.storage.state_url, settings.storage.data_dir).create("docs", ["ingest"])
    >>> with TestClient(create_app(settings)) as client:
    ...     event = {"user_id": "u", "item_id": "i", "type": "view"}
    ...     client.post("/v1/events", json=event).status_code
    ...     client.post("/v1/events", json=event, headers={"Authorization": f"Bearer {key}"}).json()
    401
    {'accepted': 1, 'duplicates': 0, 'offsets': [1]}
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        keys = None
        if settings.security.auth:
            keys = open_key_store(settings.storage.state_url, settings.storage.data_dir)
            app.state.keys = KeyCache(keys)
            if not keys.list():
                log.warning(
                    "no API keys exist: every request but /health gets 401; create one with `freshrec keys create`"
                )
        else:
            log.warning("security.auth is off: anyone who reaches this server may read and erase its data")
        app.state.engine = engine if engine is not None else build_engine(settings)
        stop = threading.Event()
        watcher = None
        if settings.serving.model_poll_s > 0:
            watcher = threading.Thread(
                target=_follow_registry,
                args=(app, stop, settings.serving.model_poll_s),
                name="freshrec-model-watcher",
                daemon=True,
            )
            watcher.start()
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(timeout=30)
            if owned:
                app.state.engine.close()
            if keys is not None:
                keys.close()

    docs = settings.security.docs
    app = FastAPI(
        title="freshrec",
        version=freshrec.__version__,
        summary="Real-time recommendations from each user's latest events.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    # times each item was in a served list, by this process since it started (the dashboard's item page)
    app.state.exposures = Counter()
    app.state.limiter = RateLimiter(settings.security.rate_limit, settings.security.rate_burst)
    app.state.audit = AuditLog(settings.storage.data_dir / "audit.log")
    for module in (events, users, items, models, quality, health, dashboard):
        app.include_router(module.router)

    @app.exception_handler(FreshrecError)
    async def freshrec_error(request: Request, exc: FreshrecError) -> JSONResponse:
        headers = {}
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        elif isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)}, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # one shape for every 422: {"detail": "<field>: <problem>; ..."}, as the hand-parsed bodies answer
        return JSONResponse(status_code=422, content={"detail": format_validation_error(exc)})

    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # the embedded deployment needs no Redis client
        pass
    else:

        @app.exception_handler(RedisConnectionError)
        @app.exception_handler(RedisTimeoutError)
        async def state_unavailable(request: Request, exc: Exception) -> JSONResponse:
            # an event appended before Redis went away is in the log and is folded in on the next request
            return JSONResponse(status_code=503, content={"detail": f"the live state store is unavailable: {exc}"})

    app.add_middleware(Guard, settings=settings, audit=app.state.audit.record)
    if settings.security.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.security.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(_TimingMiddleware, metrics=app.state.metrics)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            # Bodies of POST /v1/events and PUT /v1/items are parsed by hand (for exact error messages),
            # so their schemas are added to the components here.
            _, defs = models_json_schema(
                [(m, "validation") for m in (EventIn, EventBatch, ItemIn, ItemBatch)],
                ref_template="#/components/schemas/{model}",
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_environment() -> FastAPI:
    """The app of one ``freshrec serve --workers N`` worker: uvicorn imports this factory in each worker
    process, which reads the settings the parent resolved from :data:`WORKER_SETTINGS_ENV`."""
    settings = Settings.model_validate_json(os.environ[WORKER_SETTINGS_ENV])
    http_protocol(settings.security.read_timeout_s)  # the header deadline, in this worker process
    if settings.serving.torch_threads:
        import torch

        torch.set_num_threads(settings.serving.torch_threads)
    return create_app(settings)


class _TimingMiddleware:
    """Request latency per route into Prometheus. Plain ASGI: Starlette's BaseHTTPMiddleware costs a
    task and a stream per request, a measurable share of a millisecond-scale request."""

    def __init__(self, app, metrics: ServiceMetrics) -> None:  # type: ignore[no-untyped-def]
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_with_status(message) -> None:  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            self.metrics.requests.labels(getattr(route, "path", "unmatched"), str(status[0])).observe(
                time.perf_counter() - started
            )
