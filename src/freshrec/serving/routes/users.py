"""User routes: recommendations from the live sequence, the state itself, and forgetting a user."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from freshrec.schema import PreferencesIn, RecommendationList, UserExport, UserStateOut
from freshrec.serving.deps import EngineDep, errors
from freshrec.serving.security import require
from freshrec.validation import check_id

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get(
    "/{user_id}/recommendations",
    response_model=RecommendationList,
    summary="Recommend for a user",
    description=(
        "Scores the catalogue from the user's latest sequence, including the event acknowledged a moment ago. "
        "Items the user already acted on are excluded unless `exclude_seen=false`; unavailable items never "
        "appear. Unknown users, and users whose items the model does not know, get the trending list "
        "(`source: trending`)."
    ),
    dependencies=[require("read")],
    responses=errors(422, 503),
)
async def recommendations(
    user_id: str,
    request: Request,
    engine: EngineDep,
    k: Annotated[int | None, Query(description="List length (1..serving.max_k; default serving.default_k).")] = None,
    exclude_seen: Annotated[bool | None, Query(description="Hide items the user already acted on.")] = None,
    diversity: Annotated[
        float | None,
        Query(
            ge=0.0,
            le=1.0,
            description="0..1: how much the list avoids items similar to each other (MMR over item embeddings; "
            "default serving.diversity).",
        ),
    ] = None,
    objective: Annotated[
        Literal["engagement", "conversion", "blend"] | None,
        Query(
            description="Rank for the next interaction (engagement), the next conversion such as a purchase "
            "(conversion) or both (blend); default serving.objective. A model that has not learned conversions "
            "ranks for engagement (the response's `objective` says so).",
        ),
    ] = None,
) -> Response:
    check_id(user_id, "user_id", engine.settings.events.max_id_length)
    # async: the model work runs on the micro-batcher's thread, the event loop only waits for it
    result = await engine.recommend_async(user_id, k, exclude_seen, diversity, objective)
    request.app.state.metrics.recommendations.labels(result.source).inc()
    # on the event loop, one thread: no lock needed
    request.app.state.exposures.update(item.item_id for item in result.items)
    # Serialised here, once: returning the model would make FastAPI validate it again against
    # response_model (which stays for the OpenAPI schema), a measurable share of the hot path.
    return Response(content=result.model_dump_json(), media_type="application/json")


@router.get(
    "/{user_id}",
    response_model=UserStateOut,
    summary="A user's live sequence",
    dependencies=[require("read")],
    responses=errors(404, 503),
)
def user_state(user_id: str, engine: EngineDep) -> UserStateOut:
    return engine.user_state(user_id)


@router.get(
    "/{user_id}/export",
    response_model=UserExport,
    summary="Everything held about a user",
    description="Every logged event with its context, the live state and the onboarding choice (a data subject "
    "access request). Admin scope; audit-logged.",
    dependencies=[require("admin")],
    responses=errors(404, 503),
)
def export_user(user_id: str, engine: EngineDep) -> UserExport:
    return engine.export_user(user_id)


@router.delete(
    "/{user_id}",
    summary="Forget a user (events and state)",
    dependencies=[require("admin")],
    responses=errors(404, 503),
)
def delete_user(user_id: str, engine: EngineDep) -> dict[str, int]:
    return {"deleted_events": engine.delete_user(user_id)}


@router.post(
    "/{user_id}/preferences",
    summary="Onboarding: categories a new user picked",
    description=(
        "Until the user's first event their list comes from these categories (`source: onboarding`, "
        "trending within them first); afterwards the transformer reads their sequence. Unknown categories "
        "are refused with 422. Posting again replaces the choice; `DELETE /v1/users/{id}` forgets it."
    ),
    dependencies=[require("ingest")],
    responses=errors(408, 413, 415, 422, 503),
)
def set_preferences(user_id: str, body: PreferencesIn, engine: EngineDep) -> dict[str, object]:
    check_id(user_id, "user_id", engine.settings.events.max_id_length)
    return {"user_id": user_id, "categories": engine.set_preferences(user_id, body.categories)}
