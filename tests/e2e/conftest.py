"""Shared by the e2e tests: `devkit serve` on free loopback ports (real emulators, the devkit's OpenID Connect
issuer with a key file of the module's own), and the system's chromium for the browser tests."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from devkit.emulators.launcher import free_port
from devkit.identity import KEYS_ENV

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_CHROMIUM = ("the browser tests drive the system's chromium and found none (CHROMIUM, /usr/bin/chromium, "
                    "PATH). Install it: Debian/Ubuntu `sudo apt-get install -y chromium`, Fedora `sudo dnf install "
                    "chromium`, macOS `brew install --cask chromium` and set CHROMIUM to its binary. Playwright's own "
                    "browsers are not used (never `playwright install`).")


def serve_devkit(log_path: Path, oidc_keys: Path, timeout_s: float = 60,
                 ports: tuple[int, int, int] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m devkit serve` (on `ports`: app, Azurite, Cosmos; default free ones) and wait for
    /api/health; returns the process and the base URL."""
    port, azurite_port, cosmos_port = ports or (free_port(), free_port(), free_port())
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process (stop_devkit)
    process = subprocess.Popen(
        [sys.executable, "-m", "devkit", "serve", "--port", str(port), "--azurite-port", str(azurite_port),
         "--cosmos-port", str(cosmos_port)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", KEYS_ENV: str(oidc_keys)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    stop_devkit(process)
    pytest.fail("devkit serve did not become healthy: " + log_path.read_text())


def stop_devkit(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def devkit_keys(tmp_path_factory) -> Path:
    """The module's own devkit signing key (not the developer's .devkit/oidc-keys.json)."""
    return tmp_path_factory.mktemp("oidc") / "oidc-keys.json"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, devkit_keys) -> Iterator[str]:
    process, url = serve_devkit(tmp_path_factory.mktemp("serve") / "serve.log", devkit_keys)
    yield url
    stop_devkit(process)


def chromium_path() -> str:
    """The system's chromium, or a failure that says what to install (the tests are never skipped for it)."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(INSTALL_CHROMIUM)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A page that may talk to the app only: a request to any other host is aborted and fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    local = urlsplit(live_server).netloc
    foreign: list[str] = []

    def guard(route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: print(f"console {message.type}: {message.text}")
            if message.type in ("error", "warning") else None)
    yield page
    context.close()
    assert not foreign, f"requests to other hosts: {foreign}"
    assert not errors, f"errors in the page: {errors}"
