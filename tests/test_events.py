"""Shared event base classes: one hook can follow every service's availability."""

from __future__ import annotations

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
