"""Refused credentials, framework-free: the rare retry (core/backoff.py ``AuthBackoff``), the
"rejected" state of :class:`Availability` and the listener's choice of waits (core/listening.py)."""

from __future__ import annotations

import datetime
import logging
import threading
import time

import pytest

from platypush_ext.core import listening
from platypush_ext.core.backoff import AuthBackoff
from platypush_ext.core.errors import AuthError, ServiceConnectionError
from platypush_ext.core.listening import Availability, Listener


def test_auth_backoff_makes_three_requests_in_the_window_then_one_per_interval() -> None:
    steady = AuthBackoff(window=30, interval=300, jitter=False)
    waits = [steady.next_delay() for _ in range(5)]
    assert waits == [10.0, 15.0, 300.0, 300.0, 300.0]
    times = [sum(waits[:i]) for i in range(6)]  # the requests: the first refused one at 0
    assert [t for t in times if t < 30] == [0, 10.0, 25.0]
    steady.reset()
    assert steady.next_delay() == 10.0
    jittered = AuthBackoff(window=30, interval=300)
    later = [jittered.next_delay() for _ in range(200)][2:]
    assert all(270 <= w <= 300 for w in later) and len(set(later)) > 100
    assert 25 + min(later) >= 30  # even the shortest jittered wait leaves the window to three


@pytest.mark.parametrize("window, interval", [(0, 300), (-1, 300), (30, 20), (30, 0)])
def test_auth_backoff_refuses_a_schedule_that_would_break_its_promise(window: float, interval: float) -> None:
    with pytest.raises(ValueError, match="window"):
        AuthBackoff(window=window, interval=interval)


def _availability(changes: list[str]) -> Availability:
    return Availability(
        "X",
        logging.getLogger("probe.credentials"),
        on_up=lambda: changes.append("up"),
        on_down=lambda error: changes.append(f"down: {error}"),
        on_rejected=lambda error, exc: changes.append(f"rejected {exc.status}: {error}"),
    )


def test_a_refusal_is_reported_once_and_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    changes: list[str] = []
    availability = _availability(changes)
    availability.ok()
    caplog.set_level(logging.DEBUG, "probe.credentials")
    before = time.time()
    for _ in range(5):
        availability.failed(AuthError("GET /x: HTTP 401: Invalid API key", status=401))
    rejection = availability.rejection()
    assert rejection is not None and rejection["error"] == "GET /x: HTTP 401: Invalid API key"
    since = datetime.datetime.fromisoformat(rejection["since"])
    assert since.tzinfo is not None and before - 1 <= since.timestamp() <= time.time()
    assert availability.up is False
    availability.ok()
    assert changes == ["up", "rejected 401: GET /x: HTTP 401: Invalid API key", "up"]
    assert availability.rejection() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "X refused the credentials: GET /x: HTTP 401: Invalid API key (retrying rarely until they work again)"
    ]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == ["X accepts the credentials again"]


def test_an_outage_after_a_refusal_is_a_new_transition_and_vice_versa() -> None:
    changes: list[str] = []
    availability = _availability(changes)
    availability.failed(AuthError("refused", status=403))
    availability.failed(ServiceConnectionError("gone"))
    availability.failed(ServiceConnectionError("still gone"))
    availability.failed(AuthError("refused again", status=403))
    assert changes == ["rejected 403: refused", "down: gone", "rejected 403: refused again"]
    assert availability.rejection() == {"since": availability.rejection()["since"], "error": "refused again"}  # type: ignore[index]


def test_refusals_from_many_threads_at_once_are_one_transition(monkeypatch: pytest.MonkeyPatch) -> None:
    changes: list[str] = []
    availability = _availability(changes)
    start, clock = threading.Barrier(8), time.time

    def slow_clock() -> float:  # read between the check of the state and its change: the race made likely
        time.sleep(0.005)
        return clock()

    monkeypatch.setattr(listening.time, "time", slow_clock)

    def fail() -> None:
        start.wait()
        for _ in range(50):
            availability.failed(AuthError("refused", status=401))

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert changes == ["rejected 401: refused"]


def test_without_on_rejected_a_refusal_is_an_outage_as_before() -> None:
    changes: list[str] = []
    availability = Availability(
        "X", logging.getLogger("probe"), on_up=lambda: None, on_down=lambda error: changes.append(error)
    )
    availability.failed(AuthError("refused", status=401))
    assert changes == ["refused"] and availability.rejection() is None


def test_the_listener_waits_the_auth_schedule_after_a_refusal_and_the_backoff_after_an_outage() -> None:
    outcomes: list[Exception | None] = [AuthError("no", status=401)] * 3 + [None] + [ServiceConnectionError("x")]
    stopping = threading.Event()
    waits: list[float] = []

    def step() -> float:
        outcome = outcomes.pop(0) if outcomes else None
        if not outcomes:
            stopping.set()
        if outcome is not None:
            raise outcome
        return 0.0

    class Probe(Listener):
        def _once(self) -> float:
            delay = super()._once()
            waits.append(delay)
            return 0.0  # the test does not sleep: it reads the waits

    Probe(step, stopping, auth_backoff=AuthBackoff(window=3, interval=9, jitter=False)).run()
    assert waits[:3] == [1.0, 1.5, 9.0]  # refusals: the rare schedule
    assert waits[3] == 0.0  # a success resets it
    assert 0.5 <= waits[4] <= 1.0  # an outage: the ordinary backoff's first wait (1 s, with jitter)
