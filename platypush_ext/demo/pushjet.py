"""Demo part: Pushjet messages sent over ``/execute`` come back as events that fire a hook."""

from __future__ import annotations

import uuid

from ..core.untrusted import JSONObject
from ..pushjet.client import PushjetClient
from . import DemoContext

TITLE = "Pushjet push notifications"
ORDER = 10

EVENT = "platypush_ext.pushjet.events.PushjetMessageEvent"


def configure(ctx: DemoContext) -> JSONObject:
    # A service and a subscribed device on the sandbox, as a user would set them up once.
    client = PushjetClient(ctx.servers["pushjet"].base_url)
    service = client.create_service("Platypush demo")
    device = str(uuid.uuid4())
    client.subscribe(device, service.public_key)
    ctx.shared.update(pushjet_service="demo", pushjet_device=device, pushjet_public_key=service.public_key)
    return {
        "pushjet": {
            "base_url": ctx.servers["pushjet"].base_url,
            "devices": [device],
            "services": {"demo": {"secret": service.secret_key}},
            "poll_interval": 4,
        },
        # An urgent message makes Platypush answer with a follow-up message.
        "event.hook.DemoUrgentPushjetMessage": {
            "if": {"type": EVENT, "importance": {"$gte": 4}},
            "then": [
                {
                    "action": "pushjet.send",
                    "args": {"service": "demo", "message": "Hook fired for: ${message}", "importance": 1},
                }
            ],
        },
    }


def run(ctx: DemoContext) -> None:
    assert ctx.platypush and ctx.events
    ctx.say("POST /execute pushjet.send(service='demo', message='Front door opened', importance=5)")
    output = ctx.platypush.run("pushjet.send", service="demo", message="Front door opened", title="Home", importance=5)
    ctx.say(f"response: {output}")
    event = ctx.events.wait_for(lambda e: e["type"] == EVENT and e["message"] == "Front door opened", 20)
    ctx.say(
        f"event on /ws/events: PushjetMessageEvent(message={event['message']!r}, "
        f"importance={event['importance']}, service_name={event['service_name']!r})"
    )
    echo = ctx.events.wait_for(lambda e: e["type"] == EVENT and e["message"].startswith("Hook fired"), 20)
    ctx.say(f"the hook DemoUrgentPushjetMessage answered with pushjet.send: {echo['message']!r}")
    subscriptions = ctx.platypush.run("pushjet.get_subscriptions")
    ctx.say(f"pushjet.get_subscriptions: the device follows {[s['service']['name'] for s in subscriptions]}")
