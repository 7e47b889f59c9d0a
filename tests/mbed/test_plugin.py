"""The mbed plugin in-process: actions, bad input, the listener with faults, events."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from platypush.bus.redis import RedisBus
from platypush.event.hook import EventCondition

from platypush_ext.mbed.events import (
    MbedAsyncResponseEvent,
    MbedConnectedEvent,
    MbedDeregistrationEvent,
    MbedDisconnectedEvent,
    MbedNotificationEvent,
    MbedRegistrationEvent,
    MbedRegistrationExpiredEvent,
    MbedRegistrationUpdateEvent,
)
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.sandbox.mbed import MbedServer
from tests.mbed.support import KEY, make_plugin, run
from tests.support import Listener, RecordingBus, wait_until

# each test has its own notification journal (workdir); the plugin registers its entities in Redis
pytestmark = [
    pytest.mark.sandbox(cls=MbedServer, api_key=KEY, pull_timeout=0.5, demo_devices=True),
    pytest.mark.usefixtures("workdir", "entity_registry_redis"),
]


@pytest.fixture
def plugin(server: MbedServer, bus: RecordingBus) -> Iterator[MbedPlugin]:
    mbed = make_plugin(server)
    mbed.start()
    bus.wait_for(MbedConnectedEvent)
    yield mbed
    mbed.stop()


def test_actions(plugin: MbedPlugin, server: MbedServer) -> None:
    assert run(plugin, "get_api_versions") == (["v1", "v2"], [])
    assert run(plugin, "get_connector_version")[0].startswith("DeviceServer")
    assert run(plugin, "get_limits")[0]["endpoint-quota"] == 100
    assert [e["name"] for e in run(plugin, "get_endpoints", type="Sensor")[0]] == ["temp-sensor-01"]
    assert run(plugin, "get_resources", endpoint="node-001")[0][0]["uri"] == "/3/0/0"
    assert run(plugin, "get_resource_value", endpoint="temp-sensor-01", path="/3303/0/5700") == (
        21.5,
        [],
    )  # Platypush parses JSON-looking text
    details = run(plugin, "get_resource_value", endpoint="temp-sensor-01", path="/3303/0/5700", details=True)[0]
    assert details["from_cache"] and details["value"] == "21.5" and details["content_type"] == "text/plain"
    assert run(plugin, "put_resource_value", endpoint="node-001", path="/3311/0/5850", value=1) == ({"status": 200}, [])
    assert server.devices["node-001"].resources["/3311/0/5850"].value == b"1"
    assert run(plugin, "post_resource", endpoint="node-001", path="/3311/0/5800", data="go")[0] == {"status": 200}
    assert (
        "async_id"
        in run(plugin, "put_resource_value", endpoint="node-001", path="/3311/0/5851", value=3, wait=False)[0]
    )
    assert run(plugin, "put_resource_value", endpoint="node-001", path="/3311/0/5851", value=4, no_resp=True)[0] == {
        "status": 204,
        "no_resp": True,
    }
    assert run(plugin, "subscribe", endpoint="node-001", path="/3311/0/5850") == ({"subscribed": True}, [])
    assert run(plugin, "get_resource_subscription", endpoint="node-001", path="/3311/0/5850") == (True, [])
    assert run(plugin, "get_endpoint_subscriptions", endpoint="node-001") == (["/3311/0/5850"], [])
    assert run(plugin, "unsubscribe", endpoint="node-001", path="/3311/0/5850")[0] == {"unsubscribed": True}
    assert run(plugin, "delete_endpoint_subscriptions", endpoint="node-001")[1] == []
    assert run(plugin, "delete_all_subscriptions")[1] == []
    assert run(plugin, "put_pre_subscriptions", rules=[{"endpoint-type": "Sensor"}]) == ({"rules": 1}, [])
    assert run(plugin, "get_pre_subscriptions") == ([{"endpoint-type": "Sensor"}], [])
    assert run(plugin, "delete_resource", endpoint="node-001", path="/3311/0/5800")[0] == {"status": 200}
    assert run(plugin, "delete_endpoint", endpoint="queue-node-01")[0] == {"status": 200}
    assert run(plugin, "get_callback") == (None, [])
    assert run(plugin, "delete_callback") == ({"deleted": False}, [])
    status = run(plugin, "status")[0]
    assert status["running"] and status["reachable"] and status["channel"] == "long_poll"


def test_errors_are_readable_and_secret_free(
    plugin: MbedPlugin, server: MbedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.set_behaviour("node-001", silent=True)
    cases = [
        ("get_resource_value", {"endpoint": "", "path": "/3/0/1"}, "endpoint must be"),
        ("get_resource_value", {"endpoint": "node-001", "path": None}, "path: expected a string"),
        ("get_resource_value", {"endpoint": "node-001", "path": "/3/0/1", "timeout": 99}, "timeout must be"),
        ("put_resource_value", {"endpoint": "node-001", "path": "/3/0/1", "value": [1]}, "value must be"),
        ("put_pre_subscriptions", {"rules": [{"endpoint-name": "a*b"}]}, "only allowed at the end"),
        ("put_callback", {"url": "nope"}, "url must be"),
        ("get_resource_value", {"endpoint": "ghost", "path": "/3/0/1"}, "410"),
        ("get_resources", {"endpoint": "ghost"}, "404"),
        (
            "get_resource_value",
            {"endpoint": "node-001", "path": "/3/0/1", "timeout": 0.3},
            "no answer from the device within 0.3 s",
        ),
        ("subscribe", {"endpoint": "temp-sensor-01", "path": "/3303/0/5701"}, "not observable"),
    ]
    with caplog.at_level(logging.DEBUG):
        for name, args, expected in cases:
            output, errors = run(plugin, name, **args)
            assert output is None and len(errors) == 1 and expected in errors[0], (name, errors)
            assert KEY not in errors[0]
    assert KEY not in caplog.text and "Traceback" not in caplog.text
    assert KEY not in repr(plugin) and KEY not in repr(plugin.client)


def test_bad_configuration(server: MbedServer) -> None:
    with pytest.raises(ValueError, match="channel must be one of"):
        make_plugin(server, channel="smoke-signals")
    with pytest.raises(ValueError, match="base_url"):
        MbedPlugin(base_url="nope", api_key=KEY)


def test_every_kind_of_element_becomes_an_event(plugin: MbedPlugin, server: MbedServer, bus: RecordingBus) -> None:
    run(plugin, "subscribe", endpoint="temp-sensor-01", path="/3303/0/5700")
    server.set_value("temp-sensor-01", "/3303/0/5700", "24.0")
    server.register("node-001")
    server.update_registration("node-001")
    server.deregister("node-001")
    server.expire("queue-node-01")
    note = bus.wait_for(MbedNotificationEvent)[0]
    assert note.args["endpoint"] == "temp-sensor-01" and note.args["value"] == "24.0"
    assert note.args["path"] == "/3303/0/5700" and note.args["content_type"] == "text/plain"
    assert note.args["max_age"] == 60
    registrations = bus.wait_for(MbedRegistrationEvent, 5)  # 3 at start-up, 1 now, + the update (a subclass)
    assert any(e.args["endpoint"] == "node-001" and e.args["endpoint_type"] == "Light" for e in registrations)
    assert bus.wait_for(MbedRegistrationUpdateEvent)[0].args["resources"][0]["path"] == "/3/0/0"
    assert bus.wait_for(MbedDeregistrationEvent)[0].args["endpoint"] == "node-001"
    assert bus.wait_for(MbedRegistrationExpiredEvent)[0].args["endpoint"] == "queue-node-01"
    responses = bus.wait_for(MbedAsyncResponseEvent)
    assert responses[0].args["status"] == 200 and "#" in responses[0].args["async_id"]
    # the hook condition of the docs matches
    condition = EventCondition.build(
        {
            "type": "platypush_ext.mbed.events.MbedNotificationEvent",
            "endpoint": "temp-sensor-01",
            "value": {"$regex": "^2"},
        }
    )
    assert note.matches_condition(condition).is_match


def test_malformed_elements_are_skipped_not_the_batch(
    plugin: MbedPlugin, server: MbedServer, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        requests.post(
            server.url + "/_sandbox/notifications",
            timeout=5,
            json={
                "notifications": [
                    {"ep": "x"},
                    {"ep": "a", "path": "/1", "payload": "MQ=="},
                    "junk",
                    {"ep": "b", "path": "/2", "payload": "%%%"},
                ],
                "de-registrations": [42, "gone-1"],
                "async-responses": [{"status": 200}],
            },
        )
        bus.wait_for(MbedDeregistrationEvent)
        wait_until(lambda: bus.of(MbedNotificationEvent))
    assert [e.args["endpoint"] for e in bus.of(MbedNotificationEvent)] == ["a"]
    assert [e.args["endpoint"] for e in bus.of(MbedDeregistrationEvent)] == ["gone-1"]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 5 and all(
        re.match(r"mbed: dropped [\w-]+\[\d\] of entry \d+ from long_poll: ", x) for x in lines
    )
    status = run(plugin, "status")[0]
    assert status["dropped"] == 5 and status["journal"]["dropped"] == 5
    assert [(d["element"], d["reason"]) for d in status["recent_drops"]] == [
        ("notifications[3]", "payload: not valid base64 (got '%%%')"),
        ("notifications[2]", "the element: expected a JSON object (got 'junk')"),
        ("notifications[0]", "path: missing"),
        ("de-registrations[0]", "the endpoint name: expected a string (got 42)"),
        ("async-responses[0]", "id: missing"),
    ]


def test_listener_faults_backoff_and_events_once(
    server: MbedServer, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    mbed = make_plugin(server)
    server.faults.add("status", count=2, status=503, path="/v2/notification/pull")
    with caplog.at_level(logging.INFO):
        mbed.start()
        try:
            down = bus.wait_for(MbedDisconnectedEvent, timeout=10)
            assert "503" in down[0].args["error"] and down[0].args["channel"] == "long_poll"
            bus.wait_for(MbedConnectedEvent, timeout=20)  # backoff ~1 s, ~2 s (jittered), then back
            server.update_registration("node-001")
            bus.wait_for(MbedRegistrationUpdateEvent, timeout=10)
        finally:
            started = time.monotonic()
            mbed.stop()
            assert time.monotonic() - started < 5
    assert len(bus.of(MbedDisconnectedEvent)) == 1 and len(bus.of(MbedConnectedEvent)) == 1
    assert caplog.text.count("is unavailable") == 1 and caplog.text.count("is reachable again") == 1
    pulls = [p for m, p, s in server.requests if p == "/v2/notification/pull"]
    assert len(pulls) < 40  # never a busy loop


def test_server_restart(server: MbedServer, bus: RecordingBus) -> None:
    mbed = make_plugin(server)
    mbed.start()
    try:
        bus.wait_for(MbedConnectedEvent)
        port = server.port
        server.stop()
        bus.wait_for(MbedDisconnectedEvent, timeout=10)
        restarted = MbedServer(port=port, api_key=KEY, pull_timeout=0.5, demo_devices=True).start()
        try:
            bus.wait_for(MbedConnectedEvent, 2, timeout=20)
            assert run(mbed, "get_resource_value", endpoint="node-001", path="/3/0/1") == ("Mbed", [])
        finally:
            restarted.stop()
    finally:
        mbed.stop()


def test_stop_is_prompt_during_a_long_hold(start_server: Any, bus: RecordingBus) -> None:
    slow = start_server(MbedServer, api_key=KEY, pull_timeout=30.0)
    mbed = make_plugin(slow, pull_timeout=40)
    mbed.start()
    bus.wait_for(MbedConnectedEvent)
    time.sleep(0.5)  # now inside a 30-s hold
    started = time.monotonic()
    mbed.stop()
    assert time.monotonic() - started < 5


def test_channel_stop_and_start_actions(plugin: MbedPlugin, server: MbedServer) -> None:
    assert run(plugin, "stop_channel") == ({"stopped": True}, [])
    assert run(plugin, "status")[0]["running"] is False
    assert run(plugin, "start_channel") == ({"started": True}, [])
    assert run(plugin, "start_channel") == ({"started": False}, [])
    assert run(plugin, "get_resource_value", endpoint="node-001", path="/3/0/1", timeout=5) == ("Mbed", [])


def test_callback_channel(server: MbedServer, bus: RecordingBus) -> None:
    mbed = make_plugin(server, channel="callback")
    mbed.start()
    try:
        bus.wait_for(MbedConnectedEvent, timeout=10)
        callback = run(mbed, "get_callback")[0]
        assert callback["url"].endswith("/mbed/callback") and set(callback["headers"].values()) == {"***"}
        secret = server.callback["headers"]["X-Platypush-Mbed-Secret"]
        # a forged delivery (wrong or no secret) is refused
        forged = requests.put(
            callback["url"],
            json={"de-registrations": ["forged"]},
            timeout=5,
            headers={"X-Platypush-Mbed-Secret": "guess"},
        )
        assert forged.status_code == 401
        assert requests.put(callback["url"], json={"de-registrations": ["forged"]}, timeout=5).status_code == 401
        assert run(mbed, "get_resource_value", endpoint="node-001", path="/3/0/1") == ("Mbed", [])
        run(mbed, "subscribe", endpoint="temp-sensor-01", path="/3303/0/5700")
        server.set_value("temp-sensor-01", "/3303/0/5700", "19.5")
        assert bus.wait_for(MbedNotificationEvent)[0].args["value"] == "19.5"
        assert not [e for e in bus.of(MbedDeregistrationEvent) if e.args["endpoint"] == "forged"]
        # the service lost the callback (restart): re-registered by the periodic check
        mbed._channel.recheck = 0.5  # type: ignore[union-attr]
        server.callback, server.channel = None, None
        wait_until(lambda: server.channel == "callback", timeout=10)
        assert server.callback["headers"]["X-Platypush-Mbed-Secret"] == secret
    finally:
        mbed.stop()
    assert secret not in repr(mbed)


def test_websocket_channel(server: MbedServer, bus: RecordingBus) -> None:
    mbed = make_plugin(server, channel="websocket", api="pelion")
    mbed.start()
    try:
        bus.wait_for(MbedConnectedEvent, timeout=10)
        assert run(mbed, "get_resource_value", endpoint="node-001", path="/3/0/1") == ("Mbed", [])
        run(mbed, "subscribe", endpoint="temp-sensor-01", path="/3303/0/5700")
        server.set_value("temp-sensor-01", "/3303/0/5700", "18.0")
        assert bus.wait_for(MbedNotificationEvent)[0].args["value"] == "18.0"
        requests.delete(
            server.url + "/v2/notification/websocket", headers={"Authorization": f"Bearer {KEY}"}, timeout=5
        )  # closed by the service: reconnects with backoff
        bus.wait_for(MbedDisconnectedEvent, timeout=10)
        bus.wait_for(MbedConnectedEvent, 2, timeout=10)
    finally:
        started = time.monotonic()
        mbed.stop()
        assert time.monotonic() - started < 5


ROOT = Path(__file__).resolve().parents[2]
EVENTS = list(json.loads((ROOT / "platypush_ext/mbed/manifest.json").read_text())["manifest"]["events"])


def test_manifests_are_identical_and_valid() -> None:
    ours = (ROOT / "platypush_ext/mbed/manifest.json").read_text()
    assert ours == (ROOT / "platypush/plugins/mbed/manifest.json").read_text()
    manifest = json.loads(ours)["manifest"]
    assert manifest["package"] == "platypush.plugins.mbed"


@pytest.mark.parametrize("dotted", EVENTS, ids=lambda dotted: dotted.rsplit(".", 1)[1])
def test_every_manifest_event_is_importable(dotted: str) -> None:
    import importlib

    module, name = dotted.rsplit(".", 1)
    assert hasattr(importlib.import_module(module), name)


def test_events_carry_their_journal_id_and_status_counts_the_journal(
    plugin: MbedPlugin, server: MbedServer, bus: RecordingBus
) -> None:
    run(plugin, "subscribe", endpoint="temp-sensor-01", path="/3303/0/5700")
    server.set_value("temp-sensor-01", "/3303/0/5700", "18", count=3, numbered_from=0)
    events = wait_until(lambda: [e for e in bus.of(MbedNotificationEvent) if e.args["value"].startswith("18")])
    ids = [e.args["journal_id"] for e in events]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"\d+\.\d+", i) for i in ids)
    journal = run(plugin, "status")[0]["journal"]
    assert journal["pending"] == 0 and journal["posted"] >= 1 and journal["duplicates"] == 0


def test_a_message_nobody_received_is_posted_again_after_a_restart(
    server: MbedServer, redis_bus: RedisBus, redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MbedPlugin, "DELIVERY_TIMEOUT", 0.2)
    message = {"notifications": [{"ep": "node-9", "path": "/1/0/1", "ct": "text/plain", "payload": "NDI="}]}
    first = make_plugin(server)
    assert first.on_message(json.dumps(message)) == 1  # journaled, posted, but nobody listened
    assert ok_status(first)["journal"] == {"pending": 1, "posted": 0, "dropped": 0, "duplicates": 0}
    first.journal.append("long_poll", ["not JSON"])  # a journaled message that cannot be parsed
    first.stop()
    listener = Listener(redis_server.port)
    try:
        again = make_plugin(server)
        assert again.post_pending() == 1  # the malformed one is dropped, not delivered
        wait_until(lambda: [m for m in listener.received if m.args.get("endpoint") == "node-9"])
        event = next(m for m in listener.received if m.args.get("endpoint") == "node-9")
        assert (event.args["value"], event.args["journal_id"]) == ("42", "1.0")
        assert ok_status(again)["journal"] == {"pending": 0, "posted": 1, "dropped": 1, "duplicates": 0}
        again.stop()
    finally:
        listener.close()


def test_the_channel_waits_for_a_bus_subscriber_before_its_first_pull(
    server: MbedServer, redis_bus: RedisBus, redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MbedPlugin, "LISTEN_TIMEOUT", 0.2)
    mbed = make_plugin(server)
    mbed.start()
    try:
        time.sleep(0.6)  # three waits for a subscriber, each logged
        assert server.channel is None  # no pull yet: what it took would be lost
        listener = Listener(redis_server.port)
        try:
            wait_until(lambda: server.channel == "long_poll", timeout=5)
        finally:
            listener.close()
    finally:
        mbed.stop()


def test_a_plugin_stopped_while_waiting_for_the_bus_never_pulls(
    server: MbedServer, redis_bus: RedisBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MbedPlugin, "LISTEN_TIMEOUT", 0.1)
    mbed = make_plugin(server)
    mbed.start()
    time.sleep(0.3)
    mbed.stop()
    wait_until(lambda: not mbed._thread or not mbed._thread.is_alive(), timeout=5)
    assert server.channel is None


def ok_status(plugin: MbedPlugin) -> dict[str, Any]:
    output, errors = run(plugin, "status")
    assert errors == []
    return output


def test_a_malformed_async_response_is_dropped_and_its_action_ends_at_its_timeout(
    start_server: Any, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    """An async response the service garbles is dropped (one line, counted): the action waiting for it
    fails at its own timeout, never later; a well-formed one still answers its action."""
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5, demo_devices=True, record=True)
    mbed = make_plugin(server)
    mbed.start()
    try:
        bus.wait_for(MbedConnectedEvent)
        server.set_behaviour("node-001", silent=True)
        answers: list[Any] = []
        with caplog.at_level(logging.WARNING):
            waiting = threading.Thread(
                target=lambda: answers.append(
                    run(mbed, "put_resource_value", endpoint="node-001", path="/3311/0/5850", value=1, timeout=2)
                )
            )
            started = time.monotonic()
            waiting.start()
            accepted = wait_until(lambda: [e for e in server.exchanges or [] if e.status == 202], timeout=5)
            async_id = json.loads(accepted[-1].response_body)["async-response-id"]
            server.enqueue_raw(json.dumps({"async-responses": [{"id": async_id, "status": "2OO"}]}).encode())
            waiting.join(10)
        elapsed = time.monotonic() - started
        ((output, errors),) = answers
        assert output is None and "no answer from the device within 2 s" in errors[0] and elapsed < 3
        dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        line = r"mbed: dropped async-responses\[0\] of entry \d+ from long_poll: status: expected a whole number \(got '2OO'\)"
        assert len(dropped) == 1 and re.fullmatch(line, dropped[0]), dropped
        assert not [r for r in caplog.records if r.exc_info]
        assert run(mbed, "status")[0]["dropped"] == 1
        server.set_behaviour("node-001", silent=False)
        assert run(mbed, "put_resource_value", endpoint="node-001", path="/3311/0/5850", value=1) == (
            {"status": 200},
            [],
        )
    finally:
        mbed.stop()
