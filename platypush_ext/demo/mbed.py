"""Demo part: mbed devices become Platypush actions and events; a device's value
change fires a hook that sends a Pushjet message, which comes back as a Pushjet event."""

from __future__ import annotations

from typing import cast

from ..core.untrusted import JSONObject
from ..sandbox.mbed import MbedServer
from . import DemoContext

TITLE = "mbed Device Connector devices"
ORDER = 20

NOTIFICATION = "platypush_ext.mbed.events.MbedNotificationEvent"
PUSHJET_MESSAGE = "platypush_ext.pushjet.events.PushjetMessageEvent"
SENSOR, TEMPERATURE = "temp-sensor-01", "/3303/0/5700"


def configure(ctx: DemoContext) -> JSONObject:
    server = cast(MbedServer, ctx.servers["mbed"])
    server.add_demo_devices()  # a light, a temperature sensor, a queue-mode node
    server.pull_timeout = 5.0
    config: JSONObject = {
        "mbed": {"base_url": server.base_url, "api_key": server.api_key, "channel": "long_poll", "async_timeout": 10},
    }
    service = ctx.shared.get("pushjet_service")
    if service:  # the pushjet part configured a service: a hot sensor sends a push message
        config["event.hook.DemoHotTemperature"] = {
            # every key an operator: Platypush 1.3.39 ignores an operator after a plain key
            "if": {
                "type": NOTIFICATION,
                "endpoint": {"$eq": SENSOR},
                "path": {"$eq": TEMPERATURE},
                "value": {"$regex": "^(2[89]|[3-9][0-9])"},
            },
            "then": [
                {
                    "action": "pushjet.send",
                    "args": {
                        "service": service,
                        "title": "mbed",
                        "importance": 4,
                        "message": "${endpoint} reports ${value} °C",
                    },
                }
            ],
        }
    return config


def run(ctx: DemoContext) -> None:
    assert ctx.platypush and ctx.events
    server, platypush = cast(MbedServer, ctx.servers["mbed"]), ctx.platypush
    endpoints = platypush.run("mbed.get_endpoints")
    ctx.say(f"mbed.get_endpoints: {[(e['name'], e['type']) for e in endpoints]}")
    model = platypush.run("mbed.get_resource_value", endpoint="node-001", path="/3/0/1")
    ctx.say(f"mbed.get_resource_value(node-001, /3/0/1) -> {model!r} (202 + async response on the long poll)")
    platypush.run("mbed.put_resource_value", endpoint="node-001", path="/3311/0/5850", value=1)
    ctx.say(
        f"mbed.put_resource_value(node-001, /3311/0/5850, 1): the light is now "
        f"{server.devices['node-001'].resources['/3311/0/5850'].value.decode()!r} on the device"
    )
    platypush.run("mbed.subscribe", endpoint=SENSOR, path=TEMPERATURE)
    ctx.say(f"mbed.subscribe({SENSOR}, {TEMPERATURE}); the sensor now reports 29.5 °C")
    server.set_value(SENSOR, TEMPERATURE, "29.5")
    event = ctx.events.wait_for(lambda e: e["type"] == NOTIFICATION and e["value"] == "29.5", 15)
    ctx.say(
        f"event on /ws/events: MbedNotificationEvent(endpoint={event['endpoint']!r}, "
        f"path={event['path']!r}, value={event['value']!r})"
    )
    if ctx.shared.get("pushjet_service"):
        message = ctx.events.wait_for(lambda e: e["type"] == PUSHJET_MESSAGE and e.get("title") == "mbed", 20)
        ctx.say(f"the hook DemoHotTemperature sent pushjet.send; the Pushjet listener received {message['message']!r}")
