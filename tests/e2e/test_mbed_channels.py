"""End to end: the callback and WebSocket notification channels inside a real Platypush
(the long poll is covered by test_mbed.py): a device's answer arrives through the channel
and becomes the action's value, and a subscribed change becomes an event on /ws/events."""

from __future__ import annotations

import pytest

from platypush_ext.sandbox.mbed import MbedServer
from tests.support import wait_until

KEY = "e2e-mbed-channels-key-4242"
NOTIFICATION = "platypush_ext.mbed.events.MbedNotificationEvent"
CONNECTED = "platypush_ext.mbed.events.MbedConnectedEvent"

CHANNELS = {
    # the plugin's own receiver, registered with PUT /v2/notification/callback
    "callback": {"channel": "callback", "callback_bind": "127.0.0.1", "callback_port": 0},
    # Pelion / Izuma style: /v2/device-requests and the notification WebSocket
    "websocket": {"channel": "websocket", "api": "pelion"},
}


@pytest.fixture(scope="module", params=sorted(CHANNELS))
def env(request, launch):
    mbed = MbedServer(api_key=KEY, pull_timeout=2, demo_devices=True).start()
    config = {"mbed": {"base_url": mbed.base_url, "api_key": KEY, "async_timeout": 10, **CHANNELS[request.param]}}
    platypush = launch(config, f"platypush-mbed-{request.param}")
    yield {"platypush": platypush, "mbed": mbed, "channel": request.param}
    platypush.stop()  # before the next channel's
    mbed.stop()


def test_the_channel_is_registered_with_the_service(env):
    pp, mbed = env["platypush"], env["mbed"]
    # the channel opens once Platypush's main loop listens on the bus (what it brings is then delivered)
    status = wait_until(lambda: (s := pp.run("mbed.status"))["running"] and s, timeout=5)
    assert status["channel"] == env["channel"] and status["running"] is True
    # the channel thread runs; its registration with the service may still be on its way
    wait_until(lambda: mbed.channel == env["channel"], timeout=5)
    assert KEY not in pp.log_tail(400)


def test_device_answers_and_notifications_flow_through_the_channel(env):
    pp, mbed = env["platypush"], env["mbed"]
    assert pp.run("mbed.get_resource_value", endpoint="node-001", path="/3/0/1") == "Mbed"
    assert pp.run("mbed.subscribe", endpoint="temp-sensor-01", path="/3303/0/5700") == {"subscribed": True}
    with pp.events() as events:
        mbed.set_value("temp-sensor-01", "/3303/0/5700", "17.25")
        note = events.wait_for(lambda e: e["type"] == NOTIFICATION and e["value"] == "17.25", timeout=15)
    assert (note["endpoint"], note["path"]) == ("temp-sensor-01", "/3303/0/5700")
