"""Helpers shared by the tests (fixtures are in ``conftest.py``)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

import pytest
from platypush.bus import Bus
from platypush.bus.redis import RedisBus
from platypush.message import Message
from platypush.message.event import Event

from platypush_ext.core.bus import Publisher


class RecordingBus:
    """A bus that keeps every posted event, round-tripped through the wire format."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def post(self, event: Any) -> None:
        rebuilt = Event.build(json.loads(str(event)))  # catches reserved names / unserialisable values
        with self._cond:
            self.events.append(rebuilt)
            self._cond.notify_all()

    def of(self, cls: type) -> list[Any]:
        with self._cond:
            return [e for e in self.events if isinstance(e, cls)]

    def wait_for(self, cls: type, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """Wait until ``count`` events of ``cls`` were posted; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events if isinstance(e, cls)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} {cls.__name__} events after {timeout} s, expected {count}")
                self._cond.wait(left)


#: The environment changes for a subprocess a test SIGKILLs: coverage's subprocess start-up
#: removed. A killed process never writes its coverage data, so tracing it would only cost CPU time.
UNMEASURED: dict[str, str | None] = {"COVERAGE_PROCESS_CONFIG": None, "COVERAGE_PROCESS_START": None}


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy (returns its value) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class Servers:
    """Sandbox servers started for a test (or a module), stopped in their order when it ends."""

    def __init__(self) -> None:
        self._started: list[Any] = []

    def start(self, cls: type, **kwargs: Any) -> Any:
        """Start ``cls(**kwargs)``; returns it."""
        server = cls(**kwargs).start()
        self._started.append(server)
        return server

    def stop(self) -> None:
        for server in self._started:
            server.stop()


class RedisServer:
    """A throw-away ``redis-server`` on a free port (no persistence)."""

    def __init__(self) -> None:
        import subprocess

        import redis

        from platypush_ext.sandbox.ports import free_port
        from platypush_ext.sandbox.runner import redis_server_binary

        binary = redis_server_binary()
        assert binary, "redis-server is not installed"
        self.port = free_port()
        self._proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        pid = wait_until(lambda: _pid(client), timeout=10)
        client.close()
        assert pid == self._proc.pid, f"port {self.port}: another process's Redis answered"

    def stop(self) -> None:
        from platypush_ext.sandbox.ports import release_port

        self._proc.terminate()
        self._proc.wait(10)
        release_port(self.port)


def _pid(client: Any) -> int | None:
    """The process id of the Redis that ``client`` reaches, once it answers."""
    import redis

    try:
        return int(client.info("server")["process_id"])
    except redis.RedisError:
        return None


def fail_on_sandbox_bugs(expected: bool = False) -> None:
    """Fail the current test if a sandbox handler raised since the last check (``expected``: forget them)."""
    from platypush_ext.sandbox.core import take_failures

    failures = take_failures()
    if failures and not expected:
        pytest.fail("; ".join(str(f) for f in failures), pytrace=False)


class Listener:
    """Platypush's own bus loop (``RedisBus.poll``) in a thread: what Platypush's main loop runs."""

    def __init__(self, port: int):
        self.received: list[Message] = []
        self.bus = RedisBus(on_message=self.received.append, host="127.0.0.1", port=port)
        self.bus._on_message = self.received.append  # type: ignore[method-assign]  # no executor here
        self.thread = threading.Thread(target=self.bus.poll, daemon=True)
        self.thread.start()
        wait_until(lambda: Publisher(lambda: self.bus).listeners() >= 1, timeout=10)

    def close(self) -> None:
        # the loop ends at its next tick (0.1 s); RedisBus.stop alone closes the connection under it,
        # and the loop's error path then sleeps 1 s before it looks at the stop flag
        Bus.stop(self.bus)
        self.thread.join(5)
        self.bus.stop()
