"""Shared event base classes: one hook can follow every service's availability."""

from __future__ import annotations

from typing import Any

import pytest
from platypush.event.hook import EventCondition

from platypush_ext.events import ServiceConnectedEvent, ServiceDisconnectedEvent
from platypush_ext.mbed.events import MbedConnectedEvent, MbedDisconnectedEvent
from platypush_ext.nikdev.events import NikdevConnectedEvent, NikdevDisconnectedEvent
from platypush_ext.pushjet.events import PushjetConnectedEvent, PushjetDisconnectedEvent

ANY_DOWN = EventCondition.build({"type": "platypush_ext.events.ServiceDisconnectedEvent"})
ANY_UP = EventCondition.build({"type": "platypush_ext.events.ServiceConnectedEvent"})


@pytest.mark.parametrize(
    "event",
    [
        PushjetDisconnectedEvent(base_url="http://p/", error="down"),
        NikdevDisconnectedEvent(base_url="http://n/", error="down"),
        MbedDisconnectedEvent(base_url="http://m/", channel="long_poll", error="down"),
    ],
)
def test_a_hook_on_the_base_class_matches_every_service(event):
    assert isinstance(event, ServiceDisconnectedEvent)
    assert event.matches_condition(ANY_DOWN).is_match
    assert not event.matches_condition(ANY_UP).is_match
    assert event.args["error"] == "down" and event.args["base_url"].startswith("http://")


@pytest.mark.parametrize("cls", [PushjetConnectedEvent, NikdevConnectedEvent])
def test_connected_events(cls):
    event = cls(base_url="http://x/")
    assert isinstance(event, ServiceConnectedEvent) and event.matches_condition(ANY_UP).is_match
    assert not event.matches_condition(ANY_DOWN).is_match
    assert MbedConnectedEvent(base_url="http://m/", channel="websocket").args["channel"] == "websocket"


# -- conditions as written (issue 22) -----------------------------------------------------------

NOTIFICATION = "platypush_ext.mbed.events.MbedNotificationEvent"
TEMP = "/3303/0/5700"


def reading(value: str, path: str = TEMP, endpoint: str = "temp-sensor-01") -> Any:
    from platypush_ext.mbed.events import MbedNotificationEvent

    return MbedNotificationEvent(endpoint=endpoint, path=path, value=value, journal_id=1)


def holds(event: Any, condition: dict[str, Any]) -> bool:
    return bool(event.matches_condition(EventCondition.build({"type": NOTIFICATION, **condition})).is_match)


#: (condition, value of the reading, whether the hook fires): every documented operator, each
#: with its negative case, after and before a plain key, and nested in another operator's key order.
CONDITIONS = [
    ({"path": TEMP, "value": {"$gt": 30}}, "35", True),
    ({"path": TEMP, "value": {"$gt": 30}}, "21.5", False),  # fired in Platypush 1.3.39
    ({"value": {"$gt": 30}, "path": TEMP}, "21.5", False),
    ({"path": TEMP, "value": {"$gte": 30}}, "30", True),
    ({"path": TEMP, "value": {"$gte": 30}}, "29.9", False),
    ({"path": TEMP, "value": {"$lt": 10}}, "9", True),
    ({"path": TEMP, "value": {"$lt": 10}}, "10", False),
    ({"path": TEMP, "value": {"$lte": 10}}, "10", True),
    ({"path": TEMP, "value": {"$lte": 10}}, "10.5", False),
    ({"path": TEMP, "value": {"$eq": "20"}}, "20", True),
    ({"path": TEMP, "value": {"$eq": "20"}}, "21", False),
    ({"path": TEMP, "value": {"$ne": "20"}}, "21", True),
    ({"path": TEMP, "value": {"$ne": "20"}}, "20", False),
    ({"path": TEMP, "value": {"$regex": "^3[0-9]"}}, "31", True),
    ({"path": TEMP, "value": {"$regex": "^3[0-9]"}}, "29", False),
    ({"path": TEMP, "value": {"$gt": 10, "$lt": 30}}, "20", True),
    ({"path": TEMP, "value": {"$gt": 10, "$lt": 30}}, "35", False),
    ({"endpoint": "temp-sensor-01", "path": TEMP, "value": {"$gt": 30}}, "35", True),
    ({"endpoint": "other", "path": TEMP, "value": {"$gt": 30}}, "35", False),  # a plain key that fails
    ({"path": {"$eq": TEMP}, "value": {"$gt": 30}}, "35", True),  # every key an operator, as documented
    ({"path": {"$eq": TEMP}, "value": {"$gt": 30}}, "21.5", False),
    ({"path": TEMP}, "21.5", True),
    ({"path": "/3303/0/5701"}, "21.5", False),
]


@pytest.mark.parametrize(
    "condition, value, fires",
    CONDITIONS,
    ids=[f"{'fires' if f else 'not'}-{v}-{'-'.join(f'{k}={c}' for k, c in cond.items())}" for cond, v, f in CONDITIONS],
)
def test_a_bundle_event_matches_a_condition_as_written(condition: dict[str, Any], value: str, fires: bool) -> None:
    assert holds(reading(value), condition) is fires


def test_a_matching_condition_keeps_platypush_s_score() -> None:
    event = reading("35")
    plain = event.matches_condition(EventCondition.build({"type": NOTIFICATION, "path": TEMP}))
    assert plain.is_match and plain.score == 2.0  # an exact plain key scores 2 in Platypush


def test_canary_platypush_s_own_events_still_keep_a_failed_operator_s_match() -> None:
    """The one Platypush internal the bundle relies on (``Event._matches_condition``) and the
    defect its events work around: when this fails, Platypush fixed it (docs/hooks.md) and
    :class:`platypush_ext.events.BundleEvent` can go."""
    from platypush.message.event import Event

    class PlainEvent(Event):
        pass

    condition = EventCondition(type=PlainEvent, path=TEMP, value={"$gt": 30})
    event = PlainEvent(path=TEMP, value="21.5")
    assert event.matches_condition(condition).is_match  # the defect: 21.5 "matches" $gt 30
    assert not holds(reading("21.5"), {"path": TEMP, "value": {"$gt": 30}})


STARTED = "platypush.message.event.application.ApplicationStartedEvent"
SENSOR_CHANGE = "platypush.message.event.sensor.SensorDataChangeEvent"


@pytest.mark.parametrize(
    "hook, listed",
    [
        pytest.param(
            {"if": {"type": SENSOR_CHANGE, "name": "t", "value": {"$gt": 30}}}, True, id="plain-then-operator"
        ),
        pytest.param({"if": {"type": SENSOR_CHANGE, "value": {"$gt": 30}, "name": "t"}}, False, id="operator-first"),
        pytest.param(
            {"if": {"type": SENSOR_CHANGE, "name": {"$eq": "t"}, "value": {"$gt": 30}}}, False, id="all-operators"
        ),
        pytest.param({"if": {"type": SENSOR_CHANGE, "name": "t"}}, False, id="plain-only"),
        pytest.param({"if": {"type": NOTIFICATION, "path": TEMP, "value": {"$gt": 30}}}, False, id="bundle-event"),
        pytest.param({"if": {"type": "no.such.Event", "a": "x", "b": {"$gt": 1}}}, False, id="unknown-type"),
        pytest.param({"if": {"type": STARTED}}, False, id="no-keys"),
        pytest.param(print, False, id="a-function-hook"),
    ],
)
def test_the_hooks_with_the_pitfall_are_those_on_platypush_s_events_with_a_plain_key_first(
    hook: Any, listed: bool
) -> None:
    from platypush_ext.events import pitfall_hooks

    assert pitfall_hooks({"Hot": hook}) == (["Hot"] if listed else [])


def test_the_pitfall_is_logged_once_per_process_naming_each_hook(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import threading

    from platypush.config import Config

    from platypush_ext import events

    hooks = {
        "Hot": {"if": {"type": SENSOR_CHANGE, "name": "t", "value": {"$gt": 30}}},
        "Fine": {"if": {"type": SENSOR_CHANGE, "value": {"$gt": 30}}},
    }
    monkeypatch.setattr(Config, "get_event_hooks", classmethod(lambda cls: hooks))
    monkeypatch.setattr(events, "_pitfalls_logged", threading.Lock())  # as in a new process
    log = logging.getLogger("platypush_ext.test")
    with caplog.at_level(logging.WARNING, logger="platypush_ext.test"):
        events.log_pitfall_hooks(log)
        events.log_pitfall_hooks(log)  # a second plugin: nothing more
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("hook Hot: Platypush ignores an operator")
