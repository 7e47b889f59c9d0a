"""Fixtures shared by every test (each service's own are in ``tests/<service>/conftest.py``,
the end-to-end ones in ``tests/e2e/conftest.py``; helpers in ``tests/support.py``).

Platypush's ``Config`` is initialised here, at import time, with a throw-away
configuration, so that no test touches ``/etc/platypush`` or ``/var/lib/platypush``. Its
Redis (``redis:``) is a closed port: a test that reaches Platypush's Redis without asking
for one (:func:`entity_registry_redis`, :func:`redis_bus`) fails at once instead of
talking to whatever listens on 6379.
"""

from __future__ import annotations

import os
import signal
import tempfile
from typing import Any, Callable, Iterator

import pytest

# A suite started in the background by a script (``nohup make test &``) inherits SIGINT ignored, and
# so would every process it starts: Platypush and the sandbox's command line would then not stop on
# the SIGINT that stops them cleanly (they were SIGKILLed after their time limits). Python's own
# handler again; what the suite starts inherits the default.
signal.signal(signal.SIGINT, signal.default_int_handler)

_STATE = tempfile.mkdtemp(prefix="platypush-ext-tests-")
_CONFIG = os.path.join(_STATE, "config.yaml")
with open(_CONFIG, "w") as f:
    f.write(f"device_id: unit-tests\nworkdir: {_STATE}/workdir\ncachedir: {_STATE}/cache\n")

from platypush.config import Config  # noqa: E402

Config.init(_CONFIG)
Config._get_instance()._config["redis"] = {"host": "127.0.0.1", "port": 1}  # closed: see above

import platypush.context  # noqa: E402
from platypush.bus.redis import RedisBus  # noqa: E402

from platypush_ext.sandbox.core import take_failures  # noqa: E402
from tests.support import Listener, RecordingBus, RedisServer, Servers, fail_on_sandbox_bugs  # noqa: E402


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> RecordingBus:
    """Replace Platypush's bus with a :class:`RecordingBus`."""
    recording = RecordingBus()
    monkeypatch.setattr(platypush.context.get_context(), "bus", recording)
    return recording


@pytest.fixture
def workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """A fresh Platypush workdir for this test."""
    path = str(tmp_path / "workdir")
    os.makedirs(path)
    monkeypatch.setitem(Config._get_instance()._config, "workdir", path)
    return path


@pytest.fixture(autouse=True)
def sandbox_handlers_did_not_fail(request: pytest.FixtureRequest) -> Iterator[None]:
    """A sandbox handler that raised (a bug, answered 500) fails the test that caused it
    (unless the test is marked ``sandbox_bug``: it causes one on purpose)."""
    take_failures()
    yield
    fail_on_sandbox_bugs(expected=request.node.get_closest_marker("sandbox_bug") is not None)


@pytest.fixture
def server(request: pytest.FixtureRequest, start_server: Callable[..., Any]) -> Any:
    """The sandbox server the test talks to, as its ``sandbox`` mark says (on the module, or on
    the test, which wins): ``pytest.mark.sandbox(cls=MbedServer, api_key=KEY, pull_timeout=0.5)``."""
    marker = request.node.get_closest_marker("sandbox")
    if marker is None or "cls" not in marker.kwargs:
        raise pytest.UsageError(f"{request.node.nodeid}: the server fixture needs a sandbox(cls=...) mark")
    options = dict(marker.kwargs)
    return start_server(options.pop("cls"), **options)


@pytest.fixture
def start_server() -> Iterator[Callable[..., Any]]:
    """Start sandbox servers (``start_server(PushjetServer, **kwargs)``); stopped after the test."""
    servers = Servers()
    yield servers.start
    servers.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` (for Platypush's real ``RedisBus``), shared by the session."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def entity_registry_redis(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> int:
    """Platypush's Redis (``Config["redis"]``) is :func:`redis_server`: an entity manager (the
    ``mbed`` plugin) registers itself there when it is created, as inside Platypush. Every test
    that creates an ``MbedPlugin`` asks for it (``pytest.mark.usefixtures``)."""
    monkeypatch.setitem(Config._get_instance()._config, "redis", {"host": "127.0.0.1", "port": redis_server.port})
    return redis_server.port


@pytest.fixture
def redis_bus(bus: RecordingBus, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> RedisBus:
    """Platypush's real Redis bus on :func:`redis_server` (replacing the recording one), with
    nobody subscribed yet (Platypush's main loop not listening)."""
    real = RedisBus(host="127.0.0.1", port=redis_server.port)
    monkeypatch.setattr(platypush.context.get_context(), "bus", real)
    return real


@pytest.fixture
def listener(redis_server: RedisServer) -> Iterator[Listener]:
    """Platypush's own bus loop subscribed to :func:`redis_server`'s bus; closed after the test."""
    started = Listener(redis_server.port)
    yield started
    started.close()


@pytest.fixture(scope="module")
def entities_db() -> None:
    """Platypush's entities tables in the tests' workdir (its migrations and models, as at start-up);
    each test keeps to a ``plugin`` name of its own (the database is shared). Every entity module is
    imported first: Platypush's discovery re-runs them in module objects of its own, and a module
    imported only after it would lack its classes (they are "defined" already)."""
    import contextlib
    import importlib
    import pkgutil

    import platypush.entities
    from platypush.entities._base import init_entities_db

    for module in pkgutil.iter_modules(platypush.entities.__path__):
        with contextlib.suppress(ImportError):  # optional requirements (bluetooth)
            importlib.import_module(f"platypush.entities.{module.name}")
    init_entities_db()


# The modules that take longest (seconds per module in a `make test` run with five workers,
# 2026-12-07), started first: pytest-xdist (`--dist loadfile --no-loadscope-reorder`) hands the
# files out in collection order, and one long module left for the end kept a single worker busy for
# a minute and a half after the others had finished (by default xdist starts the modules with the
# most tests first, which put these, with few but long tests, last). Those that compute (the hostile
# tables, the SIGKILL loop) alternate with those that mostly wait, so that the five CPU-heaviest do
# not start together on two cores. A stale entry only costs time; the order inside a module is kept.
LONGEST_FIRST = (
    "tests/e2e/test_restart.py",  # 153
    "tests/test_revoked_credentials.py",  # 88, waits
    "tests/test_hostile_responses.py",  # 91, computes
    "tests/e2e/test_web_panel.py",  # 61
    "tests/e2e/test_lifecycle.py",  # 88, computes
    "tests/e2e/test_home_panel_live.py",  # 60
    "tests/test_hostile_data.py",  # 89, computes
    "tests/e2e/test_revoked_key.py",  # 36, waits
    "tests/test_hostile_input.py",  # 45, computes (129 with the full table over /execute)
    "tests/e2e/test_demo.py",  # 39
    "tests/e2e/test_pushjet_realtime.py",  # 39
    "tests/pushjet/test_plugin.py",  # 36
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules of :data:`LONGEST_FIRST` first, in that order, and the rest as collected."""
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
