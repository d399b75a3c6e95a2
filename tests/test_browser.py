"""The app in a real browser (Playwright + Debian's Chromium): a comparison in the
Compare tab, an empty or oversized text answered by one message while the last
result stays, a shared link restoring its inputs, a bad link falling back with a
notice, the Leaderboard's filters, run card, plot and link, and the Distill tab's
estimate. Screenshots go to ``$HUB_SCREENSHOTS`` (default: ``screenshots/`` in
the repository, git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from test_app import REPO, seeded_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory, tiny_pair):
    """(url, hub home, ...) of the app the browser tests use (see ``test_app.seeded_app``)."""
    with seeded_app(tmp_path_factory, tiny_pair, "browserhome") as live:
        yield live


@pytest.fixture(scope="module")
def app_url(live_app):
    return live_app[0]


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(os.environ.get("HUB_SCREENSHOTS") or REPO / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        browser.close()


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def cells(table, text: str):
    """Visible table cells holding ``text`` (the grid also keeps hidden copies of its cells)."""
    return table.get_by_role("gridcell").filter(has_text=text)


def toasts(page):
    return page.locator("[data-testid='toast-body']")


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


def test_empty_or_long_text_gives_one_message_and_keeps_the_result(page, app_url, shots):
    """Issue 8 item 11: one friendly message, no error badge on each output, the last result kept;
    an oversized text is refused with its length (the box never cuts it silently)."""
    stats = page.locator("#compare-stats")
    before = stats.inner_text()
    assert "KL(A‖B)" in before  # the previous test's result
    text = textbox(page, "compare-text")
    text.fill("")
    page.click("#compare-run")
    toasts(page).get_by_text("Type a text first").wait_for()
    page.wait_for_timeout(500)
    assert toasts(page).count() == 1
    assert page.locator("#compare-out-a, #compare-out-b, #compare-stats").get_by_text("Error").count() == 0
    assert stats.inner_text() == before
    page.screenshot(path=str(shots / "compare-empty-text.png"), full_page=True)
    text.fill("y" * 2100)
    assert len(text.input_value()) == 2100  # not cut by the box
    page.click("#compare-run")
    toasts(page).get_by_text("2,100 characters; the limit is 2,000").wait_for()
    assert stats.inner_text() == before


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
    page.goto(f"{app_url}/?tab=leaderboard&task=sst2&protocol=full&ranked=1")
    table = page.locator("#leaderboard-table")
    cells(table, "student-tl3").first.wait_for()
    assert cells(table, "tiny/student").count() == 0  # filtered: the full protocol only
    assert page.locator("#leaderboard-ranked input").is_checked()
    page.locator("#leaderboard-plot canvas, #leaderboard-plot svg").first.wait_for()
    page.click("#leaderboard-copy")
    link = textbox(page, "leaderboard-link")
    page.wait_for_function("(el) => el.value.includes('tab=leaderboard')", arg=link.element_handle())
    assert "ranked=1" in link.input_value() and "protocol=full" in link.input_value()
    cells(table, "student-tl3").first.click()
    page.locator("#leaderboard-card").get_by_text("…/runs/student-tl3").first.wait_for()
    page.screenshot(path=str(shots / "leaderboard-full.png"), full_page=True)

    page.goto(f"{app_url}/?tab=leaderboard&task=sst2")
    cells(table, "tiny/student").first.wait_for()
    assert cells(table, "student-tl3").count() == 1 and cells(table, "97.5").count() == 1  # retention, in %
    page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)


def test_leaderboard_marks_a_qa_row_scored_at_an_old_threshold(page, live_app, shots, tmp_path):
    """A QA model calibrated after its benchmark: its row says "⚠ old threshold" in the
    table, the table's title says what that means, and its run card leads with the note."""
    import json

    from hub.leaderboard import LeaderboardStore

    url, home = live_app[0], live_app[1]
    folder = tmp_path / "qa-student"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"task": "squad", "eval_options": {"null_threshold": -1.5}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_HOME", str(home))
        store = LeaderboardStore()
        row_id = store.add({"model": str(folder), "name": "qa-student", "task": "squad", "role": "student",
                            "quantization": "fp32", "runtime": "torch", "protocol": "full", "hardware": "cpu | 2",
                            "status": "finished", "f1": 27.5, "latency_p50_ms": 9.0,
                            "run_card": {"task": "squad", "eval_options": {}}})
        try:
            page.goto(f"{url}/?tab=leaderboard&task=squad")
            table = page.locator("#leaderboard-table")
            cells(table, "qa-student ⚠ old threshold").first.wait_for()
            page.get_by_text("⚠ old threshold: EM/F1 made at a \"no answer\" threshold").first.wait_for()
            cells(table, "qa-student").first.click()
            page.locator("#leaderboard-card").get_by_text("the model's is -1.5 now (calibrated since)").first.wait_for()
            page.screenshot(path=str(shots / "leaderboard-old-threshold.png"), full_page=True)
        finally:
            store.delete(row_id)


def test_the_page_opens_on_compare_and_keeps_what_was_typed_before_the_load(page, app_url, monkeypatch):
    """Compare shows before the page's load event has answered: text typed meanwhile survives it."""
    import time

    from ui import links

    restore = links.restore
    monkeypatch.setattr(links, "restore", lambda request: time.sleep(3) or restore(request))
    page.goto(app_url)
    assert page.get_by_role("tab", name="Compare").get_attribute("aria-selected") == "true"
    text = textbox(page, "compare-text")
    text.wait_for(state="visible")
    text.fill("typed before the load")
    page.wait_for_timeout(5000)  # the load (3 s late) has answered by now
    assert text.input_value() == "typed before the load"


def test_distill_tab_shows_the_estimate_and_its_basis(page, app_url, shots):
    page.goto(f"{app_url}/?tab=distill")
    estimate = page.locator("#distill-estimate")
    estimate.get_by_text("Estimated time").wait_for()
    assert "basis:" in estimate.inner_text()
    page.screenshot(path=str(shots / "distill.png"), full_page=True)


def test_distill_settings_change_the_estimate_without_an_error(page, app_url, shots):
    """Every field of the form goes to the server with each change: an empty optional
    number (prune feed-forward to) must not be refused (the browser sends it as 0), and
    data augmentation shows as its own phase and grows the distillation."""
    page.goto(f"{app_url}/?tab=distill")
    estimate = page.locator("#distill-estimate")
    estimate.get_by_text("Estimated time").wait_for()
    page.get_by_text("Settings", exact=True).click()
    before = estimate.inner_text()
    augment = page.get_by_role("spinbutton", name="data augmentation (copies per example)")
    augment.fill("2")
    augment.press("Enter")
    estimate.get_by_text("augment the training data").wait_for()
    assert toasts(page).count() == 0
    passes = [int(part.split(" example-passes")[0].split()[-1].replace(",", ""))
              for part in (before, estimate.inner_text())]
    assert passes[1] == pytest.approx(passes[0] * (1 + 2 * 0.73), rel=0.01)
    page.screenshot(path=str(shots / "distill-augment.png"), full_page=True)


def test_distill_qa_upload_asks_for_squad_json_and_hides_the_columns(page, app_url, shots):
    """Picking extractive QA: the upload takes SQuAD JSON (its hint says so), the column
    fields (tables only) hide, the window is the CLI's 384 tokens, and the cloze questions
    (with their noisy share and made negatives, which the estimate counts) and the "no
    answer" calibration (QA only) show, each a phase of the estimate."""
    page.goto(f"{app_url}/?tab=distill")
    page.locator("#distill-estimate").get_by_text("Estimated time").wait_for()
    columns = page.get_by_label("text column")
    assert columns.is_visible()
    task = page.get_by_role("combobox", name="Task").first
    task.fill("squad")
    task.press("Enter")
    columns.wait_for(state="hidden")
    page.get_by_text("Upload a file", exact=True).click()
    page.get_by_text("SQuAD JSON v1.1 or v2.0").wait_for()
    page.get_by_text("Settings", exact=True).click()
    assert page.get_by_role("spinbutton", name="max length").input_value() == "384"
    cloze = page.get_by_role("spinbutton", name="cloze questions (per paragraph)")
    noisy = page.get_by_role("spinbutton", name="noisy cloze share")
    negatives = page.get_by_role("spinbutton", name="made negatives (per question)")
    assert noisy.is_disabled() and negatives.is_disabled()  # they shape cloze questions: none yet
    cloze.fill("2")  # QA's transfer set of cloze questions: a phase of its own in the estimate
    cloze.press("Tab")
    page.locator("#distill-estimate").get_by_text("make cloze questions").wait_for()
    noisy.fill("0.5")  # a share of them in the noisy form: the estimate's request accepts it
    noisy.press("Tab")
    page.wait_for_timeout(1000)
    assert toasts(page).count() == 0 and noisy.input_value() == "0.5"
    before = page.locator("#distill-estimate").inner_text()
    negatives.fill("1")  # unanswerable copies of the training questions: more prediction-stage questions
    negatives.press("Tab")
    page.wait_for_function("b => document.querySelector('#distill-estimate').innerText !== b", arg=before)
    assert toasts(page).count() == 0 and negatives.input_value() == "1"
    calibrate = page.get_by_role("checkbox", name='calibrate "no answer" to the teacher')
    calibrate.check()  # the student's null threshold calibrated after training: a phase of its own too
    page.locator("#distill-estimate").get_by_text('calibrate "no answer" to the teacher').wait_for()
    assert toasts(page).count() == 0
    page.get_by_text("Average students (model soup)").click()  # a QA soup can be calibrated too
    soup_calibrate = page.locator("#soup-calibrate")
    soup_calibrate.get_by_text('calibrate "no answer" to the teacher').wait_for()
    page.screenshot(path=str(shots / "distill-qa-upload.png"), full_page=True)
    task.fill("sst2")
    task.press("Enter")
    cloze.wait_for(state="hidden")  # extractive QA only
    noisy.wait_for(state="hidden")
    negatives.wait_for(state="hidden")
    calibrate.wait_for(state="hidden")
    soup_calibrate.wait_for(state="hidden")
    page.get_by_text("Average students (model soup)").click()


def test_distill_arithmetic_fields_go_with_the_job(page, app_url, shots):
    """bf16 and no attention dropout are picked in the form's Settings and reach the job's parameters (the
    estimate's request carries the whole form: it must accept them without an error)."""
    page.goto(f"{app_url}/?tab=distill")
    estimate = page.locator("#distill-estimate")
    estimate.get_by_text("Estimated time").wait_for()
    page.get_by_text("Settings", exact=True).click()
    page.locator("#distill-attention-dropout input").click()
    page.locator("ul[role=listbox] li").filter(has_text="0 (faster)").click()
    page.locator("#distill-precision input").click()
    page.locator("ul[role=listbox] li").filter(has_text="bf16").click()
    page.wait_for_timeout(1500)
    assert toasts(page).count() == 0 and "Estimated time" in estimate.inner_text()
    assert page.locator("#distill-precision input").input_value() == "bf16"
    assert page.locator("#distill-attention-dropout input").input_value() == "0 (faster)"
    page.screenshot(path=str(shots / "distill-arithmetic.png"), full_page=True)


def test_distill_averages_two_students_into_a_soup(page, live_app, shots):
    """Average students: the section lists the task's finished students with their scores, a pick of two is
    queued as a soup job, which the run column follows to its outcome (the students' score range beside the
    soup's)."""
    import shutil

    import json

    from conftest import make_sentences, write_tsv

    url, home = live_app[0], live_app[1]
    evals = home / "data" / "validation.tsv"
    write_tsv(evals, make_sentences(40, seed=2))
    for job in ("tiny", "tiny2"):  # a second "seed"; both scored on one evaluation file, as jobs record it
        folder = home / "models" / job / "student"
        if job == "tiny2":
            shutil.copytree(home / "models" / "tiny" / "student", folder)
        card = json.loads((folder / "run.json").read_text())
        card["data"] = {"kind": "files", "eval_file": str(evals), "eval_size": 40}
        (folder / "run.json").write_text(json.dumps(card))
    page.goto(f"{url}/?tab=distill")
    page.locator("#distill-estimate").get_by_text("Estimated time").wait_for()
    page.get_by_text("Average students (model soup)").click()
    page.get_by_text("Students distilled from one start").wait_for()
    for key in ("tiny/student", "tiny2/student"):
        page.locator("#soup-models input").click()
        page.locator("ul[role=listbox] li").filter(has_text=key).first.click()
    page.locator("#soup-estimate").get_by_text("Estimated time").wait_for()  # before it starts, phase by phase
    assert "average the weights" in page.locator("#soup-estimate").inner_text()
    # a greedy soup: chosen on an uploaded held-out file (here by its labels); its passes are estimated too
    select = home / "data" / "select.tsv"
    write_tsv(select, make_sentences(30, seed=5))
    page.locator("#soup-greedy input").check()
    page.locator("#soup-select-file input[type=file]").set_input_files(str(select))
    page.locator("#soup-select-teacher input").uncheck()
    page.locator("#soup-estimate").get_by_text("choose the students on the selection file").wait_for()
    textbox(page, "soup-name").fill("tiny soup")
    page.click("#soup-start")
    progress = page.locator("#distill-progress")
    progress.get_by_text("Done: finished in").wait_for(timeout=240_000)
    result = page.locator("#distill-result")
    result.get_by_text("chosen greedily among 2").wait_for()  # two copies: the second does not lower the score
    assert "the average of 2 students" in result.inner_text()
    assert "tiny-soup/student — finished · accuracy " in result.inner_text()  # scored on the students' file
    assert (home / "models" / "tiny-soup" / "student" / "model.safetensors").is_file()
    page.screenshot(path=str(shots / "distill-soup.png"), full_page=True)
