"""POST /v1/events: one event or a batch, stored durably before the response."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter

from freshrec.schema import EventAck, EventIn
from freshrec.serving.deps import EngineDep, batch_body, errors, parse_batch, read_json
from freshrec.serving.security import require

router = APIRouter(prefix="/v1", tags=["events"])
_EVENTS = TypeAdapter(list[EventIn])


@router.post(
    "/events",
    response_model=EventAck,
    summary="Ingest events",
    description=(
        'Body: one event object, an array of events, or `{"events": [...]}` (at most `events.max_batch`). '
        "The response is sent only after every event is durable and folded into its user's state, so the "
        "next recommendation request reflects it. An `event_id` already stored is acknowledged as a "
        "duplicate and not stored again. Invalid input gets 422 (413 for oversized batches) and stores nothing."
    ),
    openapi_extra=batch_body("EventIn", "EventBatch"),
    dependencies=[require("ingest")],
    responses=errors(408, 409, 413, 415, 422, 503),
)
async def post_events(request: Request, engine: EngineDep) -> EventAck:
    payload = await read_json(request, engine.settings.events.max_body_bytes)
    events = parse_batch(payload, "events", _EVENTS)
    ack = await run_in_threadpool(engine.ingest, events)
    metrics = request.app.state.metrics
    metrics.events.labels("accepted").inc(ack.accepted)
    metrics.events.labels("duplicate").inc(ack.duplicates)
    return ack
