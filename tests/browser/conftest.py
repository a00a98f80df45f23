"""Browser tests: a real ``cems console serve`` process against the real Kafka and PostgreSQL,
driven through Debian's headless Chromium by Selenium.

Chromium and its driver are taken from fixed paths (``/usr/bin/chromium``,
``/usr/bin/chromedriver``; ``CEMS_CHROMIUM`` / ``CEMS_CHROMEDRIVER`` to change them) and
Selenium Manager is kept offline, so nothing is ever downloaded. Screenshots of every step go to
``$CEMS_TEST_ARTIFACTS/screenshots/<test>/NN-step.png`` (default ``.cems/test-artifacts``,
ignored by git); a failing test also leaves ``NN-failure.png``, the page's HTML and the
console's log there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from cems.infra.settings import REPO_ROOT, InfraSettings
from cems.topics import ensure_topics
from console import migrate
from console.db import make_engine
from console.demo import ensure_demo_users
from console.store import CaseStore
from contracts.registry import load_registry
from contracts.topics import topics
from rules.cases.policy import CasePolicy
from tests.integration.helpers import free_port, infra_env

from .ui import ConsolePage, Screenshots

CHROMIUM = Path(os.environ.get("CEMS_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CEMS_CHROMEDRIVER", "/usr/bin/chromedriver"))
DEMO_PASSWORD = "browser-test-Pw-7731"
#: the verification window elapses at once, so closing as verified can be tested honestly: the
#: button stays disabled while the alert is open and enables only after its resolved event
POLICY_YAML = "version: 1\nkinds:\n  exceedance: {verify_days: 0, response_days: 5}\n"
FAILED = pytest.StashKey[bool]()
_SHOT_DIRS: list[Path] = []


def artifacts_dir() -> Path:
    return Path(os.environ.get("CEMS_TEST_ARTIFACTS") or REPO_ROOT / ".cems" / "test-artifacts")


@pytest.fixture(scope="session", autouse=True)
def _chromium_present() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    if not missing:
        return
    message = (
        f"browser tests need Debian's chromium and chromium-driver; not found: {', '.join(missing)}. "
        "Install them with `sudo apt-get install chromium chromium-driver` (scripts/bootstrap.sh does; "
        "CI installs them that way, so there these tests must run, never skip)"
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    if getattr(report, "failed", False):
        item.stash[FAILED] = True
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for directory in _SHOT_DIRS:
        count = len(list(directory.glob("*.png")))
        terminalreporter.write_line(f"browser screenshots: {directory} ({count} files)")


@dataclass
class ConsoleServer:
    url: str
    namespace: str
    alerts_topic: str
    password: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


@pytest.fixture
def console_server(infra: InfraSettings, postgres_url: str, unique: str, tmp_path: Path) -> Iterator[ConsoleServer]:
    """A real `cems console serve` in its own topic namespace and PostgreSQL database, with the
    demo accounts (password ``DEMO_PASSWORD``) and a policy whose verification window is 0 days."""
    namespace = f"b{unique}"
    topic_set = topics(namespace)
    ensure_topics(infra.kafka_bootstrap, topic_set.all())
    engine = make_engine(postgres_url)
    try:
        migrate.upgrade(engine)
        ensure_demo_users(CaseStore(engine, CasePolicy(), {}), load_registry(), DEMO_PASSWORD)
    finally:
        engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    port = free_port()
    log_path = tmp_path / "console.log"
    env = {**os.environ, **infra_env(infra), "CEMS_CONSOLE_POLICY": str(policy)}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cems.cli", "console", "serve", "--port", str(port),
             "--database-url", postgres_url, "--namespace", namespace],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
        )  # fmt: skip
    server = ConsoleServer(f"http://127.0.0.1:{port}", namespace, topic_set.alerts.name, DEMO_PASSWORD, log_path, proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"cems console serve exited {proc.returncode}:\n{server.tail()}"
            try:
                if httpx.get(server.url + "/healthz", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"console not healthy in 60 s:\n{server.tail()}"
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    """This test's screenshot folder, emptied first (a rerun does not mix with the last one)."""
    directory = artifacts_dir() / "screenshots" / request.node.name
    shutil.rmtree(directory, ignore_errors=True)
    _SHOT_DIRS.append(directory)
    print(f"screenshots: {directory}")
    return Screenshots(directory)


def chromium() -> webdriver.Chrome:
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1024", "--lang=en-US", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture
def page(request: pytest.FixtureRequest, console_server: ConsoleServer, shots: Screenshots) -> Iterator[ConsolePage]:
    """Headless Chromium on the console; on failure its last screen, HTML and the console's log
    are kept beside the screenshots."""
    driver = chromium()
    try:
        yield ConsolePage(driver, console_server.url, shots)
        if request.node.stash.get(FAILED, False):
            shots.take(driver, "failure")
            (shots.directory / "failure.html").write_text(driver.page_source)
            shutil.copy(console_server.log_path, shots.directory / "console.log")
    finally:
        driver.quit()
