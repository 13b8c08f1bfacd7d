"""``freshrec demo``: generate a shop, train, serve over HTTP, stream events, show lists change live.

Everything goes through the public surfaces a user would use: the engine for the bulk load and
training, then a real uvicorn server on loopback and plain HTTP calls for the live part.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import uvicorn
from rich.console import Console
from rich.table import Table

from freshrec.access.keys import open_key_store
from freshrec.config import Settings
from freshrec.datasets.synthetic import SyntheticShop, generate_shop
from freshrec.engine import Engine, build_engine
from freshrec.pipeline import train_and_publish
from freshrec.serving.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(settings: Settings, engine: Engine, port: int) -> Iterator[str]:
    """Run the app on 127.0.0.1:port in a background thread; yields the base URL; always stops it."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="freshrec-demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"demo server did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _top(client: httpx.Client, user_id: str, k: int = 5) -> tuple[dict, float]:
    started = time.perf_counter()
    r = client.get(f"/v1/users/{user_id}/recommendations", params={"k": k})
    r.raise_for_status()
    return r.json(), (time.perf_counter() - started) * 1000


def _show(console: Console, title: str, recs: dict, before: list[str], shop: SyntheticShop, ms: float) -> list[str]:
    table = Table(title=f"{title}  [dim]({recs['source']}, {ms:.1f} ms)[/]", title_justify="left", show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("category")
    table.add_column("score", justify="right")
    table.add_column("reason")
    ids = []
    for n, it in enumerate(recs["items"], 1):
        ids.append(it["item_id"])
        mark = "" if it["item_id"] in before else "[green]new[/] "
        table.add_row(
            str(n),
            f"{mark}{it['title'] or it['item_id']}",
            shop.category_of.get(it["item_id"], "?"),
            f"{it['score']:.2f}",
            it["reason"],
        )
    console.print(table)
    return ids


def _session_for(shop: SyntheticShop, user_id: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    """A browse-then-buy session in a category the user has not shown interest in yet."""
    history = Counter(shop.category_of[e.item_id] for e in shop.events if e.user_id == user_id)
    fresh = [c for c in shop.categories if c not in history] or shop.categories
    category = str(rng.choice(fresh))
    start = str(rng.choice([i for i, c in shop.category_of.items() if c == category]))
    path = [start]
    while len(path) < 3:
        path.append(shop.successors[path[-1]][0])
    return [
        (path[0], "view"),
        (path[1], "view"),
        (path[2], "view"),
        (path[2], "click"),
        (path[2], "purchase"),
    ]


def run_demo(
    settings: Settings,
    n_users: int = 1500,
    n_items: int = 600,
    port: int = 0,
    keep_serving: bool = False,
    seed: int = 7,
    console: Console | None = None,
) -> None:
    console = console or Console()
    console.rule("[bold]freshrec demo")
    console.print(f"data directory: {settings.storage.data_dir}")
    shop = generate_shop(n_users=n_users, n_items=n_items, seed=seed)
    console.print(
        f"generated a shop: {len(shop.items):,} items in {len(shop.categories)} categories, "
        f"{n_users:,} shoppers, {len(shop.events):,} events over 60 days"
    )
    engine = build_engine(settings, load_model=False)
    try:
        engine.upsert_items(shop.items)
        started = time.perf_counter()
        for i in range(0, len(shop.events), 1000):
            engine.ingest(shop.events[i : i + 1000])
        console.print(f"ingested {len(shop.events):,} events durably in {time.perf_counter() - started:.1f}s")
        console.rule("training the transformer (offline leave-one-out, full ranking)")
        report = train_and_publish(engine.stores, progress=True)
        m, p = report.metrics["model"], report.metrics["popularity"]
        console.print(
            f"published {report.version} after {report.fit.epochs} epochs ({report.fit.seconds:.0f}s): "
            f"test NDCG@10 [bold]{m['ndcg@10']:.4f}[/] vs popularity {p['ndcg@10']:.4f}; "
            f"HR@10 {m['hr@10']:.4f} vs {p['hr@10']:.4f}"
        )
        engine.load_model()
        port = port or free_port()
        headers = {}
        if settings.security.auth:
            store = open_key_store(settings.storage.state_url, settings.storage.data_dir)
            try:
                key, _ = store.create("demo", ["admin"])
            finally:
                store.close()
            headers = {"Authorization": f"Bearer {key}"}
            console.print(f"API key of this demo (admin scope; revoke it with `freshrec keys revoke`): {key}")
        with (
            serve_in_thread(settings, engine, port) as url,
            httpx.Client(base_url=url, timeout=10, headers=headers) as client,
        ):
            console.rule(f"serving on {url} — streaming events")
            rng = np.random.default_rng(seed)
            users = list(dict.fromkeys(e.user_id for e in reversed(shop.events)))[:3]
            titles = {it.item_id: it.title for it in shop.items}
            for user_id in users:
                console.rule(f"[bold]{user_id}")
                recs, ms = _top(client, user_id)
                shown = _show(console, "before", recs, [], shop, ms)
                for item_id, kind in _session_for(shop, user_id, rng):
                    r = client.post("/v1/events", json={"user_id": user_id, "item_id": item_id, "type": kind})
                    r.raise_for_status()
                    recs, ms = _top(client, user_id)
                    shown = _show(
                        console,
                        f"after {kind} of '{titles[item_id]}' ({shop.category_of[item_id]})",
                        recs,
                        shown,
                        shop,
                        ms,
                    )
            console.rule("[bold]a brand-new shopper")
            newcomer = "new-shopper-1"
            recs, ms = _top(client, newcomer)
            shown = _show(console, "no history yet", recs, [], shop, ms)
            first = str(rng.choice([i for i, c in shop.category_of.items() if c == shop.categories[0]]))
            client.post("/v1/events", json={"user_id": newcomer, "item_id": first, "type": "view"}).raise_for_status()
            recs, ms = _top(client, newcomer)
            _show(
                console,
                f"after one view of '{titles[first]}' ({shop.category_of[first]})",
                recs,
                shown,
                shop,
                ms,
            )
            if keep_serving:
                console.print(f"[bold]server still running at {url}[/] (docs: {url}/docs); Ctrl-C to stop")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
        console.rule("done")
    finally:
        engine.close()
