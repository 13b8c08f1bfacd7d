"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from freshrec.position import total
from freshrec.schema import Health
from freshrec.serving.deps import EngineDep

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness and a few counts")
def health(engine: EngineDep) -> Health:
    return engine.health()


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, engine: EngineDep) -> Response:
    m = request.app.state.metrics
    m.users.set(len(engine.state))
    m.last_offset.set(total(engine.state.applied(engine.event_log.partitions)))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
