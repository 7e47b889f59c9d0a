"""The runner of real Platypush processes (the demo, the e2e tests and the benchmarks use it):
each way a start can fail is a clear :class:`PlatypushError`, failed actions raise, waits for
events end on time, and a stop always ends the process."""

from __future__ import annotations

import ast
import glob
import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from platypush_ext.nikdev import plugin
from platypush_ext.runner import PlatypushError, PlatypushProcess
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer


def test_without_redis_server_nothing_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PLATYPUSH_REDIS_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    with pytest.raises(PlatypushError, match="redis-server not found"):
        PlatypushProcess({}, tmp_path).start()
    assert not (tmp_path / "config.yaml").exists()


def test_a_platypush_that_exits_at_start_is_reported_with_its_log(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
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
            event = {"type": "event", "args": {"type": "platypush.message.event.custom.CustomEvent",
                                               "subtype": "runner-test"}}
            requests.post(platypush.url + "/execute", json=event, timeout=10,
                          headers={"Authorization": f"Bearer {platypush.token}"}).raise_for_status()
            first = next(iter(events))  # iterating yields the events as dictionaries
            assert (first["type"], first["subtype"]) == ("platypush.message.event.custom.CustomEvent", "runner-test")
        proc = platypush._proc
        assert proc is not None
        platypush.stop(timeout=0)  # no time for SIGINT: the process group is killed
        assert proc.returncode is not None


@pytest.mark.skipif(not os.environ.get("COVERAGE_PROCESS_CONFIG"), reason="only under make test's coverage")
def test_platypush_saves_its_coverage_data_when_it_stops(tmp_path: Path, start_server: Any) -> None:
    """The plugin code that ran inside Platypush (the installed copy) is in the data it saved on SIGINT."""
    import coverage

    current = coverage.Coverage.current()
    assert current is not None
    pattern = current.config.data_file + ".*"
    before = set(glob.glob(pattern))
    server = start_server(NikdevServer)
    config = {"nikdev": {"base_url": server.base_url, "device_id": DEFAULT_DEVICE_ID, "api_key": DEFAULT_API_KEY}}
    with PlatypushProcess(config, tmp_path) as platypush:
        assert platypush.run("nikdev.status")["pending"] == 0
    body = next(node for node in ast.walk(ast.parse(Path(plugin.__file__).read_text()))
                if isinstance(node, ast.FunctionDef) and node.name == "status").body[-1].lineno
    ran = []
    for name in set(glob.glob(pattern)) - before:
        data = coverage.CoverageData(name)
        data.read()
        ran += [path for path in data.measured_files() if "site-packages" in path and path.endswith(
            "platypush_ext/nikdev/plugin.py") and body in (data.lines(path) or [])]
    assert ran, "no data file of the Platypush process has NikdevPlugin.status as run"
