"""The dashboard in headless Chromium against a real `freshrec serve` with keys on and a trained store:
sign in with an admin key, watch the overview fill in, and roll back, pin and unpin from the model page."""

from __future__ import annotations

import json

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import TrainedStore
from tests.dashboard.conftest import DashboardStore, report_folder

TIMEOUT = 30  # bounds a hang only: every wait ends as soon as the page shows the awaited state


def text_of(driver, element_id: str) -> str:  # type: ignore[no-untyped-def]
    return driver.find_element(By.ID, element_id).text


def wait_text(driver, element_id: str, condition, what: str) -> None:  # type: ignore[no-untyped-def]
    WebDriverWait(driver, TIMEOUT).until(lambda d: condition(text_of(d, element_id)), what)


def click_and_confirm(driver, element) -> None:  # type: ignore[no-untyped-def]
    element.click()
    WebDriverWait(driver, TIMEOUT).until(EC.alert_is_present(), "a confirmation dialog").accept()


def test_overview_and_model_actions_in_a_real_browser(browser, server_factory, dashboard_store: DashboardStore) -> None:
    server = server_factory(dashboard_store.data_dir, env={"FRESHREC_SECURITY__AUTH": "true"})
    admin = {"Authorization": f"Bearer {dashboard_store.admin_key}"}
    browser.get(f"{server.url}/dashboard")
    WebDriverWait(browser, TIMEOUT).until(EC.visibility_of_element_located((By.ID, "key-form")), "the key form")

    # a wrong key is refused with the API's message and the form stays
    browser.find_element(By.ID, "key").send_keys("fr_00000000_wrong")
    browser.find_element(By.ID, "key-submit").click()
    wait_text(browser, "error", lambda t: "unknown or revoked" in t, "the 401 message")
    assert browser.find_element(By.ID, "key-form").is_displayed()

    browser.find_element(By.ID, "key").clear()
    browser.find_element(By.ID, "key").send_keys(dashboard_store.admin_key)
    browser.find_element(By.ID, "key-submit").click()
    wait_text(browser, "ov-model", lambda t: t == dashboard_store.child, "the serving version on the overview")
    assert not browser.find_element(By.ID, "key-form").is_displayed()
    assert text_of(browser, "ov-users") == "400" and text_of(browser, "ov-items") == "120"
    assert text_of(browser, "ov-guard") == "no report"
    # traffic while the page polls: the rates and latency come from the difference between two polls
    with httpx.Client(base_url=server.url, headers=admin, timeout=10) as client:
        for n in range(5):
            assert client.post("/v1/events", json={"user_id": "u1", "item_id": f"i{n}", "type": "view"}).is_success
            assert client.get("/v1/users/u1/recommendations").is_success
    wait_text(browser, "ov-lag", lambda t: t == "5", "five events not yet in the model")
    wait_text(browser, "ov-p99", lambda t: t.endswith("s"), "a p99 latency")
    browser.screenshots.save("overview")

    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-page=model]").click()
    row = f"#versions tr[data-version={dashboard_store.parent}]"
    WebDriverWait(browser, TIMEOUT).until(EC.presence_of_element_located((By.CSS_SELECTOR, row)), "versions table")
    assert text_of(browser, "model-current") == dashboard_store.child
    assert text_of(browser, "model-pinned") == "none"
    rows = browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
    assert [r.get_attribute("data-version") for r in rows] == [dashboard_store.child, dashboard_store.parent]
    browser.screenshots.save("model")

    # roll back to the parent: the registry and this server follow
    click_and_confirm(browser, browser.find_element(By.CSS_SELECTOR, f"{row} button.rollback-to"))
    wait_text(browser, "model-serving", lambda t: t == dashboard_store.parent, "serving the parent")
    assert text_of(browser, "model-current") == dashboard_store.parent

    # pin the child, then a dismissed confirmation changes nothing, then unpin
    child_row = f"#versions tr[data-version={dashboard_store.child}]"
    click_and_confirm(browser, browser.find_element(By.CSS_SELECTOR, f"{child_row} button.pin"))
    wait_text(browser, "model-pinned", lambda t: t == dashboard_store.child, "the child pinned")
    assert text_of(browser, "model-serving") == dashboard_store.child
    browser.screenshots.save("pinned")
    browser.find_element(By.ID, "unpin").click()
    WebDriverWait(browser, TIMEOUT).until(EC.alert_is_present(), "a confirmation dialog").dismiss()
    with httpx.Client(base_url=server.url, headers=admin, timeout=10) as client:
        assert client.get("/v1/model/history").json()["pinned"] == dashboard_store.child
    click_and_confirm(browser, browser.find_element(By.ID, "unpin"))
    wait_text(browser, "model-pinned", lambda t: t == "none", "unpinned")
    browser.screenshots.save("unpinned")

    audit = [line for line in (dashboard_store.data_dir / "audit.log").read_text().splitlines() if "/v1/model/" in line]
    assert [("rollback" in a, "/pin" in a, "unpin" in a) for a in audit] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert all('"key_name":"dashboard"' in a and '"status":200' in a for a in audit)
    assert all(p.stat().st_size > 0 for p in browser.screenshots.saved)


def sign_in(browser, url: str, key: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(f"{url}/dashboard")
    WebDriverWait(browser, TIMEOUT).until(EC.visibility_of_element_located((By.ID, "key")), "the key form")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "key-submit").click()
    WebDriverWait(browser, TIMEOUT).until(EC.visibility_of_element_located((By.ID, "page-overview")), "overview")


def list_ids(browser) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.get_attribute("data-item") for r in browser.find_elements(By.CSS_SELECTOR, "#user-recs tbody tr")]


def test_user_inspector_shows_the_list_change_after_an_event_posted_from_the_page(
    browser, server_factory, dashboard_store: DashboardStore, trained: TrainedStore
) -> None:
    server = server_factory(dashboard_store.data_dir, env={"FRESHREC_SECURITY__AUTH": "true"})
    user = trained.shop.events[-1].user_id
    own_events = sum(1 for e in trained.shop.events if e.user_id == user)
    sign_in(browser, server.url, dashboard_store.admin_key)
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-page=user]").click()
    browser.find_element(By.ID, "user-id").send_keys(user)
    browser.find_element(By.ID, "user-open").click()
    WebDriverWait(browser, TIMEOUT).until(lambda d: len(list_ids(d)) == 10, "a list of ten items")
    assert text_of(browser, "user-source") == "model"
    assert text_of(browser, "user-version") == dashboard_store.child
    rows = browser.find_elements(By.CSS_SELECTOR, "#user-sequence tbody tr")
    assert 0 < len(rows) <= own_events  # consecutive actions on one item fold into one entry
    first = browser.find_element(By.CSS_SELECTOR, "#user-recs tbody tr")
    assert first.find_elements(By.TAG_NAME, "td")[4].text  # sources
    assert first.find_elements(By.TAG_NAME, "td")[5].text  # reason
    before = list_ids(browser)
    browser.screenshots.save("user")

    # view the top item from the page: it is now seen, so it leaves the list, and the sequence shows it first
    browser.find_element(By.ID, "event-item").send_keys(before[0])
    browser.find_element(By.ID, "event-post").click()
    wait_text(browser, "user-change", lambda t: t.startswith("After the event"), "the changed list")
    after = list_ids(browser)
    assert before[0] not in after and len(after) == 10
    newest = browser.find_element(By.CSS_SELECTOR, "#user-sequence tbody tr").find_elements(By.TAG_NAME, "td")
    assert (newest[1].text, newest[2].text) == ("view", before[0])
    assert browser.find_elements(By.CSS_SELECTOR, "#user-recs tbody tr.new")
    assert text_of(browser, "event-result").startswith("Stored at offset")
    browser.screenshots.save("user-after-event")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        state = client.get(f"/v1/users/{user}", headers={"Authorization": f"Bearer {dashboard_store.admin_key}"})
        assert state.json()["sequence"][-1]["item_id"] == before[0]


def test_item_inspector_shows_the_item_its_row_and_similar_items(
    browser, server_factory, dashboard_store: DashboardStore, trained: TrainedStore
) -> None:
    server = server_factory(dashboard_store.data_dir, env={"FRESHREC_SECURITY__AUTH": "true"})
    item = trained.shop.items[0]
    sign_in(browser, server.url, dashboard_store.admin_key)
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-page=item]").click()
    browser.find_element(By.ID, "item-id").send_keys(item.item_id)
    browser.find_element(By.ID, "item-open").click()
    similar = "#item-similar tbody tr"
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, similar)) == 10, "ten similar items"
    )
    assert text_of(browser, "item-title") == item.title
    facts = {
        r.get_attribute("data-fact"): r.find_element(By.TAG_NAME, "td").text
        for r in browser.find_elements(By.CSS_SELECTOR, "#item-facts tr")
    }
    assert facts["model"] == "learned from events" and int(facts["interactions"]) > 0
    browser.screenshots.save("item")
    # a similar item opens in the inspector
    other = browser.find_element(By.CSS_SELECTOR, f"{similar} button")
    other_id = other.text
    other.click()
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "item-id").get_attribute("value") == other_id, "the similar item opened"
    )
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, similar)
            and d.find_element(By.CSS_SELECTOR, f"{similar} button").text != other_id
        ),
        "its own similar items",
    )
    browser.screenshots.save("similar-item")


def test_reports_page_shows_json_markdown_and_plots(
    browser, server_factory, dashboard_store: DashboardStore, tmp_path
) -> None:
    folder = report_folder(tmp_path / "replay-report")
    env = {"FRESHREC_SECURITY__AUTH": "true", "FRESHREC_SERVING__REPORTS_DIRS": json.dumps([str(folder)])}
    server = server_factory(dashboard_store.data_dir, env=env)
    sign_in(browser, server.url, dashboard_store.admin_key)
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-page=reports]").click()
    rows = "#reports tbody tr[data-report]"
    WebDriverWait(browser, TIMEOUT).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 3, "3 reports")
    browser.find_element(By.CSS_SELECTOR, "#reports tr[data-report='replay.json'] button").click()
    wait_text(browser, "report-text", lambda t: '"ndcg@10": 0.25' in t, "the pretty-printed JSON")
    browser.find_element(By.CSS_SELECTOR, "#reports tr[data-report='replay.md'] button").click()
    wait_text(browser, "report-text", lambda t: t.startswith("# Streaming replay"), "the Markdown")
    browser.find_element(By.CSS_SELECTOR, "#reports tr[data-report='hit_rate.png'] button").click()
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: (
            d.execute_script("const i = document.getElementById('report-image'); return !i.hidden && i.naturalWidth")
            == 1
        ),
        "the plot decoded",
    )
    assert not browser.find_element(By.ID, "report-text").is_displayed()
    browser.screenshots.save("reports")
