"""The ``freshrec`` command line. Commands are thin: they build Settings and call library functions."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from freshrec.config import Settings, load_settings
from freshrec.errors import FreshrecError
from freshrec.position import describe

app = typer.Typer(
    name="freshrec",
    help="Real-time recommender engine: durable events, live user state, a transformer recommender.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Inspect published model versions.", no_args_is_help=True)
app.add_typer(model_app, name="model")
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
content_app = typer.Typer(help="Item content for cold start: fit the encoder, inspect it.", no_args_is_help=True)
app.add_typer(content_app, name="content")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn expected failures into a one-line message and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (FreshrecError, ValueError, FileNotFoundError, LookupError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=2) from exc

    return wrapper  # type: ignore[return-value]


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def settings_from(ctx: typer.Context, **sections: dict[str, Any]) -> Settings:
    """Settings from the global options plus per-command overrides (``None`` values are ignored)."""
    obj = ctx.obj or {}
    overrides = {name: _drop_none(values) for name, values in sections.items()}
    if obj.get("data_dir") is not None:
        overrides.setdefault("storage", {})["data_dir"] = obj["data_dir"]
    return load_settings(obj.get("config"), **{k: v for k, v in overrides.items() if v})


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", "-d", help="Data directory (storage.data_dir).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """Global options apply to every command; settings also come from FRESHREC_* variables."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = {"config": config, "data_dir": data_dir}


@app.command("import")
@friendly_errors
def import_cmd(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="CSV, JSON-lines (.gz/.zip ok) or MovieLens file (not needed with --list-formats)."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="'events' or 'items' (default: detected from the file's name and columns).")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Force a format (see --list-formats).")] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN, e.g. --map user_id=customer (repeatable)."),
    ] = None,
    event_type: Annotated[str, typer.Option("--type", help="Event type for rows without a type column.")] = "rating",
    header: Annotated[
        bool | None,
        typer.Option(
            "--header/--no-header",
            help="Whether line 1 of a CSV/text file is a header row. Default: detected, and a line 1 that "
            "looks like data is refused, never used as a header. A headerless file's fields are named by "
            "--columns, or else 1, 2, 3... for --map.",
            show_default=False,
        ),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="Names of the fields of a CSV/text file without a header row, in order, e.g. "
            "user_id,item_id,ts; they map like header names. Means the file has no header: a line 1 that "
            "looks like a header is refused unless --no-header is given too. Not allowed with --header "
            "(rename a header's columns with --map).",
        ),
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(
            "--delimiter",
            help="Field separator of a CSV/text file: one character, 'tab' (or '\\t'), or 'space' (or ' ') "
            "for runs of spaces and tabs. Default: the first of , tab ; | space that splits every row "
            "into the same number of fields.",
        ),
    ] = None,
    list_formats: Annotated[bool, typer.Option("--list-formats", help="List known formats and exit.")] = False,
) -> None:
    """Import events or items. MovieLens files (u.data, ratings.dat, u.item, movies.dat, movies.csv) and
    generic CSV/JSONL are detected automatically, events or items by their columns. The file is validated
    completely before the data directory is opened, so a bad file stores and creates nothing;
    re-importing the same events stores them once."""
    from freshrec.datasets.formats import FORMATS
    from freshrec.datasets.importer import store_file, validate_file
    from freshrec.datasets.tabular import Layout
    from freshrec.engine import build_engine
    from freshrec.errors import InvalidInput

    if list_formats:
        for f in FORMATS.values():
            console.print(f"[bold]{f.name:16}[/] {f.kind:7} {f.description}")
        return
    if path is None:
        raise InvalidInput("give the PATH of a file to import (or --list-formats to list the known formats)")
    if kind not in (None, "events", "items"):
        raise InvalidInput(f"--kind must be 'events' or 'items', got {kind!r}")
    pairs = {}
    for m in mapping or []:
        field, sep, column = m.partition("=")
        if not sep or not field or not column:
            raise InvalidInput(f"--map expects FIELD=COLUMN, got {m!r}")
        pairs[field] = column
    layout = Layout.from_options(header=header, columns=columns, delimiter=delimiter)
    settings = settings_from(ctx)
    validated = validate_file(
        path,
        settings.events,
        kind=kind,  # type: ignore[arg-type]
        fmt=fmt,
        mapping=pairs,
        default_type=event_type,
        layout=layout,
    )
    engine = build_engine(settings, load_model=False, progress=True)
    try:
        report = store_file(engine, validated)
    finally:
        engine.close()
    console.print(
        f"imported [bold]{report.stored:,}[/] {report.kind} from {path} ({report.format}; {report.rows:,} rows"
        f"{f', {report.duplicates:,} already stored' if report.duplicates else ''}) in {report.seconds:.1f}s"
    )


@app.command()
@friendly_errors
def train(
    ctx: typer.Context,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (early stopping usually ends sooner).")] = None,
    patience: Annotated[int | None, typer.Option(help="Epochs without validation gain before stopping.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per batch.")] = None,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate.")] = None,
    dim: Annotated[int | None, typer.Option(help="Embedding size.")] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer blocks.")] = None,
    heads: Annotated[int | None, typer.Option(help="Attention heads.")] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout rate.")] = None,
    max_len: Annotated[int | None, typer.Option(help="Longest sequence read.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N.")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    warm_start: Annotated[
        bool, typer.Option(help="Start from the current version; publish only if the quality gate accepts.")
    ] = False,
    holdout: Annotated[
        str,
        typer.Option(
            help="'test': hold out each user's last event for an honest test "
            "score (default); 'valid': train on all but the last."
        ),
    ] = "test",
) -> None:
    """Train a transformer on the event log and publish it as the current model version."""
    from freshrec.pipeline import train_and_publish
    from freshrec.stores import open_stores

    settings = settings_from(
        ctx,
        train={
            "epochs": epochs,
            "patience": patience,
            "batch_size": batch_size,
            "lr": lr,
            "device": device,
            "max_seconds": max_seconds,
            "seed": seed,
        },
        model={"dim": dim, "layers": layers, "heads": heads, "dropout": dropout, "max_len": max_len},
    )
    stores = open_stores(settings)
    try:
        report = train_and_publish(stores, holdout=holdout, progress=True, warm_start=warm_start)
    finally:
        stores.close()
    fit = report.fit
    if report.decision is not None:
        console.print(
            f"quality gate: {'accepted' if report.decision.accepted else 'rejected'} — {report.decision.reason}"
        )
    if report.version is None:
        print_metrics(report.metrics)
        err_console.print("[bold red]not published:[/] the candidate is worse than the current version")
        raise typer.Exit(code=1)
    console.print(
        f"published [bold green]{report.version}[/]: {fit.epochs} epochs (best {fit.best_epoch}, {fit.stopped}), "
        f"{fit.seconds:.0f}s, {fit.train_seconds_per_epoch:.2f}s/epoch on {fit.device} ({fit.precision}"
        f"{', compiled' if fit.compiled else ''})"
    )
    print_metrics(report.metrics)
    if report.content_items:
        console.print(f"content encoder ({settings.content.encoder}) fitted on {report.content_items} items")


@content_app.command("fit")
@friendly_errors
def content_fit(
    ctx: typer.Context,
    encoder: Annotated[
        str | None, typer.Option(help="tfidf (light) or minilm (needs freshrec[text]); default content.encoder.")
    ] = None,
) -> None:
    """Fit the content encoder on the catalogue and encode every item (`freshrec train` does this too)."""
    from freshrec.engine import build_engine

    settings = settings_from(ctx, content={"encoder": encoder})
    engine = build_engine(settings, load_model=True)
    try:
        n = engine.fit_content(progress=True)
        serving = engine.recommender.serving
        report = serving.mapping.report if serving is not None and serving.mapping is not None else None
    finally:
        engine.close()
    console.print(f"encoded {n} items with {encoder or settings.content.encoder}")
    if report is not None:
        console.print(
            f"content -> item-space mapping on {serving.version}: held-out cosine {report.cosine_mean:.3f} "
            f"(mean-row baseline {report.baseline_cosine_mean:.3f}, {report.fitted_on} warm items)"
        )


def print_metrics(metrics: dict[str, Any]) -> None:
    """The offline table: the model (seen items filtered, as the protocol ranks, and unfiltered, as peers
    such as RecBole's sequential models report) vs popularity on the protocol's held-out items."""
    cols = ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20"]
    table = Table(title=f"{metrics.get('protocol', '')} — {metrics.get('evaluated_on', '')}")
    table.add_column("scorer")
    for c in cols:
        table.add_column(c.upper(), justify="right")
    table.add_column("users", justify="right")
    rows = (
        ("served", "served: every source + ranker"),
        ("model", "model"),
        ("model_unfiltered", "model, seen items not filtered"),
        ("popularity", "popularity"),
    )
    for key, label in rows:
        row = metrics.get(key)
        if row:
            table.add_row(label, *(f"{row[c]:.4f}" for c in cols), str(row.get("n", "")))
    console.print(table)


@app.command()
@friendly_errors
def evaluate(
    ctx: typer.Context,
    version: Annotated[str | None, typer.Option(help="Model version (default: current).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
) -> None:
    """Offline leave-one-out, full ranking: HR/NDCG/MRR@10 and @20 for the model and for popularity."""
    from freshrec.pipeline import evaluate_version
    from freshrec.stores import open_stores

    stores = open_stores(settings_from(ctx))
    try:
        result = evaluate_version(stores, version, progress=True)
    finally:
        stores.close()
    print_metrics(result)
    text = json.dumps(result, indent=2)
    if json_out is not None:
        json_out.write_text(text + "\n")
        console.print(f"wrote {json_out}")
    else:
        console.print_json(text)


@app.command()
@friendly_errors
def replay(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="Events file, dataset directory, or freshrec data directory.")],
    items: Annotated[Path | None, typer.Option(help="Items file (default: the one beside the events).")] = None,
    cut: Annotated[float, typer.Option(help="Train on this first fraction, replay the rest.")] = 0.8,
    cut_by: Annotated[str, typer.Option(help="'time' (fraction of the time span) or 'events'.")] = "time",
    k: Annotated[int, typer.Option(help="List length scored.")] = 10,
    windows: Annotated[int, typer.Option(help="Time windows in the report.")] = 10,
    max_events: Annotated[int | None, typer.Option(help="Replay at most this many events after the cut.")] = None,
    online_every: Annotated[
        int, typer.Option(help="Events between online-trainer catch-ups (0: leave the live+online strategy out).")
    ] = 1000,
    retrain_every: Annotated[
        int, typer.Option(help="Events between full retrains for the live+periodic-retrain strategy (0: off).")
    ] = 0,
    epochs: Annotated[int | None, typer.Option(help="Most training epochs at the cut.")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Training time budget at the cut.")] = None,
    out: Annotated[Path, typer.Option(help="Directory for replay.json, replay.md and the PNG plots.")] = Path(
        "replay-report"
    ),
) -> None:
    """Streaming replay (prequential): train at the cut, then score each later event before ingesting it,
    comparing a static model, live sequences, trending and co-occurrence on identical events."""
    from freshrec.datasets.sources import load_source
    from freshrec.eval.plots import plot_replay
    from freshrec.eval.replay import ReplayOptions, run_replay
    from freshrec.provenance import describe

    if cut_by not in ("time", "events"):
        raise ValueError(f"--cut-by must be 'time' or 'events', got {cut_by!r}")
    options = ReplayOptions(
        cut=cut,
        cut_by=cut_by,
        k=k,
        windows=windows,
        max_events=max_events,  # type: ignore[arg-type]
        online_every=online_every or None,
        retrain_every=retrain_every or None,
    )

    settings = settings_from(ctx, train={"epochs": epochs, "max_seconds": max_seconds})
    src = load_source(source, items, progress=True)
    report = run_replay(src.events, settings, options, items=src.items, dataset=src.name)
    out.mkdir(parents=True, exist_ok=True)
    payload = report.to_dict()
    # what produced the figures: machine, versions, commit, and the training seed (the run's randomness)
    stored = {"machine": describe(), "seed": settings.train.seed, **payload}
    (out / "replay.json").write_text(json.dumps(stored, indent=2) + "\n")
    (out / "replay.md").write_text(report.to_markdown())
    pngs = plot_replay(payload, out)
    console.print(report.to_markdown())
    console.print(f"ingest per event: p50 {report.ingest_ms['p50']:.2f} ms, p99 {report.ingest_ms['p99']:.2f} ms")
    console.print(f"wrote {out / 'replay.json'}, {out / 'replay.md'}, " + ", ".join(str(p) for p in pngs))


@app.command()
@friendly_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (serving.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (serving.port).")] = None,
    online: Annotated[
        bool | None, typer.Option("--online/--no-online", help="Run the online trainer beside the server.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="API worker processes on this port. More than one needs shared live state "
            "(storage.state_url = redis://…).",
        ),
    ] = 1,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="No API keys: every route open to whoever reaches the port (security.auth = false). Only on a "
            "loopback address, for local experiments.",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API with the current model version (trending only until one is trained). By default an
    online trainer process learns from the event stream and new versions are swapped in as they pass the
    quality gate. Every route but /health needs an API key (`freshrec keys create`)."""
    import uvicorn

    from freshrec.online.process import TRAINER_STATUS, TrainerProcess
    from freshrec.serving.app import WORKER_SETTINGS_ENV, create_app
    from freshrec.serving.protocol import http_protocol

    settings = settings_from(
        ctx,
        serving={"host": host, "port": port},
        online={"enabled": online},
        security={"auth": False} if insecure else {},
    )
    if not settings.security.auth:
        if settings.serving.host not in ("127.0.0.1", "localhost", "::1"):
            raise typer.BadParameter(
                f"serving without API keys is only allowed on a loopback address, not {settings.serving.host!r}",
                param_hint="--insecure / security.auth",
            )
        err_console.print(
            "[bold red]INSECURE:[/] no API keys are required; anyone on this machine may read, change and erase "
            "this server's data"
        )
    else:
        from freshrec.access.keys import open_key_store

        store = open_key_store(settings.storage.state_url, settings.storage.data_dir)
        try:
            if not any(k.revoked_at is None for k in store.list()):
                err_console.print(
                    "[bold yellow]no API keys yet:[/] every request but /health gets 401 until you run "
                    "`freshrec keys create NAME --scope ...`"
                )
        finally:
            store.close()
    if workers > 1 and not settings.storage.state_url.startswith(("redis://", "rediss://")):
        raise typer.BadParameter(
            f"--workers {workers} needs live state every worker shares: set storage.state_url = redis://HOST:PORT/DB "
            f"(now {settings.storage.state_url!r}, which each worker would keep to itself)",
            param_hint="--workers",
        )
    if settings.serving.torch_threads:
        import torch

        # the serving process's own knob (train, evaluate and the trainer keep theirs)
        torch.set_num_threads(settings.serving.torch_threads)
    status_path = settings.storage.data_dir / TRAINER_STATUS
    status_path.unlink(missing_ok=True)  # a previous server's trainer is not this one's
    trainer_proc = TrainerProcess(ctx.obj or {}, status_path) if settings.online.enabled else None
    console.print(
        f"freshrec serving on http://{settings.serving.host}:{settings.serving.port} "
        f"(data: {settings.storage.data_dir}; docs at /docs; {workers} worker{'s' if workers > 1 else ''}; "
        f"online trainer {'on' if trainer_proc else 'off'})"
    )
    try:
        if trainer_proc is not None:
            trainer_proc.start(settings)
        if workers > 1:
            # each worker process builds its own app from the settings resolved here
            os.environ[WORKER_SETTINGS_ENV] = settings.model_dump_json()
            uvicorn.run(
                "freshrec.serving.app:create_app_from_environment",
                factory=True,
                workers=workers,
                host=settings.serving.host,
                port=settings.serving.port,
                log_level="warning",
                limit_concurrency=settings.security.max_connections,
                http=http_protocol(settings.security.read_timeout_s),
            )
        else:
            uvicorn.run(
                create_app(settings),
                host=settings.serving.host,
                port=settings.serving.port,
                log_level="warning",
                limit_concurrency=settings.security.max_connections,
                http=http_protocol(settings.security.read_timeout_s),
            )
    finally:
        if trainer_proc is not None:
            trainer_proc.stop()


@app.command()
@friendly_errors
def ingest(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option(help="Fold what is in the log now, then exit.")] = False,
) -> None:
    """Fold events that other producers write to the event log (a Kafka topic) into the shared live state,
    as they arrive, until stopped (SIGTERM or Ctrl-C). Events API workers already applied are not folded
    again; malformed records are skipped and counted."""
    import signal
    import threading

    from freshrec.engine import INGEST_GROUP, build_engine

    settings = settings_from(ctx)
    if not settings.storage.state_url.startswith(("redis://", "rediss://")):
        raise typer.BadParameter(
            "ingest folds events into state other processes read: set storage.state_url = redis://HOST:PORT/DB"
        )
    engine = build_engine(settings, load_model=False, progress=not once)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if once:
            engine.catch_up()
            engine.event_log.commit(INGEST_GROUP, engine.state.applied(engine.event_log.partitions))
        else:
            console.print(f"following {settings.storage.resolved_event_log_url()} into {settings.storage.state_url}")
            engine.follow(stop)
    except KeyboardInterrupt:
        pass
    finally:
        console.print(
            f"applied {describe(engine.state.applied(engine.event_log.partitions))}; {len(engine.state)} users; "
            f"{engine.skipped_events} malformed events skipped"
        )
        engine.close()


@app.command()
@friendly_errors
def trainer(
    ctx: typer.Context,
    max_batches: Annotated[int | None, typer.Option(help="Stop after this many micro-batches.")] = None,
    once: Annotated[bool, typer.Option(help="Train whatever is in the log now, then exit.")] = False,
    exit_with_parent: Annotated[int | None, typer.Option(hidden=True, help="Exit when this process ends.")] = None,
) -> None:
    """The online trainer on its own: tails the event log from its committed offset, fine-tunes the current
    model in micro-batches, and publishes versions that pass the quality gate. Resumes after a crash."""
    import signal
    import threading

    import torch

    from freshrec.online.process import watch_parent
    from freshrec.online.trainer import POLL_INTERVAL_S, OnlineTrainer
    from freshrec.stores import open_stores

    settings = settings_from(ctx)
    torch.set_num_threads(settings.online.torch_threads)
    stores = open_stores(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if exit_with_parent is not None:
        watch_parent(exit_with_parent, stop)
    try:
        while stores.registry.current() is None and not stop.is_set():
            stop.wait(POLL_INTERVAL_S * 4)  # nothing to fine-tune until a model is trained
        if stop.is_set():
            return
        online = OnlineTrainer(stores)
        console.print(f"online trainer from {online.state.base_version} at {describe(online.state.committed)}")
        batches = 0
        if once:
            while online.poll(force=True) is not None:
                batches += 1
        else:
            batches = online.run(stop, max_batches)
        console.print(f"trained {batches} micro-batches; committed {describe(online.state.committed)}")
    except KeyboardInterrupt:
        pass
    finally:
        stores.close()


@app.command()
@friendly_errors
def demo(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(help="Generated shoppers.")] = 1500,
    items: Annotated[int, typer.Option(help="Generated items.")] = 600,
    port: Annotated[int, typer.Option(help="Port for the demo server (0: any free port).")] = 0,
    max_train_seconds: Annotated[float, typer.Option(help="Training time budget.")] = 150.0,
    keep_serving: Annotated[bool, typer.Option(help="Leave the server running after the walkthrough.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated shop.")] = 7,
) -> None:
    """Generate a shop, train, serve, stream events and show recommendations changing live."""
    import tempfile

    from freshrec.demo import run_demo

    obj = ctx.obj or {}
    data_dir = obj.get("data_dir") or Path(tempfile.mkdtemp(prefix="freshrec-demo-"))
    settings = load_settings(
        obj.get("config"),
        storage={"data_dir": data_dir},
        train={"max_seconds": max_train_seconds, "patience": 3, "epochs": 60},
    )
    run_demo(
        settings,
        n_users=users,
        n_items=items,
        port=port,
        keep_serving=keep_serving,
        seed=seed,
        console=console,
    )


@app.command()
@friendly_errors
def generate(
    out_dir: Annotated[Path, typer.Argument(help="Directory for events.jsonl and items.jsonl.")],
    users: Annotated[int, typer.Option(help="Shoppers.")] = 1500,
    items: Annotated[int, typer.Option(help="Items.")] = 600,
    days: Annotated[float, typer.Option(help="Days of activity.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write a generated shop (the demo's data) as JSON-lines files to import or replay."""
    from freshrec.datasets.synthetic import generate_shop

    shop = generate_shop(n_users=users, n_items=items, days=days, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "items.jsonl", "w", encoding="utf-8") as f:
        for it in shop.items:
            f.write(it.model_dump_json() + "\n")
    with open(out_dir / "events.jsonl", "w", encoding="utf-8") as f:
        for e in shop.events:
            f.write(e.model_dump_json(exclude_none=True) + "\n")
    console.print(f"wrote {len(shop.items):,} items and {len(shop.events):,} events to {out_dir}")


@model_app.command("list")
@friendly_errors
def model_list(ctx: typer.Context) -> None:
    """Published versions, newest last; * marks the current one."""
    from freshrec.model.registry import ModelRegistry

    registry = ModelRegistry(settings_from(ctx).storage.resolved_model_dir())
    current = registry.current()
    table = Table()
    for col in ("", "version", "created", "parent", "items", "valid NDCG@10", "test NDCG@10"):
        table.add_column(col)
    for v in registry.versions():
        meta = registry.meta(v)
        metrics = meta.get("metrics", {})
        test = metrics.get("model", {}).get("ndcg@10")
        table.add_row(
            "*" if v == current else "",
            v,
            meta.get("created_at", ""),
            meta.get("parent") or "",
            str(meta.get("config", {}).get("num_items", "")),
            f"{metrics.get('valid', {}).get('ndcg@10', float('nan')):.4f}",
            f"{test:.4f}" if test is not None else "",
        )
    console.print(table)


@model_app.command("rollback")
@friendly_errors
def model_rollback(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option(help="Version to return to (default: the current one's parent).")] = None,
) -> None:
    """Make an earlier version current; running servers swap to it within serving.model_poll_s."""
    from freshrec.model.registry import ModelRegistry

    settings = settings_from(ctx)
    registry = ModelRegistry(settings.storage.resolved_model_dir())
    before = registry.current()
    after = registry.rollback(to)
    _audit(settings, f"model rollback {before} -> {after}")
    console.print(f"current version: {before} -> [bold]{after}[/]")


@model_app.command("pin")
@friendly_errors
def model_pin(
    ctx: typer.Context, version: Annotated[str | None, typer.Argument(help="Default: current.")] = None
) -> None:
    """Make a version current and keep it there: the online trainer stops publishing until `unpin`."""
    from freshrec.model.registry import ModelRegistry

    settings = settings_from(ctx)
    pinned = ModelRegistry(settings.storage.resolved_model_dir()).pin(version)
    _audit(settings, f"model pin {pinned}")
    console.print(f"pinned [bold]{pinned}[/]")


@model_app.command("unpin")
@friendly_errors
def model_unpin(ctx: typer.Context) -> None:
    """Let the online trainer publish again."""
    from freshrec.model.registry import ModelRegistry

    settings = settings_from(ctx)
    ModelRegistry(settings.storage.resolved_model_dir()).unpin()
    _audit(settings, "model unpin")
    console.print("unpinned")


@model_app.command("show")
@friendly_errors
def model_show(
    ctx: typer.Context, version: Annotated[str | None, typer.Argument(help="Default: current.")] = None
) -> None:
    """A version's metadata (config, metrics, data range, training) as JSON."""
    from freshrec.model.registry import ModelNotFoundError, ModelRegistry

    registry = ModelRegistry(settings_from(ctx).storage.resolved_model_dir())
    version = version or registry.current()
    if version is None:
        raise ModelNotFoundError("no model published yet; run `freshrec train`")
    console.print_json(json.dumps(registry.meta(version)))


if __name__ == "__main__":
    app()


def _audit(settings: Settings, action: str, **detail: Any) -> None:
    """An administrative command, in the audit log the API's admin requests go to (by "cli", no key)."""
    from freshrec.access.audit import AuditLog

    AuditLog(settings.storage.data_dir / "audit.log").record(None, "cli", action, None, **detail)


def _key_store(ctx: typer.Context):  # type: ignore[no-untyped-def]
    from freshrec.access.keys import open_key_store

    settings = settings_from(ctx)
    return open_key_store(settings.storage.state_url, settings.storage.data_dir), settings


@keys_app.command("create")
@friendly_errors
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who or what uses the key (shown in lists and the audit log).")],
    scope: Annotated[
        list[str],
        typer.Option(help="ingest, read, catalog or admin (admin allows everything); repeat for several."),
    ],
    rate_limit: Annotated[
        float | None, typer.Option(help="Requests per second per API process (default security.rate_limit).")
    ] = None,
) -> None:
    """Create an API key. It is printed once: store it now, freshrec keeps only its hash."""
    store, settings = _key_store(ctx)
    try:
        key, info = store.create(name, scope, rate_limit)
    finally:
        store.close()
    _audit(settings, f"keys create {info.key_id}", name=info.name, scopes=list(info.scopes))
    err_console.print(f"created key {info.key_id} ({info.name}; scopes {', '.join(info.scopes)}); it is shown once:")
    console.print(key)


@keys_app.command("list")
@friendly_errors
def keys_list(ctx: typer.Context) -> None:
    """Every API key's id, name, scopes and state (never the key itself)."""
    import datetime as dt

    store, _ = _key_store(ctx)
    try:
        keys = store.list()
    finally:
        store.close()
    table = Table(title="API keys")
    for column in ("id", "name", "scopes", "rate limit", "created", "revoked"):
        table.add_column(column)
    for k in keys:

        def when(t: float | None) -> str:
            return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M") if t else ""

        rate = f"{k.rate_limit:g}/s" if k.rate_limit else "default"
        table.add_row(k.key_id, k.name, ", ".join(k.scopes), rate, when(k.created_at), when(k.revoked_at))
    console.print(table)


@keys_app.command("revoke")
@friendly_errors
def keys_revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key's id (keys list).")]) -> None:
    """Revoke an API key for good (API processes stop accepting it within seconds)."""
    store, settings = _key_store(ctx)
    try:
        store.revoke(key_id)
    finally:
        store.close()
    _audit(settings, f"keys revoke {key_id}")
    console.print(f"revoked key {key_id}")
