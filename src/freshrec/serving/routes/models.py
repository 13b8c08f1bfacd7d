"""Model routes: what is serving, and switching versions without a restart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from freshrec.engine import Engine
from freshrec.errors import Conflict, NotFound
from freshrec.model.registry import ModelNotFoundError
from freshrec.schema import ModelInfo
from freshrec.serving.deps import EngineDep, errors
from freshrec.serving.security import require

router = APIRouter(prefix="/v1/model", tags=["model"])


class RollbackRequest(BaseModel):
    to: str | None = Field(None, description="Version to return to; default the current one's parent.")


class PinRequest(BaseModel):
    version: str | None = Field(None, description="Version to pin; default the registry's current one.")


class RegistryState(BaseModel):
    current: str | None = Field(description="The registry's current version.")
    pinned: str | None = Field(description="The pinned version; null when the online trainer may publish.")
    serving: str | None = Field(description="The version this API process serves.")


class ReloadRequest(BaseModel):
    version: str | None = Field(None, description="Version to load; default the registry's current one.")


@router.get(
    "",
    response_model=ModelInfo,
    summary="The serving model version and its metrics",
    dependencies=[require("read")],
    responses=errors(503),
)
def model_info(engine: EngineDep) -> ModelInfo:
    return engine.model_info()


@router.get(
    "/history",
    summary="Version lineage and quality-gate decisions",
    description="Every published version (parent, kind, offsets trained on, metrics, time) and the online "
    "trainer's gate decisions with the figures that decided them.",
    dependencies=[require("read")],
    responses=errors(503),
)
def model_history(engine: EngineDep) -> dict[str, Any]:
    return engine.model_history()


@router.post(
    "/reload",
    response_model=ModelInfo,
    summary="Switch model version",
    description="Loads a version (default: the registry's current one) and swaps it in atomically; requests "
    "in flight finish on the old version, new ones use the new one. Naming a version also makes it the "
    "registry's current version, so the online trainer and other API processes follow. Admin scope; "
    "audit-logged.",
    dependencies=[require("admin")],
    responses=errors(404, 408, 413, 415, 422, 503),
)
async def reload_model(request: Request, engine: EngineDep, body: ReloadRequest | None = Body(None)) -> ModelInfo:
    version = body.version if body else None
    await run_in_threadpool(engine.load_model, version, version is not None)
    request.app.state.metrics.model_swaps.inc()
    return engine.model_info()


def _registry_state(engine: Engine) -> RegistryState:
    serving = engine.recommender.serving
    return RegistryState(
        current=engine.registry.current(),
        pinned=engine.registry.pinned(),
        serving=serving.version if serving is not None else None,
    )


async def _switch(request: Request, engine: Engine, change: Callable[[], Any]) -> RegistryState:
    """Run a registry change off the event loop, then serve its current version here at once (other processes
    follow it within serving.model_poll_s), counting the swap when the served version changed."""
    before = engine.recommender.serving
    state = await run_in_threadpool(_apply, engine, change)
    if before is None or before.version != state.serving:
        request.app.state.metrics.model_swaps.inc()
    return state


def _apply(engine: Engine, change: Callable[[], Any]) -> RegistryState:
    try:
        change()
    except ModelNotFoundError as exc:
        raise NotFound(str(exc)) from exc
    except ValueError as exc:  # the registry refuses to move a pinned pointer
        raise Conflict(str(exc)) from exc
    engine.refresh_model()
    return _registry_state(engine)


@router.post(
    "/rollback",
    response_model=RegistryState,
    summary="Roll back to an earlier version",
    description="Makes `to` (default: the current version's parent, else the version before it) the registry's "
    "current version and serves it; 409 while another version is pinned. Admin scope; audit-logged.",
    dependencies=[require("admin")],
    responses=errors(404, 408, 409, 413, 415, 422, 503),
)
async def rollback_model(
    request: Request, engine: EngineDep, body: RollbackRequest | None = Body(None)
) -> RegistryState:
    return await _switch(request, engine, lambda: engine.registry.rollback(body.to if body else None))


@router.post(
    "/pin",
    response_model=RegistryState,
    summary="Pin a version",
    description="Makes `version` (default: the current one) current and keeps it there: the online trainer "
    "publishes no new current version until unpinned. Admin scope; audit-logged.",
    dependencies=[require("admin")],
    responses=errors(404, 408, 413, 415, 422, 503),
)
async def pin_model(request: Request, engine: EngineDep, body: PinRequest | None = Body(None)) -> RegistryState:
    return await _switch(request, engine, lambda: engine.registry.pin(body.version if body else None))


@router.post(
    "/unpin",
    response_model=RegistryState,
    summary="Unpin",
    description="Lets the online trainer publish new current versions again. Admin scope; audit-logged.",
    dependencies=[require("admin")],
    responses=errors(408, 413, 415, 422),
)
def unpin_model(engine: EngineDep) -> RegistryState:
    engine.registry.unpin()
    return _registry_state(engine)
