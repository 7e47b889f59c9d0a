"""End to end: a real ``platypush`` process with real Redis and the installed bundle,
against the mbed sandbox (and the Pushjet and NikDev sandboxes for the cross-plugin chains)."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer
from platypush_ext.sandbox.pushjet import PushjetServer

KEY = "e2e-mbed-access-key-31337"
NOTIFICATION = "platypush_ext.mbed.events.MbedNotificationEvent"
PUSHJET_MESSAGE = "platypush_ext.pushjet.events.PushjetMessageEvent"

# The @when equivalent of the original library's setHandler("de-registrations", fn).
SCRIPT = """
from platypush import run, when
from platypush_ext.mbed.events import MbedDeregistrationEvent


@when(MbedDeregistrationEvent)
def on_deregistration(event, **_):
    run("variable.set", last_gone=event.args["endpoint"])
"""


@pytest.fixture(scope="module")
def env(serve, launch):
    mbed = serve(MbedServer, api_key=KEY, pull_timeout=2, demo_devices=True)
    pushjet = serve(PushjetServer)
    nikdev = serve(NikdevServer)
    remote = PushjetClient(pushjet.base_url)
    alerts = remote.create_service("mbed alerts")
    device = str(uuid.uuid4())
    remote.subscribe(device, alerts.public_key)
    config = {
        "mbed": {
            "base_url": mbed.base_url,
            "api_key": KEY,
            "channel": "long_poll",
            "pull_timeout": 10,
            "async_timeout": 10,
        },
        "pushjet": {
            "base_url": pushjet.base_url,
            "devices": [device],
            "services": {"alerts": {"secret": alerts.secret_key}},
            "poll_interval": 4,
        },
        "event.hook.HotTemperatureToPushjet": {
            "if": {
                "type": NOTIFICATION,
                "endpoint": {"$eq": "temp-sensor-01"},
                "path": {"$eq": "/3303/0/5700"},
                "value": {"$regex": "^(2[89]|[3-9][0-9])"},
            },
            "then": [
                {
                    "action": "pushjet.send",
                    "args": {
                        "service": "alerts",
                        "title": "mbed",
                        "importance": 4,
                        "message": "${endpoint}${path} is ${value}",
                    },
                }
            ],
        },
        # every temperature reading is recorded to NikDev by a procedure (add_value + commit_and_push)
        "nikdev": {
            "base_url": nikdev.base_url,
            "device_id": DEFAULT_DEVICE_ID,
            "api_key": DEFAULT_API_KEY,
            "flush_interval": 1,
        },
        "procedure.record_reading(field, value)": [
            {"action": "nikdev.add_value", "args": {"field": "${field}", "value": "${value}"}},
            {"action": "nikdev.commit_and_push"},
        ],
        "event.hook.RecordTemperatureToNikdev": {
            "if": {"type": NOTIFICATION, "endpoint": "temp-sensor-01", "path": "/3303/0/5700"},
            "then": [{"action": "procedure.record_reading", "args": {"field": "temp", "value": "${value}"}}],
        },
    }
    platypush = launch(config, "platypush-mbed", scripts={"mbed_hooks.py": SCRIPT})
    return {"platypush": platypush, "mbed": mbed, "pushjet": pushjet, "nikdev": nikdev}


def test_get_resource_value_returns_the_device_value(env):
    pp = env["platypush"]
    assert pp.run("mbed.get_resource_value", endpoint="node-001", path="/3/0/1") == "Mbed"
    env["mbed"].set_value("node-001", "/3/0/0", "Arm Ltd")  # not cached yet: asked from the device
    assert pp.run("mbed.get_resource_value", endpoint="node-001", path="/3/0/0", details=True)["value"] == "Arm Ltd"
    endpoints = pp.run("mbed.get_endpoints", type="Sensor")
    assert [e["name"] for e in endpoints] == ["temp-sensor-01"]


def test_errors_come_back_readable_without_the_key(env):
    pp = env["platypush"]
    response = pp.execute("mbed.get_resource_value", endpoint="ghost", path="/3/0/1")
    assert response["errors"] and "410" in response["errors"][0] and KEY not in response["errors"][0]
    response = pp.execute("mbed.put_pre_subscriptions", rules=[{"endpoint-name": "a*b"}])
    assert "'*' is only allowed at the end of endpoint-name" in response["errors"][0]
    assert KEY not in pp.log_tail(400)


def test_cross_plugin_chain_device_change_to_pushjet_event(env):
    pp, mbed = env["platypush"], env["mbed"]
    assert pp.run("mbed.subscribe", endpoint="temp-sensor-01", path="/3303/0/5700") == {"subscribed": True}
    with pp.events() as events:
        mbed.set_value("temp-sensor-01", "/3303/0/5700", "29.5")  # the device's value changes
        note = events.wait_for(lambda e: e["type"] == NOTIFICATION and e["value"] == "29.5", timeout=10)
        assert note["endpoint"] == "temp-sensor-01" and note["content_type"] == "text/plain"
        message = events.wait_for(lambda e: e["type"] == PUSHJET_MESSAGE and e["title"] == "mbed", timeout=20)
    assert message["message"] == "temp-sensor-01/3303/0/5700 is 29.5" and message["importance"] == 4


def test_cross_plugin_chain_device_change_recorded_to_nikdev(env):
    """mbed notification → hook → procedure with nikdev.add_value + commit_and_push → NikDev server."""
    pp, mbed, nikdev = env["platypush"], env["mbed"], env["nikdev"]
    pp.run("mbed.subscribe", endpoint="temp-sensor-01", path="/3303/0/5700")
    mbed.set_value("temp-sensor-01", "/3303/0/5700", "23.25")
    deadline = time.monotonic() + 20
    while "23.25" not in [str(v) for v in nikdev.received_values("temp")]:
        assert time.monotonic() < deadline, f"not recorded; NikDev got {nikdev.received_values('temp')}"
        time.sleep(0.2)
    assert pp.run("nikdev.status")["pending"] == 0


def pushjet_sends(pushjet: PushjetServer) -> int:
    return sum(1 for method, path, status in pushjet.requests if method == "POST" and path.endswith("/message"))


def test_cold_reading_does_not_fire_the_hot_temperature_hook(env):
    """endpoint and path match, the value's regex does not: no pushjet.send (PLATYPUSH.md §11 item 22)."""
    pp, mbed, nikdev, pushjet = env["platypush"], env["mbed"], env["nikdev"], env["pushjet"]
    pp.run("mbed.subscribe", endpoint="temp-sensor-01", path="/3303/0/5700")
    sent = pushjet_sends(pushjet)
    mbed.set_value("temp-sensor-01", "/3303/0/5700", "21.75")
    deadline = time.monotonic() + 20  # the other hook of this notification ran: the hooks were matched
    while "21.75" not in [str(v) for v in nikdev.received_values("temp")]:
        assert time.monotonic() < deadline, "the notification did not reach the hooks"
        time.sleep(0.2)
    time.sleep(1)  # time for a wrongly matching hook's pushjet.send
    assert pushjet_sends(pushjet) == sent


def test_when_script_and_registration_events(env):
    pp, mbed = env["platypush"], env["mbed"]
    with pp.events() as events:
        mbed.deregister("queue-node-01")
        events.wait_for(lambda e: e["type"].endswith("MbedDeregistrationEvent"), timeout=10)
    deadline = time.monotonic() + 10
    while pp.run("variable.get", name="last_gone").get("last_gone") != "queue-node-01":
        assert time.monotonic() < deadline, "the @when script did not run"
        time.sleep(0.2)


def test_channel_outage_is_reported_once(env):
    pp, mbed = env["platypush"], env["mbed"]
    with pp.events() as events:
        mbed.faults.add("status", count=2, status=503, path="/v2/notification/pull")
        down = events.wait_for(lambda e: e["type"].endswith("MbedDisconnectedEvent"), timeout=15)
        assert "503" in down["error"] and KEY not in down["error"]
        events.wait_for(lambda e: e["type"].endswith("MbedConnectedEvent"), timeout=20)
    assert requests.get(mbed.url + "/_sandbox/health", timeout=5).ok
