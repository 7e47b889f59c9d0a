"""The Pelion-mode sandbox of the mbed tests (``test_pelion.py``, ``test_rules.py``,
``test_conformance.py``, ``tests/e2e/test_mbed_pelion.py``): its fleet, a client for it, and an
:class:`Inbox` of the notifications a channel brings."""

from __future__ import annotations

from typing import Any

from platypush_ext.core.backoff import Backoff
from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.mbed.channels import WebSocketChannel
from platypush_ext.mbed.client import MbedClient
from platypush_ext.sandbox.mbed import MbedServer

KEY = "pelion-test-key-2468"
TEMP = "/3303/0/5700"


#: This module's own fleet (the demo fleet may grow): name, type, resources.
FLEET = [
    (
        "node-001",
        "Light",
        [
            ("/3/0/0", "ARM", False),
            ("/3/0/1", "Mbed", False),
            ("/3311/0/5850", "0", True),
            ("/3311/0/5851", "50", True),
        ],
    ),
    ("temp-sensor-01", "Sensor", [(TEMP, "21.5", True)]),
    ("queue-node-01", "QueueModeNode", [("/3/0/1", "QNode", False)]),
]
NODE, SENSOR = MbedServer.device_id("node-001"), MbedServer.device_id("temp-sensor-01")


def start(api: str = "pelion", record: bool = True) -> MbedServer:
    server = MbedServer(api_key=KEY, pull_timeout=1, api=api, record=record).start()
    for name, kind, resources in FLEET:
        server.add_device(
            name,
            kind,
            queue_mode=kind == "QueueModeNode",
            resources=[{"path": p, "value": v, "obs": o} for p, v, o in resources],
        )
    return server


def make_client(server: MbedServer, api: str = "pelion") -> MbedClient:
    retry = RetryPolicy(attempts=2, backoff=0.05, backoff_max=0.2)
    return MbedClient(server.base_url, KEY, api=api, timeouts=Timeouts(2, 3), async_timeout=5, retry=retry)


class Inbox:
    """A channel of ``kind`` feeding the client; keeps the parsed notifications."""

    def __init__(self, client: MbedClient, kind: type = WebSocketChannel, **kwargs: Any):
        self.items: list[dict[str, Any]] = []
        self.channel = kind(client, self.take, backoff=Backoff(base=0.05, cap=0.2), **kwargs)

    def take(self, message: Any) -> None:
        for item in self.channel.client.handle_notification(message):
            if item.kind == "notifications":
                self.items.append(item.data)

    def values(self) -> list[str]:
        return [n["value"] for n in self.items]

    def __enter__(self) -> Inbox:
        self.channel.start_thread()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.channel.stop(timeout=5)
