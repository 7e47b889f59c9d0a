"""Fixtures of the end-to-end tests: the sandboxes a module's Platypush talks to (``serve``),
real Platypush processes (``launch``) and Debian's Chromium (``browser``, helpers in
``tests/e2e/panel.py``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from platypush_ext.sandbox.runner import PlatypushProcess, redis_server_binary
from tests.e2e import panel
from tests.support import Servers


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[..., Any]]:
    """Start sandbox servers for the whole module (``serve(MbedServer, api_key=KEY)``); stopped after it."""
    servers = Servers()
    yield servers.start
    servers.stop()


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PlatypushProcess]]:
    """Start a real Platypush for the whole module (``launch(config, "name", scripts=...)``, in a
    fresh run folder named after ``name``), ready when it returns; stopped (SIGINT) after the module,
    before the sandboxes of :func:`serve`. Skips without redis-server."""
    if not redis_server_binary():
        pytest.skip("redis-server is not installed (make test installs it)")
    started: list[PlatypushProcess] = []

    def start(config: dict[str, Any], name: str, **kwargs: Any) -> PlatypushProcess:
        process = PlatypushProcess(config, tmp_path_factory.mktemp(name), **kwargs)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by selenium (skipped without selenium or Chromium)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
    from selenium.webdriver.chrome.service import Service

    if not (panel.CHROMIUM and panel.CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed (make test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = panel.CHROMIUM
    for flag in panel.CHROMIUM_FLAGS.split():
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="platypush-ext-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    panel.SHOTS.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(panel.CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
