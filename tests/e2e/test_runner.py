"""The runner of real Platypush processes (the demo, the e2e tests and the benchmarks use it):
each way a start can fail is a clear :class:`PlatypushError`, failed actions raise, waits for
events end on time, and a stop always ends the process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from platypush_ext.sandbox.runner import PlatypushError, PlatypushProcess


def test_without_redis_server_nothing_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PLATYPUSH_REDIS_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    with pytest.raises(PlatypushError, match="redis-server not found"):
        PlatypushProcess({}, tmp_path).start()
    assert not (tmp_path / "config.yaml").exists()


def test_a_platypush_that_exits_at_start_is_reported_with_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLATYPUSH_REDIS_BIN", str(tmp_path / "no-such-redis"))
    platypush = PlatypushProcess({}, tmp_path)
    assert platypush.log_tail() == "(no log)"
    with pytest.raises(PlatypushError, match=r"(?s)Platypush exited with 1:.*Failed to start local Redis"):
        platypush.start()


def test_not_ready_in_time_is_an_error_and_the_process_is_stopped(tmp_path: Path) -> None:
    platypush = PlatypushProcess({}, tmp_path)
    started = time.monotonic()
    with pytest.raises(PlatypushError, match="Platypush not ready after 0.2 s"):
        platypush.start(timeout=0.2)
    assert time.monotonic() - started < 20
    assert platypush._proc is None  # stopped (and reaped)
    platypush.stop()  # a second stop does nothing


def test_failed_actions_raise_and_event_waits_end_on_time(tmp_path: Path) -> None:
    with PlatypushProcess({}, tmp_path) as platypush:
        with pytest.raises(PlatypushError, match="nosuch.action"):
            platypush.run("nosuch.action")
        with platypush.events(timeout=5) as events:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="no matching event within 0.3 s"):
                events.wait_for(lambda e: True, timeout=0.3)
            assert 0.25 < time.monotonic() - started < 5
            with pytest.raises(TimeoutError, match="within 0 s"):
                events.wait_for(lambda e: True, timeout=0)
            event = {
                "type": "event",
                "args": {"type": "platypush.message.event.custom.CustomEvent", "subtype": "runner-test"},
            }
            requests.post(
                platypush.url + "/execute",
                json=event,
                timeout=10,
                headers={"Authorization": f"Bearer {platypush.token}"},
            ).raise_for_status()
            first = next(iter(events))  # iterating yields the events as dictionaries
            assert (first["type"], first["subtype"]) == ("platypush.message.event.custom.CustomEvent", "runner-test")
        proc = platypush._proc
        assert proc is not None
        platypush.stop(timeout=0)  # no time for SIGINT: the process group is killed
        assert proc.returncode is not None
