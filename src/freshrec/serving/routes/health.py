"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from freshrec.online.process import TRAINER_STATUS, read_status
from freshrec.position import total
from freshrec.quality.report import QUALITY_REPORT, read_report
from freshrec.schema import Health
from freshrec.serving.deps import EngineDep, errors
from freshrec.serving.prometheus import ServiceMetrics
from freshrec.serving.security import check_scope

router = APIRouter(tags=["health"])


def require_read(request: Request) -> None:
    check_scope(request, "read")


@router.get("/health", response_model=Health, summary="Liveness and a few counts", responses=errors(keyed=False))
def health(engine: EngineDep) -> Health:
    health = engine.health()
    health.trainer = read_status(engine.settings.storage.data_dir / TRAINER_STATUS)
    return health


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Needs the read scope unless `security.public_metrics` is on.",
    response_class=Response,
    responses=errors(),
)
def metrics(request: Request, engine: EngineDep) -> Response:
    if not request.app.state.settings.security.public_metrics:
        require_read(request)
    m = request.app.state.metrics
    m.users.set(len(engine.state))
    trainer = read_status(engine.settings.storage.data_dir / TRAINER_STATUS)
    if trainer is not None:
        m.trainer_running.set(1.0 if trainer["state"] == "running" else 0.0)
        m.trainer_restarts.set(trainer["restarts"])
    m.last_offset.set(total(engine.state.applied(engine.event_log.partitions)))
    quality = read_report(engine.settings.storage.data_dir / QUALITY_REPORT)
    if quality is not None and quality.get("enabled"):
        _set_quality(m, quality)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


def _set_quality(m: ServiceMetrics, report: dict) -> None:
    for decision, n in report.get("events", {}).items():
        if decision != "seen":
            m.quality_events.labels(decision).set(n)
    for reason, n in report.get("flagged_by_reason", {}).items():
        m.quality_flagged.labels(reason).set(n)
    drift = {
        "type_mix": report.get("type_mix", {}).get("divergence"),
        "item_popularity": report.get("item_popularity", {}).get("divergence"),
        "model": report.get("model", {}).get("change"),
    }
    for signal, value in drift.items():
        if value is not None:
            m.quality_drift.labels(signal).set(value)
    for flag, on in report.get("flags", {}).items():
        m.quality_drifting.labels(flag.removesuffix("_drift")).set(1.0 if on else 0.0)
