"""Health on the Home panel (``glue/health.py``, ``nikdev/health.py``, ``pushjet/health.py``): the
entities built from a real outbox (against the NikDev sandbox) and from Pushjet device states, saved
into Platypush's real entities database; a change saves and announces only what changed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from typing import Any

import pytest
from platypush.context import get_plugin
from platypush.entities import Entity

from platypush_ext.core.listening import Availability
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.glue.entities import EntityPublisher, save_entities
from platypush_ext.glue.health import HealthEntities, group, normalise
from platypush_ext.nikdev.client import Entry, NikdevAuthError, NikdevClient
from platypush_ext.nikdev.health import outbox_entities
from platypush_ext.nikdev.outbox import Outbox
from platypush_ext.pushjet.health import device_entities
from platypush_ext.sandbox.nikdev import DEFAULT_DEVICE_ID, DEFAULT_READ_ONLY_KEY, NikdevServer

pytestmark = pytest.mark.usefixtures("entities_db")
DEVICE = "0f1e2d3c-4b5a-4697-8899-aabbccddeeff"


class Saved:
    """A publisher into Platypush's database whose announcements are recorded."""

    def __init__(self) -> None:
        self.events: list[Entity] = []
        self.publisher = EntityPublisher("test-health", interval=0, save=self.save, post=self.events.append)

    @staticmethod
    def save(entities: Collection[Entity]) -> list[Entity]:
        return save_entities(entities)

    def watcher(self, plugin: str, read: Any) -> HealthEntities:
        return HealthEntities(plugin, read, threading.Event(), publisher=self.publisher)

    def publish(self, watcher: HealthEntities) -> list[tuple[str, Any]]:
        """Publish once; what was announced, as ``(external id, value)``."""
        self.events.clear()
        watcher.publish_now()
        assert self.publisher.flush(30)
        return sorted((e.external_id, getattr(e, "value", None)) for e in self.events)


def stored(plugin: str) -> dict[str, Any]:
    with get_plugin("db").get_session() as session:
        rows = session.query(Entity).filter(Entity.plugin == plugin).all()
        return {row.external_id: (row.type, getattr(row, "value", row.name), row.parent_id) for row in rows}


@pytest.mark.sandbox(cls=NikdevServer)
def test_the_nikdev_outbox_shows_pending_entries_and_dead_letters(tmp_path: Any, server: NikdevServer) -> None:
    sandbox = server
    outbox = Outbox(str(tmp_path / "outbox.db"))
    nothing = lambda *_: None  # noqa: E731
    server = Availability("NikDev", logging.getLogger("test"), nothing, nothing, on_rejected=nothing)
    saved = Saved()
    watcher = saved.watcher("test-nikdev", lambda: outbox_entities(outbox, server))
    first = saved.publish(watcher)
    assert first == [
        ("nikdev-outbox", None),
        ("nikdev-outbox/dead", 0.0),
        ("nikdev-outbox/key", None),
        ("nikdev-outbox/pending", 0.0),
        ("nikdev-outbox/reachable", None),
    ]
    rows = stored("test-nikdev")
    assert rows["nikdev-outbox/pending"][:2] == ("numeric_sensor", 0.0)
    assert rows["nikdev-outbox/reachable"][0] == "binary_sensor"
    assert rows["nikdev-outbox/dead"][2] is not None  # a child of the outbox's device
    outbox.commit_many([Entry.build({"seq": n}) for n in range(3)])
    assert saved.publish(watcher) == [("nikdev-outbox/pending", 3.0)]  # only what changed
    assert saved.publish(watcher) == []  # nothing changed: nothing saved or announced
    readonly = NikdevClient(sandbox.base_url, DEFAULT_DEVICE_ID, DEFAULT_READ_ONLY_KEY, retry=RetryPolicy(attempts=1))
    result = outbox.flush(readonly)
    assert result.dead_entries == 3 and result.dead[0].status in (401, 403)
    server.failed(NikdevAuthError("the key was refused", status=result.dead[0].status))  # as the plugin does
    assert saved.publish(watcher) == [
        ("nikdev-outbox/dead", 3.0),
        ("nikdev-outbox/key", False),  # refused: the server is reachable, the key is not accepted
        ("nikdev-outbox/pending", 0.0),
        ("nikdev-outbox/reachable", True),
    ]
    server.ok()
    assert saved.publish(watcher) == [("nikdev-outbox/key", True)]
    assert stored("test-nikdev")["nikdev-outbox/dead"][1] == 3.0


def test_each_pushjet_device_shows_connected_and_its_path() -> None:
    states: list[tuple[str, bool | None, str]] = [(DEVICE, True, "realtime"), ("1" * 8 + DEVICE[8:], None, "polling")]
    saved = Saved()
    watcher = saved.watcher("test-pushjet", lambda: device_entities(states))
    saved.publish(watcher)
    rows = stored("test-pushjet")
    assert rows[f"pushjet-{DEVICE}"][:2] == ("device", "Pushjet device 0f1e2d3c")
    assert rows[f"pushjet-{DEVICE}/connected"][:2] == ("binary_sensor", True)
    assert rows[f"pushjet-{DEVICE}/path"][:2] == ("enum_sensor", "realtime")
    assert rows[f"pushjet-11111111{DEVICE[8:]}/path"][1] == "polling"
    states[0] = (DEVICE, True, "polling")  # the connector dropped: polling
    assert saved.publish(watcher) == [(f"pushjet-{DEVICE}/path", "polling")]


def test_group_and_normalise_make_entities_as_an_entity_manager_does() -> None:
    entities = normalise(
        "x", group("thing", "Thing", "a thing", [("/n", "N", "NumericSensor", {"value": 1})], "fas fa-x")
    )
    assert [(e.external_id, e.plugin, e.id) for e in entities] == [("thing/n", "x", None), ("thing", "x", None)]
    assert entities[0].parent is entities[1] and entities[0].is_read_only
    assert entities[0].meta == {"icon": {"class": "fas fa-x"}} and entities[1].updated_at is not None


def test_the_watcher_ends_when_not_inside_platypush() -> None:
    watcher = HealthEntities("nowhere", lambda: [], threading.Event(), engine_timeout=0.5).start()
    assert watcher._thread is not None
    watcher._thread.join(5)
    assert not watcher._thread.is_alive()
