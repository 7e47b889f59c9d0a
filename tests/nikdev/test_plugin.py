"""The ``nikdev`` plugin in-process, against the sandbox, with a recording bus."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import platypush_ext.nikdev as nikdev_package
from platypush_ext.core.errors import InvalidArgumentError
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.nikdev.client import NikdevClient
from platypush_ext.nikdev.events import (
    NikdevConnectedEvent,
    NikdevDeadLetteredEvent,
    NikdevDisconnectedEvent,
    NikdevEntriesPushedEvent,
    NikdevOutboxNearlyFullEvent,
    NikdevPushFailedEvent,
)
from platypush_ext.nikdev.plugin import NikdevPlugin
from platypush_ext.sandbox.nikdev import DEFAULT_DEVICE_ID, NikdevServer
from tests.support import RecordingBus, wait_until

pytestmark = pytest.mark.sandbox(cls=NikdevServer)

SECRET = "k3y-0f-th3-t3st-d3v1c3"
EVENTS = list(json.loads((Path(nikdev_package.__file__).parent / "manifest.json").read_text())["manifest"]["events"])


@pytest.fixture
def make(server: NikdevServer, workdir: str, bus: RecordingBus) -> Any:
    server.add_key(SECRET)  # the plugins' key, beside the sandbox's default one
    made: list[NikdevPlugin] = []

    def make(**config: Any) -> NikdevPlugin:
        config = {
            "base_url": server.base_url,
            "device_id": DEFAULT_DEVICE_ID,
            "api_key": SECRET,
            "retries": 0,
            "flush_interval": 1,
            **config,
        }
        plugin = NikdevPlugin(**config)
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        if plugin._thread:
            plugin.stop()


def ok(response: Any) -> Any:
    assert response.errors == [], response.errors
    return response.output


def error(response: Any) -> str:
    assert response.output is None and len(response.errors) == 1, (response.output, response.errors)
    return response.errors[0]


def test_add_commit_push(make: Any, server: NikdevServer, bus: RecordingBus) -> None:
    plugin = make()
    assert ok(plugin.add_value(field="temp", value=21.5)) == {"field": "temp", "value": 21.5, "staged": 1}
    ok(plugin.add_value(field="hum", value=40))
    ok(plugin.add_value(field="temp", value=22.0))
    committed = ok(plugin.commit())
    assert committed["values"] == 2 and committed["pending"] == 1 and abs(committed["timestamp"] - time.time()) < 3
    assert server.state()["entries"] == 0  # committed is not pushed
    assert ok(plugin.push()) == {"pushed": 1, "values": 2, "batches": 1, "pending": 0}
    assert server.entries()[0]["values"] == [{"hum": 40}, {"temp": 22.0}]
    (pushed,) = bus.wait_for(NikdevEntriesPushedEvent)
    assert (pushed.args["count"], pushed.args["values"], pushed.args["pending"]) == (1, 2, 0)
    bus.wait_for(NikdevConnectedEvent)
    answer = ok(plugin.commit_and_push(values={"temp": 23}))
    assert answer["pushed"] == 1 and answer["pending"] == 0
    assert [(v["field"], v["value"]) for v in ok(plugin.get_values(fields=["temp", "hum"]))] == [
        ("temp", 23),
        ("hum", 40),
    ]
    status = ok(plugin.status())
    assert status["pushed_entries"] == 2 and status["pending"] == 0 and status["reachable"] is True
    assert status["staged"] == {}


@pytest.mark.parametrize(
    "name, args, text",
    [
        ("add_value", {"field": "", "value": 1}, "non-empty string"),
        ("add_value", {"field": "a,b", "value": 1}, "commas"),
        ("add_value", {"field": "t", "value": [1, 2]}, "value: expected a string or a number or true or false"),
        ("add_value", {"field": "t", "value": None}, "value: expected a string or a number"),
        ("commit", {}, "nothing to commit"),
        ("commit", {"values": "temp=1"}, "values: expected an object or null"),
        ("commit", {"values": {"t": {"nested": 1}}}, "must be a string, an integer"),
        ("commit_and_push", {}, "nothing to commit"),
        ("get_values", {"fields": []}, "field ids"),
        ("get_values", {"fields": ["ok", ""]}, "non-empty string"),
        ("get_dead_letters", {"limit": 0}, "positive integer"),
        ("retry_dead", {"ids": ["x"]}, "ids[0]: expected an integer"),
        ("purge_dead", {"ids": [1.5]}, "ids[0]: expected an integer"),
    ],
)
def test_bad_input_is_a_readable_error(
    make: Any, server: NikdevServer, name: str, args: dict, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = make()
    message = error(getattr(plugin, name)(**args))
    assert text in message and SECRET not in message
    assert "Traceback" not in caplog.text
    assert not any(r[1].startswith("/api/") for r in server.requests)


@pytest.mark.parametrize(
    "config, text",
    [
        ({"base_url": "iot.nik-dev.se"}, "base_url"),
        ({"api_key": ""}, "api_key is required"),
        ({"device_id": None}, "device_id is required"),
        ({"when_full": "explode"}, "when_full"),
        ({"max_entries": -1}, "max_entries"),
        ({"push_time_limit": 0}, "push_time_limit"),
        ({"push_time_limit": 300}, "push_time_limit"),
    ],
)
def test_bad_configuration(make: Any, config: dict, text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=text):
        make(**config)


def test_transient_failure_is_retained_and_flushed_in_background(
    make: Any, server: NikdevServer, bus: RecordingBus
) -> None:
    plugin = make()
    server.faults.add("status", count=3, status=503, path="/api/v1/entries/")
    message = error(plugin.commit_and_push(values={"temp": 20}))
    assert "503" in message and "kept in the outbox" in message and SECRET not in message
    (failed,) = bus.wait_for(NikdevPushFailedEvent)
    assert failed.args["retained"] is True and failed.args["will_retry"] is True and failed.args["pending"] == 1
    bus.wait_for(NikdevDisconnectedEvent)
    assert ok(plugin.status())["pending"] == 1 and ok(plugin.status())["reachable"] is False
    plugin.start()  # the flusher backs off (1-2 s), then delivers once the faults are used up
    wait_until(lambda: server.state()["entries"] == 1, timeout=15)
    bus.wait_for(NikdevConnectedEvent)
    bus.wait_for(NikdevEntriesPushedEvent)
    wait_until(lambda: ok(plugin.status())["pending"] == 0)
    assert server.received_values("temp") == [20]
    # each failed request was answered 503; the flusher did not hammer the server
    assert len([r for r in server.requests if r[1] == "/api/v1/entries/"]) <= 5


def test_rejection_dead_letters_with_reason_then_retry(make: Any, server: NikdevServer, bus: RecordingBus) -> None:
    plugin = make()
    server.revoke_key(SECRET)
    message = error(plugin.commit_and_push(values={"temp": 20}))
    assert "Invalid API key" in message and "dead letters" in message and SECRET not in message
    (dead,) = bus.wait_for(NikdevDeadLetteredEvent)
    assert dead.args["count"] == 1 and dead.args["reason"] == "Invalid API key" and dead.args["status"] == 401
    assert dead.args["dead"] == 1
    letters = ok(plugin.get_dead_letters())
    assert letters[0]["values"] == {"temp": 20} and letters[0]["reason"] == "Invalid API key"
    server.add_key(SECRET)  # the key is fixed
    assert ok(plugin.retry_dead()) == {"requeued": 1, "pushed": 1, "pending": 0}
    assert server.received_values("temp") == [20]
    # purge
    server.revoke_key(SECRET)
    error(plugin.commit_and_push(values={"temp": 21}))
    assert ok(plugin.purge_dead(ids=[letters[0]["entry_id"] + 1])) == {"purged": 1}
    assert ok(plugin.status())["dead"] == 0


def test_nearly_full_event_and_full_outbox(make: Any, bus: RecordingBus) -> None:
    plugin = make(max_entries=4, warn_ratio=0.75)
    for n in range(3):
        ok(plugin.commit(values={"n": n}))
    (event,) = bus.wait_for(NikdevOutboxNearlyFullEvent)
    assert event.args["pending"] == 3 and event.args["usage"] == 0.75 and event.args["when_full"] == "reject"
    ok(plugin.commit(values={"n": 3}))
    message = error(plugin.commit(values={"n": 4}))
    assert "outbox is full" in message
    assert ok(plugin.status())["staged"] == {"n": 4}  # kept, not lost
    assert len(bus.of(NikdevOutboxNearlyFullEvent)) == 1


def test_outbox_survives_a_restart(make: Any, server: NikdevServer) -> None:
    first = make()
    ok(first.commit(values={"temp": 1}))
    second = make()  # same workdir: the entry committed by the first instance is still there
    assert ok(second.status())["pending"] == 1
    assert ok(second.push())["pushed"] == 1
    assert server.received_values("temp") == [1]


def test_flusher_stops_promptly_while_the_server_hangs(make: Any, server: NikdevServer) -> None:
    plugin = make(read_timeout=1)
    ok(plugin.commit(values={"temp": 1}))
    server.faults.add("hang", count=5, delay=3)
    plugin.start()
    wait_until(lambda: any(r[2] == 0 for r in server.requests), timeout=5)
    started = time.monotonic()
    plugin.stop()
    assert time.monotonic() - started < 5
    assert not plugin._thread or not plugin._thread.is_alive()


def test_secret_never_in_events_or_logs(
    make: Any, server: NikdevServer, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    plugin = make()
    server.faults.add("status", count=1, status=500)
    error(plugin.commit_and_push(values={"a": 1}))
    server.revoke_key(SECRET)
    error(plugin.push())
    error(plugin.get_values(fields="a"))
    assert bus.events
    assert all(SECRET not in json.dumps(e.args) for e in bus.events)
    assert SECRET not in caplog.text and SECRET not in repr(plugin._client)


def test_manifest_and_shim() -> None:
    import pathlib

    import platypush_ext.nikdev as package

    root = pathlib.Path(package.__file__).parent
    shim = pathlib.Path(__file__).parents[2] / "platypush" / "plugins" / "nikdev"
    manifest = json.loads((root / "manifest.json").read_text())
    assert (shim / "manifest.json").read_text() == (root / "manifest.json").read_text()
    assert manifest["manifest"]["package"] == "platypush.plugins.nikdev"
    from platypush.utils import get_plugin_name_by_class

    assert get_plugin_name_by_class(NikdevPlugin) == "nikdev"


@pytest.mark.parametrize("dotted", EVENTS, ids=lambda dotted: dotted.rsplit(".", 1)[1])
def test_every_manifest_event_is_importable(dotted: str) -> None:
    import importlib

    module, name = dotted.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name)


class _GatedClient(NikdevClient):
    """A real NikDev client whose pushes wait for a gate: the background flusher, stalled mid-push."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate, self.in_push = threading.Event(), threading.Event()

    def push_serialized(self, entries: Any, client_timestamp: Any = None) -> None:
        self.in_push.set()
        assert self.gate.wait(10)
        super().push_serialized(entries, client_timestamp)


def test_commit_and_push_reports_its_own_entry_dead_lettered_by_the_flusher(make: Any, server: NikdevServer) -> None:
    plugin = make()
    outbox = plugin.uploader.outbox
    ok(plugin.commit(values={"temp": 20}))
    stalled = _GatedClient(server.base_url, DEFAULT_DEVICE_ID, SECRET, retry=RetryPolicy(attempts=1))
    flusher = threading.Thread(target=outbox.flush, args=(stalled,))
    flusher.start()  # holds the push while its request is on the way
    assert stalled.in_push.wait(5)
    answers: list[Any] = []
    caller = threading.Thread(target=lambda: answers.append(plugin.commit_and_push(values={"temp": 21})))
    caller.start()
    wait_until(lambda: outbox.pending_count() == 2)  # committed; its push waits for the flusher's
    server.revoke_key(SECRET)
    stalled.gate.set()  # the flusher's pushes are rejected: both entries go to the dead letters
    flusher.join(10)
    caller.join(10)
    message = error(answers[0])  # it answered {"pushed": 0, "pending": 0} and no error
    assert "entry 2 was committed, but the server rejected it (HTTP 401" in message and "dead letters" in message
    assert [d["entry_id"] for d in ok(plugin.get_dead_letters())] == [1, 2]


def test_commit_and_push_says_whether_its_entry_was_pushed(make: Any) -> None:
    plugin = make()
    answer = ok(plugin.commit_and_push(values={"temp": 22}))
    assert (answer["entry_state"], answer["pushed"], answer["pending"]) == ("pushed", 1, 0)
