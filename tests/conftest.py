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


# The order in which pytest-xdist (`--dist loadfile --no-loadscope-reorder`) hands the modules out to
# its five workers on two cores: wall seconds of each module and its CPU seconds (its worker's and its
# Platypush processes') measured in a `make test` run on 2026-12-07. A stale entry only costs time;
# the order inside a module is kept.
#
# 1. The longest first: one long module left for the end kept a single worker busy for a minute and a
#    half after the others had finished. Those that compute alternate with those that mostly wait.
# 2. Then those that mostly wait (a tenth of their time or less on the CPU) alternate with those that
#    compute. Left in collection order they ran last, five workers waiting together on two cores (the
#    last 80 s used 55-70 % of them); run together after the longest, the same (22-33 % for 20 s).
# 3. The rest in collection order, and last the short ones that compute, which keep both cores busy
#    to the end.
LONGEST_FIRST = (
    "tests/e2e/test_restart.py",  # 130 s, 51 s of CPU
    "tests/test_revoked_credentials.py",  # 90, 3
    "tests/test_hostile_responses.py",  # 100, 55
    "tests/e2e/test_web_panel.py",  # 53, 21
    "tests/e2e/test_lifecycle.py",  # 92, 37
    "tests/e2e/test_home_panel_live.py",  # 52, 14
    "tests/test_hostile_data.py",  # 87, 36
    "tests/e2e/test_revoked_key.py",  # 35, 5
    "tests/test_hostile_input.py",  # 59, 31
    "tests/pushjet/test_plugin.py",  # 42, 7
    "tests/e2e/test_demo.py",  # 35, 11
    "tests/pushjet/test_realtime.py",  # 25, 3
    "tests/e2e/test_pushjet_realtime.py",  # 39, 18
)
MOSTLY_WAITING = (
    "tests/mbed/test_client.py",  # 24 s, 2 s of CPU
    "tests/pushjet/test_client.py",  # 24, 1
    "tests/e2e/test_pushjet.py",  # 27, 5
    "tests/mbed/test_izuma.py",  # 18, 1
    "tests/mbed/test_plugin.py",  # 17, 3
    "tests/mbed/test_pelion.py",  # 15, 2
    "tests/gett/test_client.py",  # 13, 2
    "tests/test_http.py",  # 11, 1
)
COMPUTING = (
    "tests/e2e/test_mbed_entities.py",  # 28 s, 14 s of CPU
    "tests/mbed/test_entities.py",  # 28, 13
    "tests/e2e/test_mbed_channels.py",  # 17, 9
    "tests/mbed/test_izuma_plugin.py",  # 17, 8
    "tests/e2e/test_mbed_pelion.py",  # 19, 8
    "tests/e2e/test_pushjet_tls.py",  # 18, 7
    "tests/gett/test_plugin.py",  # 17, 6
    "tests/e2e/test_mbed.py",  # 22, 6
)
COMPUTING_LAST = (
    "tests/nikdev/test_crash_safety.py",  # 12 s, 10 s of CPU
    "tests/test_entities_publisher.py",  # 16, 12
    "tests/test_lint.py",  # 13, 10
    "tests/test_packaging.py",  # 6, 4
    "tests/test_webpanel.py",  # 6, 5
)
#: The order of the modules named above: the rest run after them, before :data:`COMPUTING_LAST`.
ORDER = LONGEST_FIRST + tuple(path for pair in zip(MOSTLY_WAITING, COMPUTING, strict=True) for path in pair)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules in :data:`ORDER`, then the rest as collected, and :data:`COMPUTING_LAST` last."""
    rank = {path: index for index, path in enumerate(ORDER)}
    rank.update({path: len(ORDER) + 1 + index for index, path in enumerate(COMPUTING_LAST)})
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(ORDER)))
