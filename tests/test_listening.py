"""The framework-free listener runner, backoff and availability (platypush_ext/core/listening.py, core/backoff.py)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from platypush_ext.core.backoff import Backoff, exponential_delay
from platypush_ext.core.errors import ServerError, ServiceConnectionError
from platypush_ext.core.listening import Availability, Listener
from platypush_ext.core.retry import RetryPolicy


def test_backoff_doubles_to_its_cap_with_or_without_jitter() -> None:
    steady = Backoff(base=0.1, cap=0.5, jitter=False)
    assert [steady.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    steady.reset()
    assert steady.next_delay() == 0.1
    jittered = [exponential_delay(1.0, 60.0, 3) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in jittered) and len(set(jittered)) > 100


def test_retry_policy_is_immutable_and_adjusted_not_replaced() -> None:
    policy = RetryPolicy(attempts=3, backoff=0.5, backoff_max=5.0, budget=20.0)
    adjusted = policy.replace(budget=7.0).with_retries(4)
    assert (adjusted.attempts, adjusted.backoff, adjusted.backoff_max, adjusted.budget) == (5, 0.5, 5.0, 7.0)
    assert policy.attempts == 3 and policy.with_retries(0).attempts == 1
    with pytest.raises(AttributeError):
        policy.attempts = 9  # type: ignore[misc]
    transient, final = ServerError("GET /x: HTTP 503"), ServiceConnectionError("x")
    assert policy.next_delay(transient, failures=1, elapsed=0.0, replayable=True, retry_after=2.0) == 2.0
    assert policy.next_delay(transient, failures=1, elapsed=0.0, replayable=False) is None  # may have arrived
    assert policy.next_delay(transient, failures=3, elapsed=0.0, replayable=True) is None  # no attempt left
    assert policy.next_delay(transient, failures=1, elapsed=19.9, replayable=True, retry_after=1.0) is None  # budget
    assert policy.next_delay(final, failures=1, elapsed=0.0, replayable=True) is not None  # connection errors retry
    ignoring = policy.replace(respect_retry_after=False)
    assert ignoring.next_delay(transient, failures=1, elapsed=0.0, replayable=True, retry_after=4.0) <= 0.5
    assert policy.is_idempotent("PUT") and not policy.is_idempotent("POST")
    assert policy.replace(methods=frozenset({"POST"})).is_idempotent("POST")


def _run(listener: Listener) -> threading.Thread:
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    return thread


def test_listener_reports_unavailable_once_each_way_and_stops_in_under_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes = iter([ServiceConnectionError("down 1"), ServiceConnectionError("down 2"), None, None])
    changes: list[str] = []
    availability = Availability(
        "X",
        logging.getLogger("probe"),
        on_up=lambda: changes.append("up"),
        on_down=lambda error: changes.append(f"down: {error}"),
    )
    stopping, calls = threading.Event(), []

    def step() -> float:
        calls.append(time.monotonic())
        outcome = next(outcomes, None)
        if outcome is not None:
            raise outcome
        if len(calls) >= 4:
            return 30.0  # a long wait, cut short by the stop
        return 0.0

    caplog.set_level(logging.DEBUG, "probe")
    thread = _run(
        Listener(step, stopping, backoff=Backoff(0.01, 0.02), on_up=availability.ok, on_down=availability.failed)
    )
    deadline = time.monotonic() + 5
    while len(calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert changes == ["down: down 1", "up"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == [
        "X is unavailable: down 1 (retrying with backoff)",
        "X is reachable again",
    ]
    started = time.monotonic()
    stopping.set()
    thread.join(1.0)
    assert not thread.is_alive() and time.monotonic() - started < 1.0


def test_listener_backs_off_after_a_reported_failure_and_on_unexpected_errors() -> None:
    stopping, seen, unexpected = threading.Event(), [], []

    def step() -> float | None:
        seen.append(len(seen))
        if len(seen) == 1:
            return None  # failed, reported by the step itself
        if len(seen) == 2:
            raise KeyError("bug")
        stopping.set()
        return 0.0

    backoff = Backoff(0.01, 0.02, jitter=False)
    Listener(step, stopping, backoff=backoff, on_unexpected=unexpected.append).run()
    assert seen == [0, 1, 2] and [type(e) for e in unexpected] == [KeyError] and backoff.failures == 0
    with pytest.raises(KeyError):  # without on_unexpected, a bug ends the loop (Platypush logs it)
        Listener(lambda: {}["x"], threading.Event()).run()


class Connections:
    """A step that holds a connection: each one is established (``connected``), brings
    ``data[i]`` messages (``delivered``), stays up ``up_for[i]`` steps, then breaks."""

    def __init__(self, data: list[int], up_for: list[int], stopping: threading.Event):
        self.data, self.up_for, self.stopping = data, up_for, stopping
        self.listener: Listener | None = None
        self.opened, self.failures_at_open, self._left = 0, [], 0

    def step(self) -> float:
        assert self.listener is not None
        if self._left == 0:
            if self.opened == len(self.up_for):
                self.stopping.set()
                return 0.0
            self.failures_at_open.append(self.listener.backoff.failures)
            self.listener.connected()
            self._left, self.opened = self.up_for[self.opened] + 1, self.opened + 1
            for _ in range(self.data[self.opened - 1]):
                self.listener.delivered()
        self._left -= 1
        if self._left == 0:
            raise ServiceConnectionError("dropped")
        return 0.01


def run_connections(data: list[int], up_for: list[int], settle: float) -> tuple[Connections, list[str]]:
    stopping, events = threading.Event(), []
    connections = Connections(data, up_for, stopping)
    availability = Availability(
        "X", logging.getLogger("probe"), lambda: events.append("up"), lambda e: events.append("down")
    )
    connections.listener = Listener(
        connections.step,
        stopping,
        backoff=Backoff(0.001, 0.004, jitter=False),
        on_up=availability.ok,
        on_down=availability.failed,
        settle=settle,
    )
    thread = _run(connections.listener)
    thread.join(10)
    assert not thread.is_alive()
    return connections, events


def test_connections_accepted_and_dropped_neither_reset_the_backoff_nor_flap() -> None:
    connections, events = run_connections(data=[0] * 6, up_for=[0] * 6, settle=5.0)
    assert connections.failures_at_open == [0, 1, 2, 3, 4, 5]  # ever longer waits (capped)
    assert events == ["up", "down"]  # one outage, reported once each way


def test_a_connection_proves_itself_by_data_or_by_staying_up() -> None:
    # 1: no data, dropped; 2: held (the previous did not prove itself), brings data: announced,
    # backoff reset (the wait after it is the base delay again); 3: announced at once, dropped at
    # once; 4: held, up 30 steps (> 0.2 s): announced
    connections, events = run_connections(data=[0, 1, 0, 0], up_for=[0, 1, 0, 30], settle=0.2)
    assert connections.failures_at_open == [0, 1, 1, 2]
    assert events == ["up", "down", "up", "down", "up", "down", "up", "down"]
