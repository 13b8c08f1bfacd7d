"""Dashboard render times: each page in headless Chromium against `freshrec serve` on the demo's data.

    python benchmarks/dashboard.py              # the demo's shop (1,500 shoppers, 600 items), trained as the demo does
    python benchmarks/dashboard.py --quick      # tiny shop and model (the smoke test)

The store is built as `freshrec demo` builds it (generated shop, ingested, trained and published); the server
also lists `benchmarks/results` on the Reports page. Debian's Chromium is driven headless through its
chromedriver (Selenium). Each figure is the time from the user's action (opening the page and entering the
key; clicking a tab; submitting a user or item id) until the page shows what it was asked for (the overview's
figures; the versions table; the user's list of ten; the item's similar items; the list of reports), over
``--repeats`` rounds. Client and server share the machine's cores. Target (issue: dashboard): under 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from freshrec.config import load_settings
from freshrec.datasets.synthetic import generate_shop
from freshrec.engine import build_engine
from freshrec.pipeline import train_and_publish
from machine import ROOT, write_json
from stores import Server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TIMEOUT = 60  # bounds a hang only


def build(data_dir: Path, quick: bool) -> tuple[str, str]:
    """The demo's store in ``data_dir``; returns a user and an item to inspect."""
    shop_args = {"n_users": 80, "n_items": 40, "n_categories": 4, "seed": 1} if quick else {"seed": 7}
    shop = generate_shop(**({"n_users": 1500, "n_items": 600} | shop_args))
    overrides: dict[str, Any] = {"storage": {"data_dir": data_dir}}
    if quick:
        overrides |= {"model": {"dim": 16, "heads": 1, "layers": 1, "max_len": 20}, "train": {"epochs": 2}}
    engine = build_engine(load_settings(**overrides), load_model=False)
    try:
        engine.upsert_items(shop.items)
        for i in range(0, len(shop.events), 1000):
            engine.ingest(shop.events[i : i + 1000])
        train_and_publish(engine.stores, progress=not quick)
    finally:
        engine.close()
    return shop.events[-1].user_id, shop.events[-1].item_id


def timed(action: Callable[[], None], shown: Callable[[], bool]) -> float:
    """Milliseconds from ``action`` until ``shown`` holds (polled as fast as the driver answers)."""
    started = time.perf_counter()
    action()
    deadline = started + TIMEOUT
    while not shown():
        if time.perf_counter() > deadline:
            raise TimeoutError("the page did not show what was asked for")
    return (time.perf_counter() - started) * 1000


def measure(url: str, user: str, item: str, repeats: int) -> dict[str, list[float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))

    def rows(selector: str) -> int:
        return len(driver.find_elements(By.CSS_SELECTOR, selector))

    def text(element_id: str) -> str:
        return driver.find_element(By.ID, element_id).text

    def tab(page: str) -> Callable[[], None]:
        return lambda: driver.find_element(By.CSS_SELECTOR, f"#tabs button[data-page={page}]").click()

    def submit(field: str, value: str, button: str) -> Callable[[], None]:
        def act() -> None:
            box = driver.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
            driver.find_element(By.ID, button).click()

        return act

    times: dict[str, list[float]] = {p: [] for p in ("overview", "model", "user", "item", "reports")}
    try:
        for _ in range(repeats):
            driver.delete_all_cookies()
            driver.get("about:blank")

            def open_overview() -> None:
                driver.get(f"{url}/dashboard")
                driver.execute_script("sessionStorage.clear()")
                driver.refresh()
                driver.find_element(By.ID, "key").send_keys("fr_00000000_benchmark")  # keys are off (--insecure)
                driver.find_element(By.ID, "key-submit").click()

            times["overview"].append(timed(open_overview, lambda: text("ov-model") not in ("", "-")))
            times["model"].append(timed(tab("model"), lambda: rows("#versions tbody tr") > 0))
            tab("user")()
            driver.execute_script("document.querySelector('#user-recs tbody')?.replaceChildren()")
            times["user"].append(timed(submit("user-id", user, "user-open"), lambda: rows("#user-recs tbody tr") > 0))
            tab("item")()
            driver.execute_script("document.querySelector('#item-similar tbody')?.replaceChildren()")
            times["item"].append(
                timed(submit("item-id", item, "item-open"), lambda: rows("#item-similar tbody tr") > 0)
            )
            driver.execute_script("document.querySelector('#reports tbody')?.replaceChildren()")
            times["reports"].append(timed(tab("reports"), lambda: rows("#reports tbody tr") > 0))
    finally:
        driver.quit()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="Tiny shop and model (the smoke test).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dashboard.json")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    with tempfile.TemporaryDirectory(prefix="freshrec-dashboard-") as tmp:
        data_dir = Path(tmp) / "data"
        user, item = build(data_dir, args.quick)
        reports = json.dumps([str(ROOT / "benchmarks" / "results")])
        with Server(data_dir, {"FRESHREC_SERVING__REPORTS_DIRS": reports}) as server:
            times = measure(server.url, user, item, args.repeats)
    summary = {page: {"median_ms": statistics.median(t), "max_ms": max(t), "runs_ms": t} for page, t in times.items()}
    for page, row in summary.items():
        print(f"{page:<10} median {row['median_ms']:7.1f} ms   max {row['max_ms']:7.1f} ms")
    write_json(
        args.out,
        {
            "benchmark": "dashboard",
            "repeats": args.repeats,
            "pages": summary,
            "command": "python benchmarks/dashboard.py" + (" --quick" if args.quick else ""),
        },
    )


if __name__ == "__main__":
    main()
