"""Model routes: what is serving, and switching versions without a restart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from freshrec.schema import ModelInfo
from freshrec.serving.deps import EngineDep, errors
from freshrec.serving.security import require

router = APIRouter(prefix="/v1/model", tags=["model"])


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
