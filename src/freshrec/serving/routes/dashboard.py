"""The operator's dashboard: a static page shipped in the package, and the summary its overview polls.

The page holds no data, so it is served without a key; it asks the operator for an admin key and calls the
JSON API with it, like any other client (the Guard, scopes, limits and audit log apply unchanged).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from freshrec.engine import Engine
from freshrec.errors import NotFound
from freshrec.online.process import TRAINER_STATUS, read_status
from freshrec.position import as_cursor, behind, total
from freshrec.quality.report import QUALITY_REPORT, read_report
from freshrec.schema import ItemOut
from freshrec.serving.deps import EngineDep, errors
from freshrec.serving.security import require

#: The page's files (HTML, JS, CSS), package data of freshrec.serving.
ASSETS = Path(__file__).resolve().parents[1] / "dashboard"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
#: What the Reports page shows, by file suffix.
_REPORT_TYPES = {".json": "application/json", ".md": "text/markdown; charset=utf-8", ".png": "image/png"}
# Scripts and styles from this server only: no inline script runs even if data shown on a page held markup.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
#: Routes left out of the overview's request figures (the dashboard's own polling would dominate them).
_OWN_ROUTES = ("/dashboard", "/v1/dashboard")

router = APIRouter(tags=["dashboard"])


@router.get(
    "/dashboard",
    summary="The operator's dashboard (HTML)",
    description="A single page that asks for an admin key and shows the service through the JSON API.",
    response_class=FileResponse,
    responses=errors(keyed=False),
)
def dashboard_page() -> FileResponse:
    return FileResponse(ASSETS / "index.html", media_type=_TYPES[".html"], headers=_HEADERS)


@router.get(
    "/dashboard/assets/{name}",
    summary="The dashboard's script and style sheet",
    response_class=FileResponse,
    responses=errors(404, keyed=False),
)
def dashboard_asset(name: str) -> FileResponse:
    # only the files shipped next to the page, never a path built from the request
    shipped = {p.name: p for p in ASSETS.iterdir() if p.suffix in (".js", ".css")}
    if name not in shipped:
        raise NotFound(f"no dashboard asset {name!r}")
    return FileResponse(shipped[name], media_type=_TYPES[shipped[name].suffix], headers=_HEADERS)


class LatencyBucket(BaseModel):
    le: float = Field(description="Upper bound in seconds.")
    count: int = Field(description="Requests at most this slow, since the process started (cumulative).")


class Summary(BaseModel):
    """Cumulative counters and current figures; the page derives rates and windowed quantiles from the
    differences between two polls."""

    time: float = Field(description="Server time (Unix seconds) the figures were read at.")
    events: int = Field(description="Events acknowledged by this API process since it started.")
    requests: int = Field(
        description="Requests answered by this API process, those to the dashboard's page and /v1/dashboard/* left out."
    )
    latency: list[LatencyBucket] = Field(
        description="Latency histogram of those requests (finite bounds; `requests` is the total)."
    )
    last_offset: int = Field(description="Events folded into live state, as log positions.")
    users: int
    items: int
    model_version: str | None
    model_created_at: str | None = Field(description="When the serving version was published (ISO 8601).")
    trained_through: int | None = Field(description="Log positions the serving version was trained on.")
    trainer_lag: int | None = Field(description="Events folded into live state but not yet into the model.")
    trainer: dict[str, Any] | None = Field(description="The supervised online trainer's state; null without one.")
    guard: dict[str, Any] | None = Field(
        description="The data-quality guard's flags and counts; null until the online trainer wrote a report."
    )


@router.get(
    "/v1/dashboard/summary",
    response_model=Summary,
    summary="Live figures for the dashboard's overview",
    dependencies=[require("read")],
    responses=errors(),
)
def dashboard_summary(request: Request, engine: EngineDep) -> Summary:
    events = requests = 0
    buckets: dict[float, int] = {}
    for family in request.app.state.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "freshrec_events_total":
                events += int(sample.value)
            elif sample.name == "freshrec_request_seconds_bucket" and not sample.labels["route"].startswith(
                _OWN_ROUTES
            ):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0) + int(sample.value)
    requests = buckets.get(float("inf"), 0)
    applied = engine.state.applied(engine.event_log.partitions)
    health = engine.health()
    serving = engine.recommender.serving
    meta = serving.meta if serving is not None else {}
    trained_to = (meta.get("offsets") or {}).get("to") or meta.get("data", {}).get("max_offset")
    trained = as_cursor(trained_to, len(applied)) if trained_to is not None else None
    report = read_report(engine.settings.storage.data_dir / QUALITY_REPORT)
    guard = None
    if report is not None:
        guard = {k: report.get(k) for k in ("enabled", "flags", "events", "flagged_by_reason")}
    return Summary(
        time=time.time(),
        events=events,
        requests=requests,
        latency=[LatencyBucket(le=le, count=n) for le, n in sorted(buckets.items()) if le != float("inf")],
        last_offset=total(applied),
        users=health.users,
        items=health.items,
        model_version=serving.version if serving is not None else None,
        model_created_at=meta.get("created_at"),
        trained_through=total(trained) if trained is not None else None,
        trainer_lag=behind(trained, applied) if trained is not None else None,
        trainer=read_status(engine.settings.storage.data_dir / TRAINER_STATUS),
        guard=guard,
    )


class ItemInspection(BaseModel):
    item: ItemOut
    model_version: str | None = Field(description="The serving version the row figures refer to.")
    row: Literal["learned", "content", "none"] = Field(
        description="What the serving version scores the item with: a row it learned from events, a row mapped "
        "from the item's content (cold start), or none (the model cannot recommend it)."
    )
    interactions: int = Field(description="Positive events on the item, all time (what trending counts).")
    exposures: int = Field(description="Times the item was in a list this API process served since it started.")


@router.get(
    "/v1/dashboard/items/{item_id}",
    response_model=ItemInspection,
    summary="One item as the dashboard's item inspector shows it",
    dependencies=[require("read")],
    responses=errors(404, 503),
)
def inspect_item(item_id: str, request: Request, engine: EngineDep) -> ItemInspection:
    item = engine.get_item(item_id)  # 404 for an unknown item
    idx = engine.catalog.internal_id(item_id, create=False)
    if idx is None:  # erased between the two reads
        raise NotFound(f"unknown item {item_id!r}")
    serving = engine.recommender.serving
    row: Literal["learned", "content", "none"] = "none"
    if serving is not None:
        at = np.array([idx], dtype=np.int64)
        if serving.learned(at)[0]:
            row = "learned"
        elif not np.isnan(serving.vectors_of(at)[0].numpy()).any():
            row = "content"
    counts = engine.trending.counts(len(engine.catalog))
    return ItemInspection(
        item=item,
        model_version=serving.version if serving is not None else None,
        row=row,
        interactions=int(counts[idx]) if idx < len(counts) else 0,
        exposures=request.app.state.exposures[item_id],
    )


class Report(BaseModel):
    folder: int = Field(description="Index of the folder in serving.reports_dirs.")
    name: str
    bytes: int
    modified: float = Field(description="Unix seconds.")


def _reports(engine: Engine) -> dict[tuple[int, str], Path]:
    """Every report file directly inside the configured folders: files are named, never addressed by path."""
    found = {}
    for n, folder in enumerate(engine.settings.serving.reports_dirs):
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file() and path.suffix in _REPORT_TYPES:
                    found[(n, path.name)] = path
    return found


@router.get(
    "/v1/dashboard/reports",
    response_model=list[Report],
    summary="Reports the dashboard can show, newest first",
    description="JSON, Markdown and PNG files directly inside the folders of serving.reports_dirs.",
    dependencies=[require("read")],
    responses=errors(),
)
def list_reports(engine: EngineDep) -> list[Report]:
    out = []
    for (n, name), path in _reports(engine).items():
        stat = path.stat()
        out.append(Report(folder=n, name=name, bytes=stat.st_size, modified=stat.st_mtime))
    return sorted(out, key=lambda r: (-r.modified, r.folder, r.name))


@router.get(
    "/v1/dashboard/reports/{folder}/{name}",
    summary="One report's file",
    response_class=FileResponse,
    dependencies=[require("read")],
    responses=errors(404, 422),
)
def get_report(folder: int, name: str, engine: EngineDep) -> FileResponse:
    path = _reports(engine).get((folder, name))
    if path is None:
        raise NotFound(f"no report {name!r} in report folder {folder}")
    return FileResponse(path, media_type=_REPORT_TYPES[path.suffix], headers={"X-Content-Type-Options": "nosniff"})
