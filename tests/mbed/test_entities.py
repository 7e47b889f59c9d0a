"""mbed endpoints as Platypush entities, in-process: the IPSO map, overrides, the start-up sync
against the sandbox, live updates from the channel, unreachable devices, the entity actions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from platypush.entities.batteries import Battery
from platypush.entities.devices import Device
from platypush.entities.dimmers import Dimmer
from platypush.entities.humidity import HumiditySensor
from platypush.entities.presence import PresenceSensor
from platypush.entities.switches import Switch
from platypush.entities.temperature import TemperatureSensor

from platypush_ext.core.errors import InvalidArgumentError
from platypush_ext.mbed.entities import Endpoint, Shown, to_platypush
from platypush_ext.mbed.events import MbedConnectedEvent, MbedNotificationEvent
from platypush_ext.mbed.ipso import IPSO, TYPES, EntityMap, Kind, encode_value, parse_value
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.mbed.fleets import HOME, simulated
from tests.mbed.support import KEY, make_plugin, run
from tests.support import RecordingBus, wait_until

# each test has its own notification journal (workdir); the plugin registers its entities in Redis
pytestmark = pytest.mark.usefixtures("workdir", "entity_registry_redis")


class Dashboard:
    """What the plugin publishes, as the Platypush entities it builds (the last version of each)."""

    def __init__(self, plugin: MbedPlugin):
        self.plugin, self.entities, self.publishes = plugin, {}, 0
        self._lock = threading.Lock()
        plugin._sync.publish = self.publish  # the seam EntitySync calls instead of Platypush's engine

    def publish(self, endpoints: list[Endpoint]) -> None:
        entities = self.plugin.transform_entities(endpoints)
        with self._lock:
            self.publishes += 1
            self.entities.update({e.external_id or e.id: e for e in entities})

    def get(self, entity_id: str) -> Any:
        with self._lock:
            return self.entities.get(entity_id)

    def value(self, entity_id: str) -> Any:
        entity = self.get(entity_id)
        return None if entity is None else getattr(entity, "state" if isinstance(entity, Switch) else "value")


def home_server(start_server: Any, announce: bool = False) -> MbedServer:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    server.add_fleet(HOME, announce=announce)
    return server


@pytest.fixture
def server(start_server: Any) -> MbedServer:
    return home_server(start_server)


def started(server: MbedServer, bus: RecordingBus, **config: Any) -> tuple[MbedPlugin, Dashboard]:
    plugin = make_plugin(server, entities_enabled=True, **config)
    dashboard = Dashboard(plugin)
    plugin.start()
    bus.wait_for(MbedConnectedEvent)
    return plugin, dashboard


@pytest.fixture
def home(server: MbedServer, bus: RecordingBus) -> Iterator[tuple[MbedPlugin, Dashboard]]:
    plugin, dashboard = started(server, bus)
    wait_until(lambda: dashboard.value("garden-barometer/3323/0/5700") is not None)
    yield plugin, dashboard
    plugin.stop()


# -- the map ----------------------------------------------------------------------


def test_the_ipso_map_names_types_and_units() -> None:
    entity_map = EntityMap()
    assert entity_map.kind("/3303/0/5700") == Kind("temperature", "Temperature", "°C")
    assert entity_map.kind("/3303/1/5700").name == "Temperature 2"
    assert entity_map.kind("/3311/0/5851").writable and entity_map.kind("/3311/0/5851").max == 100
    assert entity_map.kind("/3/0/9").type == "battery" and not entity_map.kind("/3/0/9").writable
    assert all(kind.type in TYPES for kind in IPSO.values())


@pytest.mark.parametrize("path", ["/3/0/0", "/26241/0/1", "/3303/0", "/3303/x/5700", ""])
def test_the_ipso_map_has_no_kind_for(path: str) -> None:
    assert EntityMap().kind(path) is None, path


def test_overrides_map_and_hide() -> None:
    entity_map = EntityMap(
        {
            "/26241/0/1": {"type": "temperature", "unit": "°F", "name": "Boiler"},
            "/26242/*/7": {"type": "Switch"},
            "/3303/0/5700": {"type": "none"},
            "3304/*/5700": {"type": "numeric", "unit": "g/m³", "min": 0, "writable": False},
        }
    )
    assert entity_map.kind("/26241/0/1") == Kind("temperature", "Boiler", "°F")
    assert entity_map.kind("/26241/1/1") is None  # exact path only
    assert entity_map.kind("/26242/3/7") == Kind("switch", "Resource /26242/*/7", None, True)
    assert entity_map.kind("/3303/0/5700") is None and entity_map.kind("/3303/1/5700") is not None
    assert entity_map.kind("/3304/2/5700") == Kind("numeric", "Resource 3304/*/5700", "g/m³", False, min=0.0)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        pytest.param({"/26241/0": {"type": "temperature"}}, "is not a resource path", id="object-instance-only"),
        pytest.param({"/a/0/1": {"type": "temperature"}}, "is not a resource path", id="non-numeric-object"),
        pytest.param({"/1/0/1": {"type": "kelvin"}}, "unknown type 'kelvin'", id="unknown-type"),
        pytest.param({"/1/0/1": {"type": "raw", "colour": "red"}}, "expected an object with", id="unknown-key"),
        pytest.param({"/1/0/1": "temperature"}, "expected an object with", id="not-an-object"),
    ],
)
def test_overrides_are_validated(overrides: Any, expected: str) -> None:
    with pytest.raises(InvalidArgumentError, match=expected) as raised:
        EntityMap(overrides)
    assert "\n" not in str(raised.value)


# Issue 18, item 8: every entity-mapping error is one line through the one validator
# (``check_overrides``); booleans are read as the actions' arguments are.

P = "/26241/0/1"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({P: {"type": "dimmer", "min": "abc"}}, f"entities.{P}.min: expected a number or null, got a string of 3"),
        ({P: {"max": [1]}}, f"entities.{P}.max: expected a number or null, got a list of 1 item"),
        ({P: {"min": True}}, f"entities.{P}.min: expected a number or null, got true"),
        ({P: {"min": float("nan")}}, f"entities.{P}.min: expected a finite number, got nan"),
        ({P: {"max": float("inf")}}, f"entities.{P}.max: expected a finite number, got inf"),
        ({P: {"max": 10**400}}, f"entities.{P}.max: out of range (an integer of 1329 bits"),
        ({P: {"type": "numeric", "min": 5, "max": 1.5}}, f"entities.{P}: min (5) must not exceed max (1.5)"),
        ({P: {"type": "switch", "writable": "maybe"}}, f"entities.{P}.writable: expected true or false or null"),
        ({P: {"writable": 2}}, f"entities.{P}.writable: expected true or false or null, got the integer 2"),
        ({P: {"writable": 0.0}}, f"entities.{P}.writable: expected true or false or null, got the number 0.0"),
        ({P: {"name": {"en": "x"}}}, f"entities.{P}.name: expected a string or null, got an object of 1 key"),
        ({P: {"name": "x" * 201}}, f"entities.{P}.name: at most 200 characters, got 201"),
        ({P: {"unit": ["°C"]}}, f"entities.{P}.unit: expected a string or null, got a list of 1 item"),
        ({P: {"type": None}}, f"entities.{P}.type: expected a string, got null"),
        ({P: {"type": "kelvin"}}, f"entities.{P}: unknown type 'kelvin' (one of temperature"),
        ({P: {"type": "raw", "colour": "red"}}, f"entities.{P}: expected an object with type, name, unit, writable"),
        ({P: {"type": "raw", "colour": "red"}}, "(unknown: colour)"),
        ({P: "temperature"}, f"entities.{P}: expected an object with type, name, unit, writable, min, max, got str"),
        ({P: None}, "got NoneType"),
        ({"/26241/0": {"type": "raw"}}, "entities: '/26241/0' is not a resource path like /26241/0/1"),
        ({"/a/0/1": {"type": "raw"}}, "is not a resource path"),
        ({"/1/0/1\nx": {"type": "raw"}}, "is not a resource path"),
        (["/1/0/1"], "entities: expected an object {resource path: {type, name, unit, writable, min, max}}, got list"),
        ("/1/0/1", "got str"),
    ],
)
def test_a_bad_entity_mapping_is_one_line(overrides: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        EntityMap(overrides)
    text = str(raised.value)
    assert message in text and "\n" not in text and len(text) <= 500, text


@pytest.mark.parametrize(
    "writable, expected",
    [
        (True, True),
        ("true", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        (1, True),
        (" Yes ", True),
        (False, False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("0", False),
        (0, False),
        ("FALSE", False),
        (None, True),  # not given: a switch is writable
    ],
)
def test_writable_is_read_as_an_action_boolean(writable: Any, expected: bool) -> None:
    kind = EntityMap({P: {"type": "switch", "writable": writable}}).kind(P)
    assert kind is not None and kind.writable is expected


@pytest.mark.parametrize(
    "spec, expected",
    [
        (
            {"type": "Dimmer", "name": "Fan", "unit": "lvl", "min": 0, "max": 255, "writable": "no"},
            Kind("dimmer", "Fan", "lvl", False, 0.0, 255.0),
        ),
        ({"type": "numeric", "min": -40.5}, Kind("numeric", f"Resource {P}", None, False, min=-40.5)),
        ({"type": "numeric", "max": 1e6, "min": None}, Kind("numeric", f"Resource {P}", None, False, max=1e6)),
        ({"type": "numeric", "min": 3, "max": 3}, Kind("numeric", f"Resource {P}", None, False, 3.0, 3.0)),
        ({}, Kind("raw", f"Resource {P}")),
        ({"name": 12}, Kind("raw", "12")),  # as a string argument given a number: its JSON text
        ({"type": "none"}, None),
    ],
)
def test_a_good_entity_mapping(spec: dict[str, Any], expected: Kind | None) -> None:
    assert EntityMap({P: spec}).kind(P) == expected


@pytest.mark.parametrize(
    "kind, value, message",
    [
        (Kind("numeric", "Level", writable=True, min=0), -1, "Level: -1 is out of range (at least 0)"),
        (Kind("numeric", "Level", writable=True, max=10), 10.5, "Level: 10.5 is out of range (at most 10)"),
        (Kind("numeric", "Level", writable=True, min=0.5), 0.25, "Level: 0.25 is out of range (at least 0.5)"),
        (Kind("dimmer", "Dim", writable=True, min=0, max=100), 101, "Dim: 101 is out of range [0, 100]"),
        (Kind("dimmer", "Dim", writable=True, min=0, max=100), "1234567.5", "Dim: 1234567.5 is out of range"),
    ],
)
def test_a_value_out_of_a_one_sided_range_is_one_line(kind: Kind, value: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        encode_value(kind, value)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_the_plugin_refuses_a_bad_mapping_in_one_line(server: MbedServer) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        make_plugin(server, entities_enabled=True, entities={P: {"type": "dimmer", "min": "abc"}})
    assert str(raised.value).startswith(f"entities.{P}.min: expected a number or null") and "\n" not in str(
        raised.value
    )


def test_values_are_parsed_and_encoded_as_lwm2m_text() -> None:
    switch, dimmer, raw = IPSO[(3311, 5850)], IPSO[(3311, 5851)], Kind("raw", "Raw", writable=True)
    assert [parse_value(switch, t) for t in ("1", " true", "OFF", "0", "2", None)] == [
        True,
        True,
        False,
        False,
        None,
        None,
    ]
    assert [parse_value(dimmer, t) for t in ("75", "12.5", "nan", "inf", "x")] == [75.0, 12.5, None, None, None]
    assert parse_value(raw, " abc ") == "abc"
    assert [encode_value(switch, v) for v in (True, False, "on", 0, "1")] == ["1", "0", "1", "0", "1"]
    assert [encode_value(dimmer, v) for v in (75, 75.0, "12.5", 0)] == ["75", "75", "12.5", "0"]
    assert encode_value(raw, "hello") == "hello"


@pytest.mark.parametrize(
    "kind, value, expected",
    [
        pytest.param(IPSO[(3311, 5850)], "maybe", "expected on/off", id="switch-maybe"),
        pytest.param(IPSO[(3311, 5851)], "bright", "expected a number", id="dimmer-text"),
        pytest.param(IPSO[(3311, 5851)], True, "expected a number", id="dimmer-boolean"),
        pytest.param(IPSO[(3311, 5851)], 101, "out of range", id="dimmer-above-max"),
        pytest.param(IPSO[(3311, 5851)], -1, "out of range", id="dimmer-below-min"),
    ],
)
def test_values_a_kind_cannot_hold_are_refused(kind: Kind, value: Any, expected: str) -> None:
    with pytest.raises(InvalidArgumentError, match=expected):
        encode_value(kind, value)


def test_platypush_entities_are_a_device_with_its_resources() -> None:
    endpoint = Endpoint("ep-1", "Hall", "Light", reachable=False)
    for path, value in [("/3311/0/5850", True), ("/3311/0/5851", 40.0), ("/3/0/9", 80.0), ("/3304/0/5700", None)]:
        kind = EntityMap().kind(path)
        endpoint.resources[path] = Shown(path, kind, True, value)
    *children, parent = to_platypush([endpoint])
    assert isinstance(parent, Device) and (parent.id, parent.name, parent.reachable) == ("ep-1", "Hall", False)
    switch, dimmer, battery, humidity = children
    assert isinstance(switch, Switch) and switch.state is True and switch.id == "ep-1/3311/0/5850"
    assert not switch.is_read_only and switch.meta["icon"]["class"] == "fas fa-lightbulb"
    assert isinstance(dimmer, Dimmer) and (dimmer.value, dimmer.min, dimmer.max, dimmer.unit) == (40.0, 0, 100, "%")
    assert isinstance(battery, Battery) and battery.value == 80.0 and battery.is_read_only
    assert isinstance(humidity, HumiditySensor) and humidity.value is None and humidity.unit == "%"
    assert all(c.parent is parent and c.reachable is False for c in children)
    assert switch.data == {"endpoint": "ep-1", "path": "/3311/0/5850"}


# -- the plugin against the sandbox ----------------------------------------------


#: a few of the home fleet's entities after the start-up: their Platypush class, value and unit
HOME_ENTITIES = {
    "living-room-sensor/3303/0/5700": (TemperatureSensor, 21.5, "°C"),
    "living-room-sensor/3304/0/5700": (HumiditySensor, 45.0, "%"),
    "living-room-sensor/3/0/9": (Battery, 87.0, "%"),
    "hall-light/3311/0/5850": (Switch, False, None),
    "hall-light/3311/0/5851": (Dimmer, 60.0, "%"),
    "kitchen-plug/3312/0/5850": (Switch, True, None),
    "entrance-presence/3302/0/5500": (PresenceSensor, False, None),
}


@pytest.mark.parametrize("entity_id", HOME_ENTITIES)
def test_start_up_shows_the_entity_with_its_type_value_and_unit(
    home: tuple[MbedPlugin, Dashboard], entity_id: str
) -> None:
    _, dashboard = home
    cls, value, unit = HOME_ENTITIES[entity_id]
    wait_until(lambda: dashboard.value(entity_id) is not None)
    entity = dashboard.get(entity_id)
    assert isinstance(entity, cls) and dashboard.value(entity_id) == value, entity_id
    assert getattr(entity, "unit", None) == unit and entity.reachable


def test_start_up_shows_the_fleet_and_subscribes(home: tuple[MbedPlugin, Dashboard], server: MbedServer) -> None:
    plugin, dashboard = home
    wait_until(lambda: all(dashboard.value(i) is not None for i in HOME_ENTITIES))
    assert dashboard.get("living-room-sensor/3/0/0") is None  # the manufacturer name is no entity
    assert dashboard.get("living-room-sensor").name == "living-room-sensor"
    subscribed = {f"{ep}{p}" for ep, p in server.subscriptions}
    assert len(subscribed) == sum(len(d["resources"]) for d in HOME) - 1  # all but /3/0/0
    stats = plugin._sync.stats
    assert stats["listings"] == len(HOME) and stats["errors"] == 0
    assert stats["device_reads"] == stats["cache_reads"] == len(subscribed)  # nothing cached yet
    counts = run(plugin, "status")[0]["entities"]  # (no entities engine here: nothing saved)
    expected = {"endpoints": len(HOME), "tracked": len(HOME), "republished": len(HOME), **stats}
    assert counts == {**expected, "saved": 0, "skipped": 0, "save_errors": 0}


def test_notifications_update_and_deregistrations_mark_unreachable(
    home: tuple[MbedPlugin, Dashboard], server: MbedServer
) -> None:
    _, dashboard = home
    server.set_value("living-room-sensor", "/3303/0/5700", "23.25")
    wait_until(lambda: dashboard.value("living-room-sensor/3303/0/5700") == 23.25)
    server.set_value("living-room-sensor", "/3303/0/5700", "garbage")  # hostile: no number
    wait_until(lambda: dashboard.value("living-room-sensor/3303/0/5700") is None)
    server.set_value("living-room-sensor", "/3/0/0", "Other")  # not shown: no publish of it
    server.deregister("kitchen-plug")
    wait_until(lambda: dashboard.get("kitchen-plug").reachable is False)
    assert dashboard.get("kitchen-plug/3312/0/5850").reachable is False
    assert dashboard.get("living-room-sensor").reachable is True  # the others stay reachable
    server.register("kitchen-plug")  # a full registration: shown again, subscribed again
    wait_until(lambda: dashboard.get("kitchen-plug").reachable is True)
    wait_until(lambda: ("kitchen-plug", "/3312/0/5850") in server.subscriptions)
    server.set_value("kitchen-plug", "/3312/0/5850", "0")
    wait_until(lambda: dashboard.value("kitchen-plug/3312/0/5850") is False)
    server.expire("entrance-presence")
    wait_until(lambda: dashboard.get("entrance-presence/3302/0/5500").reachable is False)
    server.update_registration("entrance-presence")
    wait_until(lambda: dashboard.get("entrance-presence/3302/0/5500").reachable is True)
    assert dashboard.get("living-room-sensor/3/0/0") is None


def test_a_device_that_leaves_while_its_sync_waits_shows_unreachable(
    server: MbedServer, bus: RecordingBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A de-registration that arrives while the device's registration still waits for a sync worker
    (a registration storm; here one worker busy reading a slow device) is not lost: the device shows
    unreachable once synced (it showed reachable for ever)."""
    monkeypatch.setattr(MbedPlugin, "ENTITIES_CONCURRENCY", 1)
    plugin, dashboard = started(server, bus)
    try:
        wait_until(lambda: dashboard.value("garden-barometer/3323/0/5700") is not None)
        server.add_device("slow-node", "Env", resources=[{"path": "/3303/0/5700", "value": "20"}], register=False)
        server.set_behaviour("slow-node", delay=1.0)  # nothing cached: its first value is a 1-s device read
        server.register("slow-node")
        wait_until(lambda: dashboard.get("slow-node") is not None)
        server.add_device("brief-node", "Env", resources=[{"path": "/3304/0/5700", "value": "50"}])
        server.deregister("brief-node")
        wait_until(lambda: dashboard.get("brief-node/3304/0/5700") is not None, timeout=10)
        wait_until(lambda: dashboard.get("brief-node").reachable is False, timeout=5)
        assert dashboard.get("brief-node/3304/0/5700").reachable is False
        server.register("brief-node")  # back: reachable again
        wait_until(lambda: dashboard.get("brief-node").reachable is True, timeout=10)
    finally:
        plugin.stop()


def test_a_new_device_appears_on_its_registration(home: tuple[MbedPlugin, Dashboard], server: MbedServer) -> None:
    _, dashboard = home
    server.add_device("new-node", "Env", resources=[{"path": "/3304/0/5700", "value": "51"}])
    wait_until(lambda: dashboard.value("new-node/3304/0/5700") == 51.0)
    server.enqueue("reg-updates", {"ep": "newer-node", "ept": "X", "resources": [{"path": "/3303/0/5700"}]})
    wait_until(lambda: dashboard.get("newer-node/3303/0/5700") is not None)  # unknown: synced (unreachable device)


def test_entity_actions_write_the_device(home: tuple[MbedPlugin, Dashboard], server: MbedServer) -> None:
    plugin, dashboard = home
    light, level = "hall-light/3311/0/5850", "hall-light/3311/0/5851"
    assert run(plugin, "toggle", entity=light) == ({"entity": light, "value": True}, [])
    assert server.devices["hall-light"].resources["/3311/0/5850"].value == b"1"
    wait_until(lambda: dashboard.value(light) is True)
    assert run(plugin, "toggle", entity=light)[0]["value"] is False
    assert server.devices["hall-light"].resources["/3311/0/5850"].value == b"0"
    assert run(plugin, "on", entity=light)[0]["value"] is True and run(plugin, "off", entity=light)[0]["value"] is False
    assert run(plugin, "set_value", entity=level, value=75) == ({"entity": level, "value": 75.0}, [])
    assert server.devices["hall-light"].resources["/3311/0/5851"].value == b"75"
    wait_until(lambda: dashboard.value(level) == 75.0)
    assert plugin.set(level, 30).output["value"] == 30.0  # what the dashboard's dimmer calls
    assert plugin.set("kitchen-plug/3312/0/5850", False).output["value"] is False
    assert server.devices["kitchen-plug"].resources["/3312/0/5850"].value == b"0"


@pytest.mark.parametrize(
    "name, args, expected",
    [
        pytest.param("toggle", {"entity": "living-room-sensor/3303/0/5700"}, "is read-only", id="toggle-a-sensor"),
        pytest.param("toggle", {"entity": "hall-light/3311/0/5851"}, "is not an on/off entity", id="toggle-a-dimmer"),
        pytest.param(
            "on", {"entity": "ghost/3311/0/5850"}, "no mbed entity 'ghost/3311/0/5850'", id="on-an-unknown-entity"
        ),
        pytest.param("on", {"entity": "hall-light"}, "no mbed entity", id="on-a-device"),
        pytest.param(
            "set_value", {"entity": "hall-light/3311/0/5851", "value": 250}, "out of range", id="set_value-out-of-range"
        ),
        pytest.param(
            "set_value", {"entity": "hall-light/3311/0/5851", "value": "dim"}, "expected a number", id="set_value-text"
        ),
        pytest.param(
            "on",
            {"entity": "kitchen-plug/3312/0/5850"},
            "the device answered 500 DEVICE_BROKEN",
            id="on-a-broken-device",
        ),
    ],
)
def test_entity_action_failures_are_one_readable_line(
    home: tuple[MbedPlugin, Dashboard], server: MbedServer, name: str, args: dict[str, Any], expected: str
) -> None:
    plugin, dashboard = home
    server.set_behaviour("kitchen-plug", fail_status=500, fail_error="DEVICE_BROKEN")
    output, errors = run(plugin, name, **args)
    assert output is None and len(errors) == 1 and expected in errors[0] and "\n" not in errors[0], errors
    assert dashboard.value("kitchen-plug/3312/0/5850") is True  # unchanged: the device refused


def test_an_action_on_a_deregistered_device_is_refused(home: tuple[MbedPlugin, Dashboard], server: MbedServer) -> None:
    plugin, dashboard = home
    server.deregister("hall-light")
    wait_until(lambda: dashboard.get("hall-light").reachable is False)
    assert "410" in run(plugin, "on", entity="hall-light/3311/0/5850")[1][0]
    assert KEY not in str(dashboard.entities)


def test_entities_can_be_turned_off(server: MbedServer, bus: RecordingBus) -> None:
    plugin = make_plugin(server, entities_enabled=False)
    plugin.start()
    try:
        bus.wait_for(MbedConnectedEvent)
        server.set_value("hall-light", "/3311/0/5850", "1")
        output, errors = run(plugin, "on", entity="hall-light/3311/0/5850")
        assert output is None and errors == ["entities are disabled (entities_enabled: false)"]
        assert server.subscriptions == set() and run(plugin, "status")[0]["entities"] is None
        assert server.devices["hall-light"].resources["/3311/0/5850"].value == b"1"
    finally:
        plugin.stop()


def test_the_start_up_budget_bounds_device_reads(start_server: Any, bus: RecordingBus) -> None:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    server.add_fleet(simulated(30), announce=False)
    server.add_device("sleepy", "Q", True, [{"path": "/3303/0/5700", "value": "5"}], register=False)
    server.register("sleepy", announce=False)
    plugin, dashboard = started(server, bus, entities_max_reads=10)
    try:
        wait_until(lambda: plugin._sync.stats["cache_reads"] == 30 * 4 + 1, timeout=20)
        wait_until(lambda: dashboard.get("sim-0029") is not None and dashboard.get("sleepy") is not None)
        stats = plugin._sync.stats
        assert stats["device_reads"] == 10 and stats["listings"] == 31 and stats["subscriptions"] == 30 * 4 + 1
        known = [i for i, e in dashboard.entities.items() if "/" in i and dashboard.value(i) is not None]
        assert len(known) == 10 and dashboard.value("sleepy/3303/0/5700") is None  # queue mode: never woken
        server.set_value("sim-0003", "/3303/0/5700", "19.5")  # the rest shows with its first notification
        wait_until(lambda: dashboard.value("sim-0003/3303/0/5700") == 19.5)
    finally:
        plugin.stop()


def test_cached_values_cost_no_device_request(start_server: Any, bus: RecordingBus) -> None:
    server = home_server(start_server)
    for device in HOME:  # the service cached every value (notified before this client started)
        for resource in server.devices[device["name"]].resources.values():
            resource.cached_at = 1e18
    plugin, dashboard = started(server, bus, entities_max_reads=0)
    try:
        wait_until(lambda: dashboard.value("hall-light/3311/0/5851") == 60.0)
        wait_until(lambda: dashboard.value("garden-barometer/3/0/9") == 100.0)
        assert plugin._sync.stats["device_reads"] == 0 and plugin._sync.stats["errors"] == 0
    finally:
        plugin.stop()


def test_unknown_resources_show_when_mapped(start_server: Any, bus: RecordingBus) -> None:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    server.add_device("boiler", "Boiler", resources=[{"path": "/26241/0/1", "value": "61.5"}, {"path": "/3/0/9"}])
    plugin, dashboard = started(
        server, bus, entities={"/26241/0/1": {"type": "temperature", "unit": "°C"}, "/3/*/9": {"type": "none"}}
    )
    try:
        wait_until(lambda: dashboard.value("boiler/26241/0/1") == 61.5)
        entity = dashboard.get("boiler/26241/0/1")
        assert isinstance(entity, TemperatureSensor) and entity.unit == "°C" and dashboard.get("boiler/3/0/9") is None
    finally:
        plugin.stop()
    with pytest.raises(InvalidArgumentError, match="entities_max_reads at least 0"):
        make_plugin(server, entities_enabled=True, entities_max_reads=-1)
    with pytest.raises(InvalidArgumentError, match="unknown type"):
        make_plugin(server, entities_enabled=True, entities={"/26241/0/1": {"type": "kelvin"}})


def test_failures_are_one_line_and_no_crash(
    start_server: Any, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    server = home_server(start_server)
    server.set_behaviour("hall-light", fail_status=503)
    plugin, dashboard = started(server, bus)
    try:
        wait_until(lambda: dashboard.value("garden-barometer/3323/0/5700") is not None)
        wait_until(lambda: plugin._sync.stats["errors"] == 2)  # the light's two reads
        assert dashboard.get("hall-light/3311/0/5851") is not None and dashboard.value("hall-light/3311/0/5851") is None
        plugin._sync._sync("ghost", "ghost", "", False, None)  # listed, then gone before its listing
        assert plugin._sync.stats["errors"] == 3 and dashboard.get("ghost") is None
        assert "hall-light" in caplog.text and "ghost" in caplog.text and "Traceback" not in caplog.text
    finally:
        plugin.stop()
    server.stop()
    plugin = make_plugin(server, entities_enabled=True)
    plugin._sync._start(0)  # the service is gone: one line, nothing published
    assert plugin._sync.stats["errors"] == 1 and "cannot list the endpoints" in caplog.text


# -- the sandbox's fleets ---------------------------------------------------------


def test_the_sandbox_creates_fleets_and_notifies_writes(start_server: Any) -> None:
    import requests

    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    control = f"{server.url}/_sandbox/fleet"
    assert requests.post(control, json={"fleet": "home"}, timeout=5).json() == {"devices": len(HOME)}
    assert requests.post(control, json={"count": 3, "prefix": "b-", "announce": False}, timeout=5).status_code == 201
    assert sorted(n for n in server.devices if n.startswith("b-")) == ["b-0000", "b-0001", "b-0002"]
    assert all(server.devices[n].registered for n in server.devices)
    assert server.queued() == len(HOME)  # announced: the home's registrations only
    server.subscriptions.add(("hall-light", "/3311/0/5851"))
    assert server._apply(server.devices["hall-light"], "PUT", "/3311/0/5851", b"20")["status"] == 200
    assert server._events[-1] == (
        "notifications",
        {"ep": "hall-light", "path": "/3311/0/5851", "ct": "text/plain", "payload": "MjA=", "max-age": 60},
    )
    queued = server.queued()
    server._apply(server.devices["hall-light"], "PUT", "/3311/0/5850", b"1")  # not subscribed: no notification
    assert server.queued() == queued and server.devices["hall-light"].resources["/3311/0/5850"].value == b"1"


@pytest.mark.parametrize(
    "spec, expected",
    [
        pytest.param({"fleet": "office"}, "unknown fleet 'office'", id="unknown-fleet"),
        pytest.param({"count": 0}, "between 1 and 10000", id="count-0"),
    ],
)
def test_the_sandbox_refuses_a_bad_fleet(start_server: Any, spec: dict[str, Any], expected: str) -> None:
    import requests

    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    answer = requests.post(f"{server.url}/_sandbox/fleet", json=spec, timeout=5)
    assert answer.status_code == 400 and expected in answer.json()["error"]


def test_a_bug_in_the_entities_never_stops_the_events(
    home: tuple[MbedPlugin, Dashboard], server: MbedServer, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    plugin, dashboard = home

    def broken(*_: Any) -> None:
        raise RuntimeError("this part is broken")

    plugin._sync.publish = broken  # faults injected into the plugin's own parts, one at a time
    server.set_value("living-room-sensor", "/3303/0/5700", "19.0")
    wait_until(lambda: "could not publish the entities" in caplog.text)
    plugin._sync.publish = dashboard.publish
    server.set_value("living-room-sensor", "/3303/0/5700", "19.5")  # the next change shows all the same
    wait_until(lambda: dashboard.value("living-room-sensor/3303/0/5700") == 19.5)
    plugin._sync.fleet.update = broken
    server.set_value("living-room-sensor", "/3303/0/5700", "20.0")
    wait_until(lambda: [e for e in bus.of(MbedNotificationEvent) if e.args["value"] == "20.0"])  # the event flows
    assert "could not update the entities" in caplog.text
    plugin._sync.fleet.add = broken
    server.add_device("late-node", "Env", resources=[{"path": "/3304/0/5700", "value": "51"}])
    wait_until(lambda: "the sync failed" in caplog.text)
    assert "this part is broken" in caplog.text


def test_without_redis_the_plugin_works_off_the_registry(
    server: MbedServer, bus: RecordingBus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from platypush.config import Config

    from platypush_ext.sandbox.ports import free_port

    monkeypatch.setitem(Config._get_instance()._config, "redis", {"host": "127.0.0.1", "port": free_port()})
    plugin = make_plugin(server, entities_enabled=True)  # as a script reading config.yaml: nothing listens
    assert "not in the entity registry" in caplog.text and "Traceback" not in caplog.text
    assert run(plugin, "get_api_versions") == (["v1", "v2"], [])


@pytest.mark.parametrize(
    ("api", "channel"),
    [("connector", "callback"), ("connector", "websocket"), ("pelion", "websocket"), ("pelion", "long_poll")],
)
def test_the_dashboard_works_in_both_api_modes_over_every_channel(
    start_server: Any, bus: RecordingBus, api: str, channel: str
) -> None:
    """Pelion / Izuma: devices from the directory, named by their own name, addressed by their
    32-hex id; the same live updates, unreachability and writes over each channel."""
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5, api=api)
    server.add_fleet(HOME, announce=False)
    ep = MbedServer.device_id if api == "pelion" else (lambda name: name)
    plugin, dashboard = started(server, bus, api=api, channel=channel, callback_bind="127.0.0.1", callback_port=0)
    try:
        light, sensor = f"{ep('hall-light')}/3311/0/5850", f"{ep('living-room-sensor')}/3303/0/5700"
        wait_until(lambda: dashboard.value(sensor) == 21.5 and dashboard.value(light) is False)
        assert dashboard.get(ep("hall-light")).name == "hall-light"  # the device's own name, not its id
        assert isinstance(dashboard.get(sensor), TemperatureSensor) and plugin._sync.stats["errors"] == 0
        server.set_value("living-room-sensor", "/3303/0/5700", "24.5")
        wait_until(lambda: dashboard.value(sensor) == 24.5)
        assert run(plugin, "toggle", entity=light) == ({"entity": light, "value": True}, [])
        assert server.devices[ep("hall-light")].resources["/3311/0/5850"].value == b"1"
        server.deregister("hall-light")
        wait_until(lambda: dashboard.get(light).reachable is False)
        assert dashboard.get(sensor).reachable is True
        assert run(plugin, "status")[0]["channel"] == channel
    finally:
        plugin.stop()


def test_a_notification_that_changes_nothing_publishes_nothing() -> None:
    from platypush_ext.mbed.entities import Fleet

    fleet = Fleet(EntityMap(None))
    fleet.add("node", "node", "Sensor", False, [{"path": "/3303/0/5700"}])
    assert fleet.update("node", "/3303/0/5700", "21.5") is not None  # first value
    assert fleet.update("node", "/3303/0/5700", "21.5") is None  # the same again: nothing to show
    assert fleet.update("node", "/3303/0/5700", "21.50") is None  # the same number
    fleet.set_reachable("node", False)
    assert fleet.update("node", "/3303/0/5700", "21.5").reachable is True  # back: shown reachable
    assert fleet.update("node", "/3303/0/5700", "22").resources["/3303/0/5700"].value == 22.0
    assert len(fleet) == 1 and [e.name for e in fleet.sample(5, 3)] == ["node"]
