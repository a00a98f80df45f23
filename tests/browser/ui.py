"""A thin driver for the console's pages in Chromium (Selenium), with numbered screenshots."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

T = TypeVar("T")
COOKIE = "cems_console"


class Screenshots:
    """``<dir>/NN-step.png``, numbered in the order taken."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.taken: list[Path] = []

    def take(self, driver: WebDriver, step: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{len(self.taken) + 1:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '-', step)}.png"
        assert driver.save_screenshot(str(path)), f"screenshot {path} not saved"
        self.taken.append(path)
        return path


class ConsolePage:
    def __init__(self, driver: WebDriver, base_url: str, shots: Screenshots) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        #: seconds each page took to load, by path (the last load)
        self.load_s: dict[str, float] = {}

    # -- navigation ------------------------------------------------------------------------
    def open(self, path: str) -> None:
        began = time.monotonic()
        self.driver.get(self.base_url + path)
        self.load_s[path] = time.monotonic() - began

    def shot(self, step: str) -> Path:
        return self.shots.take(self.driver, step)

    def login(self, username: str, password: str) -> None:
        self.open("/login")
        self.by_id("username").send_keys(username)
        self.by_id("password").send_keys(password)
        self.by_id("login").click()
        self.wait_for(lambda: self.path() != "/login" and self.find("whoami"), f"{username} logged in")

    def logout(self) -> None:
        if self.find("logout") is None:  # an error page has no menu
            self.open("/cases")
        self.by_id("logout").click()
        self.wait_for(lambda: self.path() == "/login", "back on the login page")

    # -- reading ---------------------------------------------------------------------------
    def path(self) -> str:
        url = self.driver.current_url
        return "/" + url.split("/", 3)[3].split("?")[0] if url.count("/") >= 3 else url

    def find(self, element_id: str) -> WebElement | None:
        try:
            return self.driver.find_element(By.ID, element_id)
        except NoSuchElementException:
            return None

    def by_id(self, element_id: str) -> WebElement:
        found = self.find(element_id)
        assert found is not None, f"no #{element_id} on {self.driver.current_url}:\n{self.body()[:2000]}"
        return found

    def text(self, element_id: str) -> str:
        return self.by_id(element_id).text.strip()

    def body(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def case_ids(self) -> list[int]:
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#cases tbody tr[data-case]")
        return [int(r.get_attribute("data-case") or 0) for r in rows]

    def table(self, element_id: str) -> list[list[str]]:
        rows = self.driver.find_elements(By.CSS_SELECTOR, f"#{element_id} tbody tr")
        return [[td.text.strip() for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]

    def wait_for(self, probe: Callable[[], T], what: str, timeout_s: float = 20.0, reload: bool = False) -> T:
        deadline = time.monotonic() + timeout_s
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what} on {self.driver.current_url}")
            time.sleep(0.25)
            if reload:
                self.driver.refresh()

    # -- the same session outside the browser (status codes, forged requests) ----------------
    def http(self) -> httpx.Client:
        """An HTTP client carrying this browser's session cookie (redirects not followed)."""
        cookie = self.driver.get_cookie(COOKIE)
        assert cookie is not None, "the browser has no session cookie"
        return httpx.Client(base_url=self.base_url, cookies={COOKIE: cookie["value"]}, timeout=15)
