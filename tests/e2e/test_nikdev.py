"""End to end: a real Platypush (with real Redis) running the nikdev plugin against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from platypush_ext.runner import PlatypushProcess, redis_server_binary
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer
from tests.support import wait_until

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed")

EVENTS = "platypush_ext.nikdev.events."


@pytest.fixture(scope="module")
def server() -> Iterator[NikdevServer]:
    with NikdevServer() as server:
        yield server


@pytest.fixture(scope="module")
def pp(server: NikdevServer, tmp_path_factory: Any) -> Iterator[PlatypushProcess]:
    config = {
        "nikdev": {
            "base_url": server.base_url,
            "device_id": DEFAULT_DEVICE_ID,
            "api_key": DEFAULT_API_KEY,
            "flush_interval": 1,
            "retries": 0,
        },
        # a recorded value: the mbed plugin's notification hook will call this procedure
        "procedure.nikdev_record_value(field, value)": [
            {"action": "nikdev.add_value", "args": {"field": "${field}", "value": "${value}"}},
            {"action": "nikdev.commit_and_push"},
        ],
        "event.hook.NikdevRememberRejection": {
            "if": {"type": EVENTS + "NikdevDeadLetteredEvent"},
            "then": [{"action": "variable.set", "args": {"nikdev_rejected": "${reason}"}}],
        },
    }
    with PlatypushProcess(config, tmp_path_factory.mktemp("nikdev-e2e")) as pp:
        yield pp


def test_execute_add_commit_push_get(pp: PlatypushProcess, server: NikdevServer) -> None:
    assert pp.run("nikdev.add_value", field="temp", value=21.5)["staged"] == 1
    pp.run("nikdev.add_value", field="hum", value=40)
    assert pp.run("nikdev.commit")["values"] == 2
    with pp.events() as events:
        assert pp.run("nikdev.push")["pushed"] >= 0  # the flusher may have been faster
        events.wait_for(lambda e: e["type"] == EVENTS + "NikdevEntriesPushedEvent", timeout=10)
    assert {"temp": 21.5} in server.entries()[-1]["values"]
    values = pp.run("nikdev.get_values", fields="temp,hum")
    assert [(v["field"], v["value"]) for v in values] == [("temp", 21.5), ("hum", 40)]
    assert pp.run("nikdev.status")["pending"] == 0


def test_bad_input_is_a_clean_error(pp: PlatypushProcess) -> None:
    response = pp.execute("nikdev.add_value", field="a,b", value=1)
    assert response["errors"] and "commas" in response["errors"][0]
    assert "Traceback" not in response["errors"][0]


def test_background_flusher_delivers_commits(pp: PlatypushProcess, server: NikdevServer) -> None:
    with pp.events() as events:
        pp.run("nikdev.commit", values={"door": "open"})
        event = events.wait_for(lambda e: e["type"] == EVENTS + "NikdevEntriesPushedEvent", timeout=15)
    assert event["count"] >= 1
    assert "open" in server.received_values("door")


def test_procedure_records_a_value(pp: PlatypushProcess, server: NikdevServer) -> None:
    pp.run("procedure.nikdev_record_value", field="lux", value=312.5)
    assert server.received_values("lux") == [312.5]


def test_rejection_is_dead_lettered_hooked_and_retried(pp: PlatypushProcess, server: NikdevServer) -> None:
    requests.delete(f"{server.url}/_sandbox/keys/{DEFAULT_API_KEY}", timeout=5).raise_for_status()
    try:
        with pp.events() as events:
            response = pp.execute("nikdev.commit_and_push", values={"temp": 30})
            dead = events.wait_for(lambda e: e["type"] == EVENTS + "NikdevDeadLetteredEvent", timeout=10)
        assert response["errors"] and "Invalid API key" in response["errors"][0]
        assert DEFAULT_API_KEY not in response["errors"][0]
        assert dead["reason"] == "Invalid API key" and dead["status"] == 401
        # the hook runs beside /ws/events: its variable.set may come a moment after the event
        wait_until(lambda: pp.run("variable.get", name="nikdev_rejected")["nikdev_rejected"], timeout=10)
        assert pp.run("variable.get", name="nikdev_rejected") == {"nikdev_rejected": "Invalid API key"}
        assert pp.run("nikdev.status")["dead"] == 1
    finally:
        requests.post(f"{server.url}/_sandbox/keys", json={"api_key": DEFAULT_API_KEY}, timeout=5).raise_for_status()
    assert pp.run("nikdev.retry_dead") == {"requeued": 1, "pushed": 1, "pending": 0}
    assert 30 in server.received_values("temp")
    assert pp.run("nikdev.get_dead_letters") == []
