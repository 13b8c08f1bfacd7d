"""Shared objects for routes, as annotated dependencies (tests swap them via ``dependency_overrides``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import TypeAdapter, ValidationError

from freshrec.engine import Engine
from freshrec.errors import InvalidInput, PayloadTooLarge
from freshrec.schema import ErrorOut, format_validation_error

_MEANING = {
    400: "The Host header is not allowed (security.allowed_hosts)",
    401: "No API key, or an unknown or revoked one",
    403: "The API key lacks the scope this route needs",
    404: "Not found",
    408: "The request body did not arrive in time",
    409: "Conflicts with what is stored",
    413: "The body or batch exceeds a limit; nothing was stored",
    415: "The body is not JSON",
    422: "Invalid input; nothing was stored",
    429: "The API key's rate limit is spent (see Retry-After)",
    503: "A backing store did not answer or no model is loaded; retry",
}


def errors(*codes: int, keyed: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route's error statuses (every error body is :class:`ErrorOut`); ``keyed``
    adds what every route behind a key can answer (401, 403, 429), and every route can answer 400."""
    every = (400, 401, 403, 429) if keyed else (400,)
    return {c: {"model": ErrorOut, "description": _MEANING[c]} for c in sorted({*every, *codes})}


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON, with a clear error for every way it can be wrong."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds {max_bytes} (events.max_body_bytes)")
    body = await request.body()
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body of {len(body)} bytes exceeds {max_bytes} (events.max_body_bytes)")
    if not body:
        raise InvalidInput("request body is empty; expected JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def batch_body(one: str, batch: str) -> dict[str, Any]:
    """OpenAPI for a body :func:`parse_batch` reads: one ``one`` object, an array of them, or a ``batch``
    wrapper (the bodies are parsed by hand for exact error messages, so FastAPI cannot describe them)."""
    ref = {"$ref": f"#/components/schemas/{one}"}
    schema = {"oneOf": [ref, {"type": "array", "items": ref}, {"$ref": f"#/components/schemas/{batch}"}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def parse_batch(payload: Any, key: str, adapter: TypeAdapter) -> list:
    """Accept one object, a JSON array, or ``{key: [...]}``; validate every element with ``adapter``."""
    if isinstance(payload, dict) and set(payload) == {key}:
        payload, prefix = payload[key], key
    elif isinstance(payload, dict):
        payload, prefix = [payload], key
    else:
        prefix = key
    if not isinstance(payload, list):
        raise InvalidInput(f"{prefix}: expected a JSON object or an array of objects")
    try:
        return adapter.validate_python(payload)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(exc, prefix)) from exc
