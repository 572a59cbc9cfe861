"""Make docs/ui.png, the README's screenshot of `sdhub ui`: the page in headless Chromium over a fake catalogue.

    .venv/bin/python docs/make_ui_png.py [OUT.png]

The same world as the browser tests (tests/ui_world.py): fake Civitai, LiblibAI and Hugging Face on 127.0.0.1, a
catalogue with a checkpoint, two LoRAs with sidecars and previews, and one
finished install; another is running when the picture is taken. Needs Debian's chromium and chromium-driver and selenium (the dev extra).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tests.browser import Browser, missing_browser  # noqa: E402
from tests.ui_world import ui_world  # noqa: E402


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "ui.png"
    reason = missing_browser()
    if reason:
        print(f"cannot make {out}: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="sdhub-ui-png-") as tmp, ui_world(Path(tmp), bulk=0) as world:
        browser = Browser(Path(tmp) / "shots")
        try:
            browser.driver.set_window_size(1400, 860)
            browser.open(world.url + "/#/installs")
            browser.find("#install-ref").send_keys("civitai:1001@2002")
            browser.find("#install-form button[type=submit]").click()
            browser.wait(lambda: browser.js("return document.querySelector('#jobs li').dataset.state") == "done")
            browser.find("#install-ref").send_keys("civitai:1002@2003")
            browser.find("#install-form button[type=submit]").click()
            browser.wait(lambda: "/s · ETA" in browser.js(
                "return (document.querySelector('#jobs li[data-state=downloading] .progress-line') || {}).textContent || ''"))
            browser.js("location.hash = '#/catalogue'")
            browser.wait(lambda: browser.js("return document.querySelector('#cards').dataset.detailsLoaded === '1'"))
            browser.js("window.scrollTo(0, 0)")
            time.sleep(0.3)
            browser.driver.save_screenshot(str(out))
        finally:
            browser.quit()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
