"""Issue 20, Izuma / Pelion, in the plugin (in-process, against the sandbox): the queueing arguments of
the device actions and their defaults in the configuration, suspended devices on the dashboard, and
devices that leave — the plugin forgets them, so that its memory and ``status`` stay bounded under
device churn."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from platypush_ext.core.errors import InvalidArgumentError
from platypush_ext.mbed.entities import Endpoint
from platypush_ext.mbed.errors import NotInThisApiError
from platypush_ext.mbed.events import MbedConnectedEvent
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.mbed.fleets import HOME, simulated
from tests.mbed import openapi_check
from tests.mbed.support import KEY, make_plugin, run
from tests.support import RecordingBus, wait_until

pytestmark = pytest.mark.usefixtures("workdir", "entity_registry_redis")
LIGHT = "/3311/0/5850"


class Panel:
    """What the plugin shows (the last published state of each endpoint) and what it removed."""

    def __init__(self, plugin: MbedPlugin):
        assert plugin._sync is not None
        self.shown: dict[str, Endpoint] = {}
        self.removed: list[str] = []
        self.unreachable: set[str] = set()  # every endpoint ever published unreachable
        self._lock = threading.Lock()
        plugin._sync.publish, plugin._sync.remove = self.publish, self.remove  # the seams to Platypush

    def publish(self, endpoints: list[Endpoint]) -> None:
        with self._lock:
            self.shown.update({e.name: e for e in endpoints})
            self.unreachable |= {e.name for e in endpoints if not e.reachable or e.suspended}

    def remove(self, endpoints: list[Endpoint]) -> None:
        with self._lock:
            for endpoint in endpoints:
                self.shown.pop(endpoint.name, None)
                self.removed.append(endpoint.name)

    def reachable(self, name: str) -> bool | None:
        with self._lock:
            endpoint = self.shown.get(name)
        return None if endpoint is None else endpoint.reachable and not endpoint.suspended


def started(server: MbedServer, bus: RecordingBus, **config: Any) -> tuple[MbedPlugin, Panel]:
    plugin = make_plugin(server, entities_enabled=True, **config)
    panel = Panel(plugin)
    plugin.start()
    bus.wait_for(MbedConnectedEvent)
    return plugin, panel


def device_requests(server: MbedServer) -> list[dict[str, str]]:
    return [
        {k: v for k, v in e.query.items() if k != "async-id"}
        for e in server.exchanges or []
        if e.path.startswith("/v2/device-requests/")
    ]


@pytest.fixture
def pelion(start_server: Any) -> MbedServer:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5, api="pelion", record=True, time_scale=0.01)
    server.add_fleet(HOME, announce=False)
    return server


def test_the_actions_send_retry_and_expiry_and_the_config_gives_defaults(pelion: MbedServer, bus: RecordingBus) -> None:
    plugin = make_plugin(pelion, api="pelion", device_request_retry=1, device_request_expiry_seconds=600)
    plugin.start()
    try:
        bus.wait_for(MbedConnectedEvent)
        light = MbedServer.device_id("hall-light")
        assert run(plugin, "put_resource_value", endpoint=light, path=LIGHT, value=1, expiry_seconds=7200, retry=3) == (
            {"status": 200},
            [],
        )
        assert run(plugin, "get_resource_value", endpoint=light, path=LIGHT)[0] in ("1", 1)
        assert run(plugin, "post_resource", endpoint=light, path=LIGHT, retry=0)[1] == []
        output, errors = run(plugin, "delete_resource", endpoint=light, path="/3311/0/5851", retry=11)
        assert output is None and len(errors) == 1 and "retry must be a whole number from 0 to 10" in errors[0]
        assert "\n" not in errors[0]
    finally:
        plugin.stop()
    assert device_requests(pelion) == [
        {"retry": "3", "expiry-seconds": "7200"},
        {"retry": "1", "expiry-seconds": "600"},
        {"retry": "0", "expiry-seconds": "600"},
    ]
    assert not openapi_check.check_all(pelion.exchanges or [])


def test_a_sleeping_devices_expired_write_is_one_line(pelion: MbedServer, bus: RecordingBus) -> None:
    plugin = make_plugin(pelion, api="pelion")
    plugin.start()
    try:
        bus.wait_for(MbedConnectedEvent)
        light = MbedServer.device_id("hall-light")
        pelion.set_behaviour(light, asleep=True)
        _, errors = run(plugin, "put_resource_value", endpoint=light, path=LIGHT, value=1, expiry_seconds=60)
        assert len(errors) == 1 and "429 REQUEST_EXPIRED" in errors[0], errors
    finally:
        plugin.stop()


@pytest.mark.parametrize(
    "config, message",
    [
        ({"device_request_retry": 2}, "the Connector API has no request queue"),
        ({"api": "pelion", "device_request_retry": 12}, "retry must be a whole number from 0 to 10"),
        ({"api": "pelion", "device_request_expiry_seconds": 30}, "expiry_seconds must be a whole number from 60"),
        ({"stale_after": -1}, "stale_after and directory_interval must be at least 0"),
    ],
)
def test_bad_configuration_is_one_line(start_server: Any, config: dict[str, Any], message: str) -> None:
    server = start_server(MbedServer, api_key=KEY)
    with pytest.raises((InvalidArgumentError, NotInThisApiError), match=message) as refused:
        make_plugin(server, entities_enabled=True, **config)
    assert "\n" not in str(refused.value)


def test_suspended_devices_show_unreachable(pelion: MbedServer, bus: RecordingBus) -> None:
    sensor, plug = MbedServer.device_id("living-room-sensor"), MbedServer.device_id("kitchen-plug")
    pelion.set_behaviour(plug, system_suspended=True)  # suspended before the plugin starts
    plugin, panel = started(pelion, bus, api="pelion")
    try:
        wait_until(lambda: panel.reachable(sensor) is True and panel.reachable(plug) is False, timeout=10)
        listed = {e["label"]: e["suspended"] for e in run(plugin, "get_endpoints")[0]}
        assert listed["kitchen-plug"] is True and listed["living-room-sensor"] is False
        devices = {d["name"]: d for d in run(plugin, "get_devices")[0]}
        assert devices["kitchen-plug"]["system_suspended"] is True and devices["kitchen-plug"]["suspended"] is True
        assert [d["name"] for d in run(plugin, "get_devices", suspended=True)[0]] == ["kitchen-plug"]
        assert run(plugin, "suspend_device", endpoint=sensor, description="maintenance")[1] == []
        wait_until(lambda: panel.reachable(sensor) is False)
        assert pelion.devices[sensor].operator_suspended is True
        assert run(plugin, "resume_device", endpoint=sensor) == ({"endpoint": sensor, "suspended": False}, [])
        wait_until(lambda: panel.reachable(sensor) is True)
        _, errors = run(plugin, "suspend_device", endpoint=sensor, category="Lost!")
        assert len(errors) == 1 and "category must be a block category" in errors[0]
    finally:
        plugin.stop()
    assert not openapi_check.check_all(pelion.exchanges or [])


def test_a_departed_device_leaves_after_stale_after(start_server: Any, bus: RecordingBus) -> None:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    server.add_fleet(HOME, announce=False)
    plugin, panel = started(server, bus, stale_after=0.5, directory_interval=0)
    try:
        wait_until(lambda: panel.reachable("kitchen-plug") is True)
        server.deregister("kitchen-plug")
        wait_until(lambda: "kitchen-plug" in panel.removed, timeout=10)
        assert "kitchen-plug" in panel.unreachable  # first shown unreachable, then gone
        assert plugin._sync.fleet.get("kitchen-plug") is None and plugin._sync.stats["removed"] == 1
        server.register("kitchen-plug")  # it comes back: shown again
        wait_until(lambda: panel.reachable("kitchen-plug") is True)
        with server._cond:  # one message: back long before stale_after, whatever the load
            server.expire("hall-light")
            server.update_registration("hall-light")
        wait_until(lambda: panel.reachable("hall-light") is True)
        assert "hall-light" not in panel.removed
    finally:
        plugin.stop()


def test_a_device_gone_from_the_directory_leaves(start_server: Any, bus: RecordingBus) -> None:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    server.add_fleet(HOME, announce=False)
    plugin, panel = started(server, bus, stale_after=600, directory_interval=0.5)
    try:
        wait_until(lambda: panel.reachable("garden-barometer") is True)
        with server._cond:
            server.devices.pop("garden-barometer")  # gone, with no de-registration
        wait_until(lambda: "garden-barometer" in panel.removed, timeout=10)
        assert run(plugin, "status")[0]["entities"]["endpoints"] == len(HOME) - 1
    finally:
        plugin.stop()


def test_memory_and_status_stay_bounded_under_device_churn(start_server: Any, bus: RecordingBus) -> None:
    """200 devices register and leave in waves of 20; the plugin holds at most about two waves."""
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    plugin, panel = started(server, bus, stale_after=0.3, directory_interval=0, entities_max_reads=0)
    assert plugin._sync is not None
    tracked: list[int] = []
    try:
        for wave in range(10):
            fleet = simulated(20, prefix=f"churn{wave}-")
            server.add_fleet(fleet)
            wait_until(lambda f=fleet: all(panel.reachable(d["name"]) for d in f), timeout=20)
            for device in fleet:
                server.deregister(device["name"])
            tracked.append(plugin._sync.tracked())
        wait_until(lambda: plugin._sync.tracked() == 0, timeout=20)
        status = run(plugin, "status")[0]["entities"]
    finally:
        plugin.stop()
    assert max(tracked) <= 60, tracked  # without the removal: 20, 40, ... 200
    assert status["endpoints"] == status["tracked"] == 0 and status["removed"] == 200
    assert len(panel.removed) == 200 and not panel.shown
