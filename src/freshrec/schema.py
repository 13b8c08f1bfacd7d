"""Data shapes shared by the HTTP API, the CLI and the stores.

Request models (``EventIn``, ``ItemIn``) check structure: required fields, types, lengths, no control
characters in ids. Rules that depend on settings (the event-type registry, the configured id length and
batch size) are checked by :mod:`freshrec.validation`, so the schema stays static and importable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator

#: Absolute cap on id length; the configured ``events.max_id_length`` (default 256) is checked on top.
ID_HARD_MAX = 1024


def _check_id(value: str, addressed: bool = False) -> str:
    """``addressed``: the id is also a URL path segment of the API (users, items), so it must be one."""
    if not value.strip():
        raise ValueError("must not be empty or whitespace")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    if addressed and ("/" in value or value in (".", "..")):
        raise ValueError("must not contain '/' or be '.' or '..' (the API addresses it in a URL path)")
    return value


Id = Annotated[StrictStr, Field(min_length=1, max_length=ID_HARD_MAX)]
Number = StrictInt | StrictFloat


class EventIn(BaseModel):
    """One user action as a client sends it.

    Example
    -------
    >>> EventIn(user_id="u1", item_id="sku-42", type="view").type
    'view'
    """

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_id: Id
    type: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
    ts: Number | datetime | None = Field(
        None, description="Event time: unix seconds or ISO 8601; server time when absent."
    )
    value: Number | None = Field(None, description="Optional strength, e.g. a rating or a watch fraction.")
    event_id: Id | None = Field(None, description="Idempotency key: an event_id is stored at most once.")
    context: dict[str, Any] | None = Field(None, description="Free-form context (device, page, ...).")

    @field_validator("user_id", "item_id")
    @classmethod
    def _valid_ids(cls, v: str) -> str:
        return _check_id(v, addressed=True)

    @field_validator("event_id")
    @classmethod
    def _valid_event_id(cls, v: str | None) -> str | None:
        return v if v is None else _check_id(v)

    @field_validator("ts", "value")
    @classmethod
    def _finite(cls, v: float | datetime | None) -> float | datetime | None:
        if isinstance(v, int | float) and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    def timestamp(self, now: float) -> float:
        """Event time in unix seconds (``now`` when the client sent none)."""
        if self.ts is None:
            return now
        if isinstance(self.ts, datetime):
            return self.ts.timestamp()
        return float(self.ts)


class ItemIn(BaseModel):
    """A catalogue entry as a client sends it. Fields left out keep their stored value on upsert.

    Example
    -------
    >>> ItemIn(item_id="sku-42", title="Trail shoe", categories=["running"]).available
    True
    """

    model_config = ConfigDict(extra="forbid")

    item_id: Id
    title: Annotated[StrictStr, Field(max_length=1000)] | None = None
    text: Annotated[StrictStr, Field(max_length=100_000)] | None = None
    categories: list[Annotated[StrictStr, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=100
    )
    attributes: dict[Annotated[str, Field(max_length=200)], Number] = Field(default_factory=dict)
    available: bool = True

    @field_validator("item_id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        return _check_id(v, addressed=True)

    @field_validator("attributes")
    @classmethod
    def _finite_attributes(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, x in v.items() if not math.isfinite(x)]
        if bad:
            raise ValueError(f"attributes must be finite numbers: {bad}")
        return v


class ItemOut(BaseModel):
    item_id: str
    title: str | None = None
    text: str | None = None
    categories: list[str] = Field(default_factory=list)
    attributes: dict[str, float] = Field(default_factory=dict)
    available: bool = True


@dataclass(slots=True)
class EventRecord:
    """An event as the log stores it: validated, timestamped, with its log offset."""

    offset: int
    user_id: str
    item_id: str
    type: str
    ts: float
    value: float | None = None
    event_id: str | None = None
    context: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UserSnapshot:
    """A consistent copy of one user's state, safe to read while new events arrive.

    ``items``/``types``/``ts``: [S] newest last (catalogue indices, type codes, unix seconds);
    ``seen``: sorted catalogue indices of every item the user ever acted on; ``version`` changes whenever
    the state does (a cache key for anything derived from it); ``user_id``: whose state it is.
    """

    items: np.ndarray
    types: np.ndarray
    ts: np.ndarray
    seen: np.ndarray
    version: int = 0
    user_id: str = ""


@dataclass(slots=True)
class AppendResult:
    """What :meth:`EventLog.append` returns per event: its offset and whether it was a duplicate."""

    offset: int
    duplicate: bool


@dataclass(slots=True)
class CatalogItem:
    """A stored catalogue item with its internal index."""

    item_idx: int
    item_id: str
    title: str | None = None
    text: str | None = None
    categories: list[str] = field(default_factory=list)
    attributes: dict[str, float] = field(default_factory=dict)
    available: bool = True

    def to_out(self) -> ItemOut:
        return ItemOut(
            item_id=self.item_id,
            title=self.title,
            text=self.text,
            categories=self.categories,
            attributes=self.attributes,
            available=self.available,
        )


# ---- responses -------------------------------------------------------------------------------------


class EventAck(BaseModel):
    accepted: int = Field(description="Events newly stored.")
    duplicates: int = Field(description="Events whose event_id was already stored (acknowledged, not re-stored).")
    offsets: list[int] = Field(description="Log offset of each event, in request order.")


class ItemsAck(BaseModel):
    upserted: int
    created: int


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    reason: str
    title: str | None = None
    sources: list[str] = Field(
        default_factory=list,
        description="The candidate sources that proposed the item: model, co-occurrence, session-knn, trending.",
    )


class RecommendationList(BaseModel):
    user_id: str
    source: Literal["model", "trending", "onboarding"] = Field(
        description=(
            "'model' when the transformer scored the user's sequence, 'trending' for the fallback, "
            "'onboarding' for a user with no history who chose categories."
        )
    )
    model_version: str | None
    sequence_length: int = Field(description="Sequence entries the model read.")
    objective: Literal["engagement", "conversion", "blend"] | None = Field(
        None,
        description="What the model ranked for: the requested objective, or 'engagement' when the model has not "
        "learned conversions; null for trending and onboarding lists.",
    )
    items: list[RecommendedItem]


class SimilarItems(BaseModel):
    item_id: str
    model_version: str
    items: list[RecommendedItem]


class SequenceEntry(BaseModel):
    item_id: str
    type: str
    ts: float


class UserStateOut(BaseModel):
    user_id: str
    sequence: list[SequenceEntry]
    seen_count: int
    preferences: list[str] | None = Field(None, description="Categories chosen at onboarding, if any.")


class EventOut(BaseModel):
    """An event as the log holds it."""

    offset: int
    item_id: str
    type: str
    ts: float
    value: float | None = None
    event_id: str | None = None
    context: dict[str, Any] | None = None


class UserExport(BaseModel):
    """Everything freshrec holds about a user: every logged event (with its context), the live state and the
    onboarding choice."""

    user_id: str
    events: list[EventOut]
    state: UserStateOut | None = Field(None, description="The live sequence, when the user has one.")
    preferences: list[str] | None = None


class PreferencesIn(BaseModel):
    """Categories a new user picks at onboarding; their list comes from these until their first event.

    Example
    -------
    >>> PreferencesIn(categories=["camping"]).categories
    ['camping']
    """

    model_config = ConfigDict(extra="forbid")

    categories: list[Annotated[StrictStr, Field(min_length=1, max_length=200)]] = Field(min_length=1, max_length=50)


class ModelInfo(BaseModel):
    version: str | None
    kind: str | None = Field(None, description="full, warm-start or online.")
    parent: str | None = None
    offsets: dict[str, int | list[int]] = Field(
        default_factory=dict,
        description="Event-log offsets trained on, from and to (one per partition with a partitioned log).",
    )
    created_at: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    num_items: int = 0


class FlaggedUser(BaseModel):
    user_id: str
    reason: Literal["burst", "long_session", "item_repeats", "flood"]
    since_ts: float = Field(description="Event time (unix seconds) of the event that flagged the user.")
    since_offset: int = Field(description="Log position of that event.")
    detail: str
    events_held: int = Field(description="The user's events kept out of training since, that one included.")


class QualityReport(BaseModel):
    """The data-quality guard's newest report, as the online trainer wrote it (``GET /v1/quality``)."""

    enabled: bool = Field(description="quality.enabled of the trainer that wrote the report.")
    updated_at: float | None = Field(None, description="Wall time (unix seconds) the report was written.")
    events: dict[str, int] = Field(
        default_factory=dict,
        description="Events the guard judged (seen), by decision: admitted, quarantined (a flagged user's), "
        "duplicate, out_of_order, unknown_type. Every event stays in the log and in live state.",
    )
    users: dict[str, int] = Field(default_factory=dict, description="Users seen and flagged.")
    flagged_by_reason: dict[str, int] = Field(default_factory=dict)
    flagged_users: list[FlaggedUser] = Field(
        default_factory=list, description="Flagged users, newest first (at most ``limit``; ``reason`` filters)."
    )
    type_mix: dict[str, Any] = Field(
        default_factory=dict,
        description="Event-type shares of the first window (reference) and the newest one, and their "
        "Jensen-Shannon divergence per window (history: [window end ts, divergence]).",
    )
    item_popularity: dict[str, Any] = Field(
        default_factory=dict,
        description="Jensen-Shannon divergence of item popularity between consecutive windows.",
    )
    model: dict[str, Any] = Field(
        default_factory=dict,
        description="The serving version's NDCG@10 on the gate's recent holdout: the first readings, the "
        "newest ones and the relative change.",
    )
    drift_threshold: float | None = None
    flags: dict[str, bool] = Field(
        default_factory=dict, description="type_mix_drift, item_popularity_drift, model_drift (reported only)."
    )


class Health(BaseModel):
    status: Literal["ok"]
    model_version: str | None
    last_offset: int = Field(
        description="Events folded into live state, as log positions: the highest offset applied (with a "
        "partitioned log, the sum over partitions of each one's)."
    )
    applied_offsets: list[int] = Field(
        default_factory=list, description="Per event-log partition, the highest position folded into live state."
    )
    users: int
    items: int
    torch_threads: int = Field(description="Intra-op threads of this process's model work (serving.torch_threads).")
    trainer: dict[str, Any] | None = Field(
        None,
        description="The online trainer this server supervises: state (running, restarting, stopped), restarts, "
        "pid, last exit code; null when it runs none.",
    )


def format_validation_error(exc: Exception, prefix: str = "") -> str:
    """One line per problem, ``field.path: message``, from a pydantic ``ValidationError``.

    >>> from pydantic import ValidationError
    >>> try:
    ...     EventIn(user_id="", item_id="i", type="view")
    ... except ValidationError as e:
    ...     print(format_validation_error(e, "events[0]"))
    events[0].user_id: String should have at least 1 character
    """
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    parts = []
    for err in errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        where = ".".join(p for p in (prefix, loc) if p)
        parts.append(f"{where}: {err.get('msg', 'invalid')}".lstrip(": "))
    return "; ".join(parts)


class ErrorOut(BaseModel):
    """Every error response's body."""

    detail: str = Field(description="What was wrong, in one line.")
