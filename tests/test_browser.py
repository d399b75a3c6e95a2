"""The app in a real browser (Playwright + Debian's Chromium): a comparison in the
Compare tab, a shared link restoring its inputs, a bad link falling back with a
notice, and the leaderboard tab. Screenshots go to ``$HUB_SCREENSHOTS`` (default:
the test's tmp folder)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from test_app import seeded_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, trained_pair):
    with seeded_app(tmp_path_factory, trained_pair, "browserhome") as live:
        yield live[0]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("HUB_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        browser.close()


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def test_compare_in_the_browser(page, app_url, shots):
    page.goto(f"{app_url}/?tab=compare")
    text = textbox(page, "compare-text")
    text.wait_for(state="visible")
    assert "tiny/teacher" in textbox(page, "compare-a").input_value()
    assert "tiny/student" in textbox(page, "compare-b").input_value()
    text.fill("a lovely and fun film")
    page.click("#compare-run")
    stats = page.locator("#compare-stats")
    stats.get_by_text("KL(A‖B)").wait_for()
    for side in ("a", "b"):
        out = page.locator(f"#compare-out-{side}")
        assert out.get_by_text("positive").count() + out.get_by_text("negative").count() >= 2
    assert "latency A" in stats.inner_text()
    page.screenshot(path=str(shots / "compare.png"), full_page=True)

    page.click("#compare-copy")
    link = textbox(page, "compare-link")
    page.wait_for_function("(el) => el.value.includes('tab=compare')", arg=link.element_handle())
    assert "text=a+lovely" in link.input_value() or "text=a%20lovely" in link.input_value()


def test_shared_link_restores_the_inputs(page, app_url, shots):
    page.goto(f"{app_url}/?tab=compare&task=sst2&a={quote('tiny/student')}&b={quote('tiny/teacher')}"
              f"&text={quote('shared & <b>bold</b> text')}")
    text = textbox(page, "compare-text")
    page.wait_for_function("(el) => el.value.length > 0", arg=text.element_handle())
    assert text.input_value() == "shared & <b>bold</b> text"
    assert "tiny/student" in textbox(page, "compare-a").input_value()
    assert "tiny/teacher" in textbox(page, "compare-b").input_value()
    assert page.locator("#compare-text").is_visible()  # the Compare tab is the selected one
    page.locator("#compare-stats").get_by_text("KL(A‖B)").wait_for()  # the shared comparison runs by itself
    page.screenshot(path=str(shots / "shared-link.png"), full_page=True)


def test_bad_link_falls_back_with_a_notice(page, app_url, shots):
    page.goto(f"{app_url}/?tab=compare&a={quote('<img src=x onerror=alert(1)>')}&text={'x' * 2500}")
    notice = page.locator("#link-notice")
    notice.get_by_text("not on this server").wait_for()
    assert "onerror" not in notice.inner_text()
    assert "tiny/teacher" in textbox(page, "compare-a").input_value()  # the default pair
    assert textbox(page, "compare-text").input_value() == ""
    page.screenshot(path=str(shots / "bad-link.png"), full_page=True)


def test_leaderboard_tab(page, app_url, shots):
    page.goto(f"{app_url}/?tab=leaderboard&task=sst2")
    table = page.locator("#leaderboard-table")
    table.get_by_text("tiny/student").first.wait_for()
    assert table.get_by_text("tiny/teacher").count() >= 1
    page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)
