"""The page in headless Chromium against the real server and the fake sources: catalogue (paged over thousands of
rows), filters, previews, trigger words, search across the three sources, installs with live progress, cancel and
resume, an error on the card, a dropped workflow, a model's page, keyboard and themes.

Screenshots go to the module's tmp folder; what they show is checked through the page's DOM, never by pixels.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from tests.browser import Browser, require_browser  # noqa: E402
from tests.ui_world import World, ui_world  # noqa: E402

BULK = 3000  # rows in the catalogue besides the real files: the page must still hold one page only


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    require_browser()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SDHUB_RETRY_MAX_WAIT", "0.02")
        mp.setenv("SDHUB_RETRY_ATTEMPTS", "2")
        with ui_world(tmp_path_factory.mktemp("ui-browser"), bulk=BULK) as w:
            yield w


@pytest.fixture(scope="module")
def browser(world: World, tmp_path_factory: pytest.TempPathFactory):
    b = Browser(tmp_path_factory.mktemp("screenshots"))
    b.open(world.url + "/")
    yield b
    b.quit()


def go(browser: Browser, hash_: str) -> None:
    browser.js("location.hash = arguments[0]", hash_)
    browser.wait(lambda: browser.js("return document.body.dataset.currentView") == hash_.split("/")[1], what=hash_)


def cards_loaded(browser: Browser) -> None:
    browser.wait(lambda: browser.js("return document.querySelector('#catalogue-status').textContent") != "Loading…"
                 and browser.js("return document.querySelector('#cards').dataset.detailsLoaded === '1' ||"
                                " document.querySelectorAll('#cards li.card').length === 0"),
                 what="the catalogue page")


def filter_text(browser: Browser, text: str) -> None:
    browser.js("document.querySelector('#cards').dataset.detailsLoaded = ''")
    box = browser.find("#filter-text")
    box.clear()
    box.send_keys(text)
    browser.find("#filters button[type=submit]").click()
    browser.wait(lambda: all(text.lower() in n.lower() for n in browser.texts("#cards li.card .file-link")) and
                 browser.texts("#cards li.card .file-link"), what=f"cards matching {text!r}")
    cards_loaded(browser)


def test_catalogue_is_paged_over_thousands_of_files(browser: Browser, world: World) -> None:
    go(browser, "#/catalogue")
    cards_loaded(browser)
    names = browser.texts("#cards li.card .file-link")
    assert len(names) == 48  # one page, though the catalogue holds BULK + 3 files
    assert browser.js("return document.querySelectorAll('li.card').length") == 48
    assert browser.find("#page-info").text == "Page 1" and browser.find("#prev-page").get_attribute("disabled")
    browser.find("#next-page").click()
    browser.wait(lambda: browser.find("#page-info").text == "Page 2", what="page 2")
    cards_loaded(browser)
    second = browser.texts("#cards li.card .file-link")
    assert len(second) == 48 and not set(second) & set(names)
    assert browser.find("#catalogue-status").text == "Files 49–96"
    browser.shot("catalogue-page-2")


def test_filters_previews_badges_and_trigger_words(browser: Browser, world: World) -> None:
    go(browser, "#/catalogue")
    filter_text(browser, "neon")
    cards = {c.get_attribute("data-sha256"): c for c in browser.find_all("#cards li.card")}
    assert set(cards) == {world.catalogued["lora"], world.catalogued["nsfw_lora"]}
    lora = f'#cards li[data-sha256="{world.catalogued["lora"]}"]'
    facts = browser.find(f"{lora} .facts").text
    assert "sdxl" in facts and "lora" in facts
    fits = browser.find(f"{lora} .badge.fits")
    assert fits.get_attribute("data-count") == "1" and "juggernaut-xl.safetensors" in fits.text
    assert browser.find(f"{lora} .preview-toggle img").get_attribute("src").endswith(
        f"/ui/preview/{world.catalogued['lora']}")
    assert "blurred" not in browser.find(f"{lora} .preview-toggle").get_attribute("class")
    evidence = browser.texts(f"{lora} .evidence li")
    assert any("family" in e and "2048" in e for e in evidence)
    # The NSFW model's preview is blurred at the default PG level until clicked.
    night = f'#cards li[data-sha256="{world.catalogued["nsfw_lora"]}"] .preview-toggle'
    assert "blurred" in browser.find(night).get_attribute("class")
    browser.shot("catalogue-neon")
    browser.find(night).click()
    assert "blurred" not in browser.find(night).get_attribute("class")
    # Trigger words copy on click.
    words = browser.find_all(f"{lora} .words .word")
    assert [w.text for w in words] == ["neonglow", "glowing lines"]
    words[0].click()
    browser.wait(lambda: browser.js("return document.body.dataset.lastCopied") == "neonglow", what="the copy")
    # Kind filter: the checkpoint alone (the thousands of bulk rows are LoRAs).
    browser.find("#filter-text").clear()
    browser.js("document.querySelector('#cards').dataset.detailsLoaded = ''")
    from selenium.webdriver.support.ui import Select

    Select(browser.find("#filter-kind")).select_by_value("checkpoint")
    browser.wait(lambda: browser.texts("#cards li.card .file-link") == ["juggernaut-xl.safetensors"],
                 what="the checkpoint alone")
    cards_loaded(browser)
    addons = browser.find("#cards li.card .badge.fits").text
    assert "fits 2 add-ons" in addons and "neon-glow.safetensors" in addons
    Select(browser.find("#filter-kind")).select_by_value("")
    cards_loaded(browser)


def test_search_then_install_with_live_progress(browser: Browser, world: World) -> None:
    go(browser, "#/search")
    browser.find("#search-q").send_keys("pixel")
    browser.find("#search-form button[type=submit]").click()
    browser.wait(lambda: len(browser.find_all("#search-results li.result")) == 6, what="six results")
    results = {r.get_attribute("data-ref"): r for r in browser.find_all("#search-results li.result")}
    assert {r.get_attribute("data-source") for r in results.values()} == {"civitai", "hf", "liblib"}
    early = results["civitai:1003@2004"]
    assert "early access until 2099-01-01" in early.text and "paid" in early.text
    assert "claims base model: SDXL 1.0 (sdxl)" in results["civitai:1001@2002"].text
    browser.shot("search")
    slow = '#search-results li[data-ref="civitai:1002@2003"]'
    browser.find(f"{slow} .install-btn").click()
    live = re.compile(r"downloading · [\d.]+ (KiB|MiB) of 1\.2 MiB \((\d+)%\) · [\d.]+ (B|KiB|MiB)/s · ETA \d+ s")

    def progress_line() -> str:
        return browser.js(f"const e = document.querySelector('{slow} .progress-line'); return e ? e.textContent : ''")

    browser.wait(lambda: live.fullmatch(progress_line()), what="bytes, speed and ETA")
    assert 0 < int(live.fullmatch(progress_line()).group(2)) < 100
    assert world.civitai.storage.url.split("//")[1] in browser.find(f"{slow} .served-by").text
    browser.shot("installing")
    browser.wait(lambda: browser.js(f"return document.querySelector('{slow} .job-body').dataset.state") == "done",
                 timeout=30, what="the install to finish")
    steps = browser.texts(f"{slow} .steps li")
    assert any(s.startswith("verified against civitai's published") for s in steps)
    assert "identified: sdxl lora" in steps
    assert any(s.startswith("registered at ") for s in steps)
    sha = hashlib.sha256(world.files["slow"]).hexdigest()
    assert browser.find(f"{slow} a.open-file").get_attribute("href").endswith(f"#/file/{sha}")
    assert world.hub.catalogue.by_hash(sha)
    # The Installs view lists the same job, done.
    go(browser, "#/installs")
    assert browser.find('#jobs li[data-ref="civitai:1002@2003"]').get_attribute("data-state") == "done"


def test_an_error_is_one_line_on_the_card(browser: Browser, world: World) -> None:
    go(browser, "#/search")
    early = '#search-results li[data-ref="civitai:1003@2004"]'
    browser.find(f"{early} .install-btn").click()
    browser.wait(lambda: browser.find_all(f"{early} .job-error"), what="the error line")
    text = browser.js(f"return document.querySelector('{early} .job-error').textContent")
    assert "\n" not in text and "early access" in text.lower()
    assert browser.find(f"{early} .retry-btn").text == "Try again"
    browser.shot("install-error")


def test_cancel_then_resume(browser: Browser, world: World) -> None:
    go(browser, "#/installs")
    browser.find("#install-ref").send_keys("civitai:1005@2006")
    browser.find("#install-form button[type=submit]").click()
    job = '#jobs li[data-ref="civitai:1005@2006"]'
    browser.wait(lambda: browser.find_all(job) and browser.find(job).get_attribute("data-state") == "downloading"
                 and browser.js(f"return document.querySelector('{job} progress').value") > 100_000, what="downloading")
    browser.find(f"{job} .cancel-btn").click()
    browser.wait(lambda: browser.find(job).get_attribute("data-state") == "cancelled", what="cancelled")
    assert "partial download is kept" in browser.find(f"{job} .steps").text
    browser.find(f"{job} .retry-btn").click()  # "Resume"
    browser.wait(lambda: browser.find(job).get_attribute("data-state") == "done", timeout=30, what="resumed to the end")
    assert browser.find(f"{job} .resumed").text.startswith("resumed from ")
    browser.shot("resumed")


def test_drop_a_workflow_and_install_what_is_missing(browser: Browser, world: World) -> None:
    go(browser, "#/resources")
    browser.js("""
        const dt = new DataTransfer();
        dt.items.add(new File([arguments[0]], "castle workflow.json", {type: "application/json"}));
        document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    """, json.dumps(world.workflow()))
    browser.wait(lambda: len(browser.find_all("#resources-body tr")) == 3, what="three resources")
    states = {r.find_element("css selector", "td:nth-child(2)").text: r.get_attribute("data-state")
              for r in browser.find_all("#resources-body tr")}
    assert states == {"juggernaut-xl.safetensors": "have", "pixel-art-xl.safetensors": "fetchable",
                      "mystery-style.safetensors": "unknown"}
    assert "castle workflow.json" in browser.find("#resources-status").text
    browser.shot("resources")
    row = '#resources-body tr[data-state="fetchable"]'
    browser.find(f"{row} .install-btn").click()
    browser.wait(lambda: browser.js(f"return (document.querySelector('{row} .job-body') || {{}}).dataset?.state") == "done",
                 timeout=30, what="the workflow's LoRA installed")
    assert world.hub.catalogue.by_hash(hashlib.sha256(world.files["pixel"]).hexdigest())


def test_a_models_page_hashes_sources_notes_and_fits(browser: Browser, world: World) -> None:
    sha = world.catalogued["lora"]
    go(browser, f"#/file/{sha}")
    browser.wait(lambda: browser.find_all('#file-body dd[data-hash="sha256"]'), what="the file page")
    assert browser.find('#file-body dd[data-hash="sha256"]').text == sha
    assert {b.get_attribute("data-hash") for b in browser.find_all("#file-body .copy-hash")} >= {
        "sha256", "autov1", "autov2", "autov3", "crc32", "blake3"} - {"autov1"}
    browser.find('#file-body .copy-hash[data-hash="sha256"]').click()
    browser.wait(lambda: browser.js("return document.body.dataset.lastCopied") == sha, what="the hash copied")
    assert "juggernaut-xl.safetensors" in browser.find("#file-body .fits-list").text
    assert "works best at 0.7" in browser.find("#file-body dl.notes").text
    browser.shot("file-page")


def test_keyboard_reaches_the_controls_and_both_themes_read(browser: Browser, world: World) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    go(browser, "#/catalogue")
    cards_loaded(browser)
    browser.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    reached = []
    for _ in range(40):
        ActionChains(browser.driver).send_keys(Keys.TAB).perform()
        reached.append(browser.js("const a = document.activeElement; return a.id || a.className || a.tagName"))
    for wanted in ("filter-text", "filter-kind", "check-updates", "file-link"):
        assert wanted in reached, reached
    from selenium.webdriver.support.ui import Select

    for theme, dark in (("dark", True), ("light", False)):
        Select(browser.find("#theme")).select_by_value(theme)
        assert browser.js("return document.documentElement.dataset.theme") == theme
        bg = browser.js("return getComputedStyle(document.body).backgroundColor")
        fg = browser.js("return getComputedStyle(document.body).color")
        level = lambda c: sum(int(x) for x in c[c.index("(") + 1:c.index(")")].split(",")[:3])  # noqa: E731
        assert (level(bg) < level(fg)) == dark, (theme, bg, fg)
        browser.shot(f"theme-{theme}")
