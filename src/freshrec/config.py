"""Settings: every option freshrec has, its default, its ``FRESHREC_*`` variable and its TOML key.

Values are layered, later wins: defaults < TOML file < ``FRESHREC_*`` environment < explicit overrides
(CLI flags, test code). Nested sections map to ``FRESHREC_<SECTION>__<FIELD>``, e.g.
``FRESHREC_TRAIN__EPOCHS=50``; the TOML file uses the same sections (``[train]`` ``epochs = 50``). The
TOML file is given by ``load_settings(config_file=...)``, the CLI's ``--config`` or ``FRESHREC_CONFIG``.
Nothing else in freshrec reads the environment or a config file.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: Event types every deployment knows. Custom ones are added with ``events.custom_types``.
BUILTIN_EVENT_TYPES = ("view", "click", "cart", "purchase", "like", "dislike", "skip", "rating")


class _Section(BaseModel):
    """A settings section: unknown keys are errors (a misspelt or retired option must not be ignored)."""

    model_config = ConfigDict(extra="forbid")


_toml_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("freshrec_toml_file", default=None)


class StorageSettings(_Section):
    """Where data lives. Backends are chosen by URL scheme (``sqlite:///path``, ``memory://``, ``redis://``)."""

    data_dir: Path = Field(Path("freshrec-data"), description="Directory for the embedded stores and models.")
    event_log_url: str | None = Field(
        None,
        description="Event log URL: sqlite:///PATH (default sqlite:///<data_dir>/events.db) or "
        "kafka://HOST:PORT[,HOST:PORT...]/TOPIC[?partitions=N] (keyed by user id; a topic that is missing is "
        "created with N partitions, default 1).",
    )
    catalog_url: str | None = Field(
        None,
        description="Catalogue URL: sqlite:///PATH (default sqlite:///<data_dir>/catalog.db; shared by the "
        "processes of one host) or redis://HOST:PORT/DB (shared by workers on any host).",
    )
    state_url: str = Field(
        "memory://",
        description="Live state URL: memory:// (in the process, rebuilt from the log on start) or "
        "redis://HOST:PORT/DB (user sequences, the item graph, trending, onboarding preferences, a Kafka log's "
        "event-id index and model announcements, shared by every worker pointing at it, kept across restarts).",
    )
    model_dir: Path | None = Field(None, description="Model registry directory; default <data_dir>/models")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="FULL fsyncs every commit (survives power loss); NORMAL survives process crashes only.",
    )

    def resolved_event_log_url(self) -> str:
        return self.event_log_url or f"sqlite:///{self.data_dir / 'events.db'}"

    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{self.data_dir / 'catalog.db'}"

    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"


class EventSettings(_Section):
    """What an event may look like."""

    custom_types: list[str] = Field(default_factory=list, description="Event types beyond the built-in ones.")
    negative_types: list[str] = Field(
        default_factory=lambda: ["dislike", "skip"],
        description="Types stored and excluded from recommendations but never added to the sequence.",
    )
    conversion_types: list[str] = Field(
        default_factory=lambda: ["purchase"],
        description="Types that count as a conversion. When training data holds any, the model also learns the "
        "next conversion (a second head on the same sequence), and requests can rank for it "
        "(objective=conversion or blend).",
    )
    max_batch: int = Field(1000, ge=1, description="Most events one POST /v1/events may carry.")
    max_id_length: int = Field(256, ge=1, le=1024, description="Longest user_id / item_id / event_id.")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    max_future_s: float = Field(
        3600.0,
        ge=0,
        description="How far past the server's clock an event's timestamp may be; later ones are refused (422), "
        "so one event cannot stay 'newest' and top trending for ever.",
    )

    @property
    def types(self) -> list[str]:
        """All accepted event types, built-in first; a type's position + 1 is its model code."""
        return list(BUILTIN_EVENT_TYPES) + [t for t in self.custom_types if t not in BUILTIN_EVENT_TYPES]

    @model_validator(mode="after")
    def _negative_types_known(self) -> EventSettings:
        for field in ("negative_types", "conversion_types"):
            unknown = set(getattr(self, field)) - set(self.types)
            if unknown:
                raise ValueError(f"{field} names unknown event types: {sorted(unknown)}")
        if set(self.conversion_types) & set(self.negative_types):
            raise ValueError("a negative type cannot be a conversion type (negative events are not sequence entries)")
        return self


class StateSettings(_Section):
    """Live per-user state."""

    max_sequence_length: int = Field(200, ge=1, description="Events kept per user (the sequence window).")
    collapse_repeats: bool = Field(
        True,
        description="Consecutive events on the same item (view, cart, purchase) form one sequence entry.",
    )
    trending_half_life_hours: float = Field(72.0, gt=0, description="Half-life of the trending score.")


class ModelSettings(_Section):
    """Architecture of the sequential model (SASRec-style transformer)."""

    dim: int = Field(64, ge=8, description="Embedding and hidden size D.")
    heads: int = Field(2, ge=1, description="Attention heads per block (must divide dim).")
    layers: int = Field(2, ge=1, description="Transformer blocks.")
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="Dropout on embeddings, attention output and feed-forward.")
    max_len: int = Field(200, ge=2, description="Longest sequence the model reads.")

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> ModelSettings:
        if self.dim % self.heads:
            raise ValueError(f"model.dim ({self.dim}) must be divisible by model.heads ({self.heads})")
        return self


class TrainSettings(_Section):
    """How models are trained."""

    epochs: int = Field(200, ge=1, description="Upper bound on epochs; early stopping usually ends sooner.")
    patience: int = Field(10, ge=1, description="Epochs without a validation NDCG@10 gain before stopping.")
    batch_size: int = Field(128, ge=1, description="Sequences per training batch.")
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay (matrices and embeddings only).")
    seed: int = Field(42, description="Seed for initialisation, batch order and dropout.")
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="'auto' uses bf16 autocast where the hardware runs it natively."
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="torch.compile the training step; 'auto' does so for datasets large enough to repay the "
        "compile time, on CUDA or under bf16 autocast (compiled fp32 is slower than eager on CPU).",
    )
    window_overlap: int = Field(
        0,
        ge=0,
        description="Sequences longer than model.max_len are cut into windows; each window also reads this many "
        "older entries as context (no targets), so targets early in a window are not predicted from a short "
        "history, at about max_len / (max_len - overlap) times the compute; must be below model.max_len.",
    )
    exclude_seen: bool = Field(
        False,
        description="Score each training target only against items its sequence does not already hold: the "
        "ranking serving makes when requests exclude seen items (the default), so the model spends no capacity "
        "pushing consumed items down. Leave off where requests use exclude_seen=false or repeat consumption "
        "matters.",
    )
    max_seconds: float | None = Field(None, gt=0, description="Stop training after this many seconds.")
    valid_users: int = Field(
        10_000,
        ge=1,
        description="Users whose held-out item is scored after every epoch for early stopping: a fixed random "
        "sample of this many (every user when there are fewer). Each one is ranked against the whole catalogue.",
    )


class ServingSettings(_Section):
    """The HTTP service."""

    host: str = Field("127.0.0.1", description="Bind address of `freshrec serve`.")
    port: int = Field(8000, ge=0, le=65535, description="Port of `freshrec serve`.")
    default_k: int = Field(10, ge=1, description="List length when a request gives no k.")
    max_k: int = Field(500, ge=1, description="Largest k a request may ask for.")
    exclude_seen: bool = Field(True, description="Default for the exclude_seen query parameter.")
    diversity: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Default for the diversity query parameter: the weight MMR gives to dissimilarity from the "
        "items already in the list (0: the model's order; docs/benchmarks.md, diversity, has the trade-off).",
    )
    objective: Literal["engagement", "conversion", "blend"] = Field(
        "engagement",
        description="Default for the objective query parameter: rank for the next interaction (engagement), the "
        "next conversion (conversion: events.conversion_types, for a model that learned them) or both (blend).",
    )
    ranker: bool = Field(
        False,
        description="Serve the version's ranker over the candidates of every live source (the transformer, "
        "co-occurrence, session-kNN, trending) when it has one, instead of the transformer's own ranking; the "
        "API process then also keeps the live item graph those sources read (memory grows with the item "
        "pairs seen together). Off by default: it costs ~8 ms of CPU per request, so one API process "
        "saturates near 90-150 requests/s on 2 cores (docs/benchmarks.md, serving).",
    )
    index: Literal["auto", "exact", "faiss-flat", "faiss-hnsw"] = Field(
        "auto",
        description="Top-k retrieval: exact matrix product (in bf16 where the CPU has it), faiss flat, or faiss "
        "HNSW (approximate, over 8-bit codes); bf16 and HNSW re-score their best 4 x k candidates exactly from the "
        "model's table. auto uses HNSW above 200,000 items.",
    )
    micro_batch: int = Field(
        64, ge=1, description="Most concurrent requests scored in one forward pass (1 turns batching off)."
    )
    user_cache_size: int = Field(
        100_000, ge=0, description="Users whose encoded sequence is cached until their next event (0: off)."
    )
    # On 2 cores a second intra-op thread made a one-user forward pass slower for twice the CPU, and far
    # slower while another process held the other core: its threads wait for each other at every op.
    # Requests run concurrently and are batched instead (docs/benchmarks.md, serving).
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="Intra-op threads of the serving process (`freshrec serve`; null: torch's default, one per "
        "core). One leaves the other cores to the HTTP stack, the micro-batcher and the online trainer.",
    )
    model_poll_s: float = Field(
        2.0, ge=0, description="Seconds between checks for a new current model version (0: never)."
    )
    reports_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders whose reports (JSON, Markdown, PNG: `freshrec replay --out`, benchmarks/results) the "
        "dashboard's Reports page lists and shows; none by default.",
    )


class SecuritySettings(_Section):
    """Who may call the API, and how much."""

    auth: bool = Field(
        True,
        description="Require an API key (Authorization: Bearer fr_...; `freshrec keys create`) on every route "
        "but /health. Off only for local experiments (`freshrec serve --insecure`): anyone who reaches the "
        "port may then read and erase data.",
    )
    rate_limit: float = Field(
        200.0,
        ge=0,
        description="Requests per second one API key may make to one API process (a batch of events counts "
        "once; 0: unlimited); `freshrec keys create --rate-limit` sets it per key.",
    )
    rate_burst: int = Field(400, ge=1, description="Requests a key may make at once before its rate applies.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host headers the API answers (400 for others; '*' any). Empty: any host while keys are "
        "required, only localhost names without them (no DNS rebinding of a keyless local server).",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins browsers may call the API from (CORS); none by default."
    )
    public_metrics: bool = Field(False, description="Serve /metrics without a key (else it needs the read scope).")
    docs: bool = Field(True, description="Serve the OpenAPI description at /docs and /openapi.json.")
    max_connections: int = Field(
        1000,
        ge=1,
        description="Connections and requests one API process holds at once; beyond it new ones get 503, so "
        "slow or idle clients cannot exhaust the process's file descriptors.",
    )
    read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds a client may take to send a request's headers (then the connection is closed), and "
        "again its body (then it gets 408), so slow clients cannot hold connections for ever.",
    )


class OnlineSettings(_Section):
    """Continual learning from the event stream (the online trainer)."""

    enabled: bool = Field(True, description="`freshrec serve` starts the online trainer process.")
    micro_batch_events: int = Field(
        2000,
        ge=1,
        description="Most events one micro-batch trains on (twice as many while more than this are waiting: a "
        "trainer that has fallen behind takes fewer, larger steps until it has caught up).",
    )
    micro_batch_seconds: float = Field(
        2.0, ge=0, description="A smaller micro-batch is trained once its first event is this old."
    )
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate of online fine-tuning.")
    replay_ratio: float = Field(
        1.0, ge=0, description="Replayed older users per affected user in a micro-batch (anti-forgetting)."
    )
    buffer_size: int = Field(20_000, ge=1, description="Users kept in the reservoir replay buffer.")
    publish_interval_s: float = Field(10.0, ge=0, description="Seconds between gate decisions (publish attempts).")
    idle_publish_s: float = Field(
        30.0,
        ge=0,
        description="After this many seconds without new events, weights trained but not yet published go "
        "through the gate (older holdout only: there are no unseen events to judge them on); 0 turns it off.",
    )
    gate_tolerance: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="A candidate may be this much worse (relative NDCG@10) than the current version, and on the "
        "older holdout than the lineage's first version, and still publish.",
    )
    nice: int = Field(10, ge=0, le=19, description="Scheduling niceness of the trainer process under `serve`.")
    sched_idle: bool = Field(
        True,
        description="Under `serve`, run the trainer with Linux's SCHED_IDLE policy: it gets only CPU time no "
        "other process wants, so a serving thread waking up never waits behind it (falls back to `nice`). Turn "
        "it off where other steady load on the machine would starve the trainer.",
    )
    torch_threads: int = Field(1, ge=1, description="Intra-op threads of the trainer (leave cores for serving).")


class QualitySettings(_Section):
    """The data-quality guard: which users and events the online trainer keeps out of training.

    Flagged users and dropped events stay in the event log and in live serving state; only the online
    trainer's examples leave them out. Thresholds are in event time, so a replayed or late stream is judged
    as it happened.
    """

    enabled: bool = Field(
        True, description="Guard the online trainer's examples against bots, floods and unknown event types."
    )
    max_events_per_minute: int = Field(
        20,
        ge=1,
        description="A user with more events than this within one minute is flagged as a burst (a person "
        "browsing a shop makes a few).",
    )
    max_session_hours: float = Field(
        4.0,
        gt=0,
        description="A user active this long without a 30-minute pause is flagged (an impossibly long session). "
        "Raise it where long sittings are normal (rating a film collection, streaming music).",
    )
    max_item_repeats: int = Field(
        20,
        ge=2,
        description="A user with more events than this on one item within an hour is flagged (one item hammered).",
    )
    max_lag_s: float = Field(
        3600.0,
        ge=0,
        description="An event older than the user's newest event by more than this is kept out of training "
        "(out of order); more than 20 such or duplicate events within an hour flag the user (a flood).",
    )
    drift_window_events: int = Field(
        5000,
        ge=100,
        description="Events per window of the drift monitors (event-type mix against the first window, item "
        "popularity against the previous one).",
    )
    drift_threshold: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Jensen-Shannon divergence (base 2, 0..1) above which a window's type mix or item "
        "popularity is reported as drifting.",
    )


class ContentSettings(_Section):
    """Item content and cold start: the encoder and exploration."""

    enabled: bool = Field(
        True, description="Fit the content encoder at `freshrec train` and serve new items from their content."
    )
    encoder: Literal["tfidf", "minilm"] = Field(
        "tfidf", description="tfidf (light, default) or minilm (all-MiniLM-L6-v2; needs freshrec[text])."
    )
    exploration_slots: int = Field(
        1, ge=0, description="Slots per list (of default_k) given to little-exposed items (0: no exploration)."
    )
    exploration_max_interactions: int = Field(
        5, ge=0, description="Items with at most this many interactions count as little-exposed."
    )


class Settings(BaseSettings):
    """The one settings object. Build it with :func:`load_settings`.

    Example
    -------
    >>> s = load_settings(storage={"data_dir": "/tmp/fr"}, train={"epochs": 3})
    >>> s.train.epochs, str(s.storage.resolved_model_dir())
    (3, '/tmp/fr/models')
    """

    model_config = SettingsConfigDict(env_prefix="FRESHREC_", env_nested_delimiter="__", extra="forbid")

    storage: StorageSettings = Field(default_factory=StorageSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    online: OnlineSettings = Field(default_factory=OnlineSettings)
    content: ContentSettings = Field(default_factory=ContentSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @field_validator("storage", mode="after")
    @classmethod
    def _absolute_data_dir(cls, v: StorageSettings) -> StorageSettings:
        # Relative paths are resolved once here so every component agrees on them.
        return v.model_copy(update={"data_dir": v.data_dir.expanduser().resolve()})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _toml_file.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from defaults, a TOML file, ``FRESHREC_*`` variables and overrides.

    ``config_file`` defaults to ``$FRESHREC_CONFIG`` when set. Overrides are nested dicts per section
    (``train={"epochs": 5}``) and are merged into, not substituted for, the other sources.
    """
    path = config_file if config_file is not None else os.environ.get("FRESHREC_CONFIG")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
    token = _toml_file.set(path)
    try:
        return Settings(**overrides)
    finally:
        _toml_file.reset(token)
