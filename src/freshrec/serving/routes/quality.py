"""Data-quality route: what the online trainer's guard keeps out of training, and the drift monitors."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from freshrec.errors import NotFound
from freshrec.quality.report import QUALITY_REPORT, read_report
from freshrec.schema import QualityReport
from freshrec.serving.deps import EngineDep, errors
from freshrec.serving.security import require

router = APIRouter(prefix="/v1/quality", tags=["quality"])


@router.get(
    "",
    response_model=QualityReport,
    summary="The data-quality guard's report",
    description="Counts of events admitted to and kept out of online training, flagged users with the reason "
    "and since when, the event-type mix, and the drift of the type mix, of item popularity and of the model's "
    "NDCG@10 on fresh events. Written by the online trainer after each micro-batch; 404 until it has written one.",
    dependencies=[require("read")],
    responses=errors(404, 422),
)
def quality(
    engine: EngineDep,
    limit: Annotated[int, Query(ge=0, le=1000, description="Most flagged users listed (newest first).")] = 100,
    reason: Annotated[
        Literal["burst", "long_session", "item_repeats", "flood"] | None,
        Query(description="List only users flagged for this reason."),
    ] = None,
) -> QualityReport:
    report = read_report(engine.settings.storage.data_dir / QUALITY_REPORT)
    if report is None:
        raise NotFound("no data-quality report yet: the online trainer writes one after its first micro-batch")
    users = [u for u in report.get("flagged_users", []) if reason is None or u.get("reason") == reason]
    return QualityReport.model_validate({**report, "flagged_users": users[:limit]})
