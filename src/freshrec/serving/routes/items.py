"""Catalogue routes: batch upsert, read one item, similar items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter

from freshrec.schema import ItemIn, ItemOut, ItemsAck, SimilarItems
from freshrec.serving.deps import EngineDep, batch_body, errors, parse_batch, read_json
from freshrec.serving.security import require

router = APIRouter(prefix="/v1/items", tags=["items"])
_ITEMS = TypeAdapter(list[ItemIn])


@router.put(
    "",
    response_model=ItemsAck,
    summary="Upsert items",
    description=(
        'Body: one item, an array of items, or `{"items": [...]}`. New ids are created; for existing ids '
        "only the fields present in the request change. `available: false` hides an item from every list."
    ),
    openapi_extra=batch_body("ItemIn", "ItemBatch"),
    dependencies=[require("catalog")],
    responses=errors(408, 413, 415, 422, 503),
)
async def put_items(request: Request, engine: EngineDep) -> ItemsAck:
    payload = await read_json(request, engine.settings.events.max_body_bytes)
    items = parse_batch(payload, "items", _ITEMS)
    return await run_in_threadpool(engine.upsert_items, items)


@router.get(
    "/{item_id}",
    response_model=ItemOut,
    summary="Read one item",
    dependencies=[require("read")],
    responses=errors(404, 503),
)
def get_item(item_id: str, engine: EngineDep) -> ItemOut:
    return engine.get_item(item_id)


@router.get(
    "/{item_id}/similar",
    response_model=SimilarItems,
    summary="Similar items",
    description="Nearest available items by cosine similarity of the current model's item embeddings.",
    dependencies=[require("read")],
    responses=errors(404, 422, 503),
)
def similar_items(
    item_id: str, engine: EngineDep, k: Annotated[int, Query(description="List length.")] = 10
) -> SimilarItems:
    return engine.similar(item_id, k)
