"""Headless Chromium for the page's tests: Debian's ``chromium`` and ``chromium-driver`` through selenium.

No browser is downloaded. Without them the tests skip with the reason, unless ``SDHUB_REQUIRE_BROWSER=1``
(set by .ci/run, which installs both) turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SDHUB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SDHUB_CHROMEDRIVER", "/usr/bin/chromedriver")
# Root in a container needs --no-sandbox; without the background-networking switches Chromium keeps
# calling Google's services, which a closed network answers with a flood of errors.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the dev extra)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} not found: apt-get install chromium chromium-driver ({package})"
    return None


def require_browser() -> None:
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("SDHUB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests must run here (SDHUB_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


class Browser:
    """One Chromium session; ``shot(name)`` saves a screenshot under ``shots``."""

    def __init__(self, shots: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="sdhub-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(30)
        self.shots = shots
        shots.mkdir(parents=True, exist_ok=True)

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait(lambda: self.js("return document.body.dataset.ready === '1'"), what="the page to start")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def texts(self, css: str) -> list[str]:
        return self.js("return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent.trim())", css)

    def wait(self, condition: Callable[[], Any], timeout: float = 20, what: str = "a condition") -> Any:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda _d: condition())
        except TimeoutException:
            self.shot("timeout")
            raise AssertionError(f"timed out waiting for {what}; page text: "
                                 f"{self.js('return document.body.innerText')[:1500]}") from None

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
