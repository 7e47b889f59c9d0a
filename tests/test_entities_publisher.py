"""The bundle's entity publisher (``platypush_ext/glue/entities.py``) against Platypush's real
entities database (SQLite, its migrations and models): big batches saved whole, unchanged entities
skipped, one event per change, bursts coalesced; and the canary on the one private API it uses."""

from __future__ import annotations

import inspect
import itertools
import re
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from platypush.context import get_plugin
from platypush.entities import Entity
from platypush.entities._engine.queue import EntitiesQueue

import platypush
from platypush_ext.glue.entities import (
    MAPPED_MODULES,
    MAX_BATCH,
    EntityPublisher,
    batches,
    fingerprint,
    import_mapped_modules,
    save_entities,
)
from platypush_ext.mbed.entities import Endpoint, Shown, to_platypush
from platypush_ext.mbed.ipso import EntityMap
from tests.support import wait_until

PATHS = ("/3303/0/5700", "/3304/0/5700", "/3/0/9", "/3301/0/5700")
_plugins = itertools.count()
pytestmark = pytest.mark.usefixtures("entities_db")


@pytest.fixture
def plugin() -> str:
    """A plugin name of its own for each test (the database is shared)."""
    return f"test-publisher-{next(_plugins)}"


def fleet(plugin: str, count: int, value: float = 1.0, only: int | None = None) -> list[Entity]:
    """``count`` endpoints of 4 sensors as a plugin publishes them (normalised: ``external_id``,
    ``plugin``); ``only``: just the endpoints' ``only``-th sensor (with its parent)."""
    kinds = EntityMap(None)
    endpoints = []
    for i in range(count):
        endpoint = Endpoint(f"ep-{i:05d}", f"ep-{i:05d}", "Sim")
        for path in PATHS:
            endpoint.resources[path] = Shown(path, kinds.kind(path), True, value)  # type: ignore[arg-type]
        endpoints.append(endpoint)
    entities = to_platypush(endpoints)
    for entity in entities:
        entity.external_id, entity.id, entity.plugin = entity.id, None, plugin
    if only is not None:
        return [e for e in entities if str(e.external_id).endswith(PATHS[only])]
    return entities


def stored(plugin: str) -> dict[str, Any]:
    """What Platypush's database holds for ``plugin``: ``{external_id: value}`` (devices: their name)."""
    with get_plugin("db").get_session() as session:
        rows = session.query(Entity).filter(Entity.plugin == plugin).all()
        return {row.external_id: getattr(row, "value", row.name) for row in rows}


class Recorder:
    """The publisher's seams: saves through Platypush's repository (counted), posts recorded."""

    def __init__(self, fail: int = 0) -> None:
        self.events: list[Entity] = []
        self.saves: list[int] = []
        self.fail = fail
        self.lock = threading.Lock()

    def save(self, entities: Collection[Entity]) -> list[Entity]:
        with self.lock:
            self.saves.append(len(entities))
            if self.fail:
                self.fail -= 1
                raise RuntimeError("the database is locked")
        return save_entities(entities)

    def post(self, entity: Entity) -> None:
        with self.lock:
            self.events.append(entity)

    def publisher(self, **kwargs: Any) -> EntityPublisher:
        return EntityPublisher("test", save=self.save, post=self.post, **kwargs)


def settle(publisher: EntityPublisher) -> None:
    assert publisher.flush(30.0), "the publisher did not finish"


def test_canary_platypush_repository_and_queue_as_the_publisher_expects(plugin: str) -> None:
    """The private API of :func:`save_entities` (``EntitiesRepository().save(*entities)``) and what it
    works around: fails when Platypush changes them (then revisit ``glue/entities.py``)."""
    from platypush.entities._engine.repo import EntitiesRepository

    assert list(inspect.signature(EntitiesRepository.save).parameters) == ["self", "entities"]
    assert inspect.signature(EntitiesQueue.__init__).parameters["timeout"].default == 1.0  # the hold
    queue = EntitiesQueue(timeout=0.3)
    queue.put(*fleet(plugin, 1)[:1])
    started = time.monotonic()
    assert len(queue.get()) == 1 and time.monotonic() - started >= 0.3  # holds what came for its timeout
    saved = save_entities(fleet(plugin, 2))
    assert {e.external_id for e in saved} == {f"ep-{i:05d}{p}" for i in range(2) for p in PATHS} | {
        "ep-00000",
        "ep-00001",
    }
    assert all(e.id for e in saved)
    with pytest.raises(sqlalchemy.exc.OperationalError, match="Expression tree is too large"):
        save_entities(fleet(plugin + "-big", 250))  # 1,250 lookups in one batch: what the engine does


def test_a_fleet_bigger_than_one_save_is_saved_whole_and_announced_once(plugin: str) -> None:
    recorder = Recorder()
    publisher = recorder.publisher()
    assert publisher.publish(fleet(plugin, 300)) == 1500
    settle(publisher)
    assert len(stored(plugin)) == 1500
    assert len(recorder.saves) >= 4 and max(recorder.saves) <= MAX_BATCH
    assert sorted(e.external_id for e in recorder.events) == sorted(stored(plugin))  # one event per entity
    assert publisher.stats["errors"] == 0


def test_unchanged_entities_are_skipped_and_a_change_saves_and_announces_only_it(plugin: str) -> None:
    recorder = Recorder()
    publisher = recorder.publisher(interval=0)
    publisher.publish(fleet(plugin, 3))
    settle(publisher)
    recorder.events.clear()
    saves = len(recorder.saves)
    assert publisher.publish(fleet(plugin, 3)) == 0  # the same again: nothing to do
    settle(publisher)
    assert len(recorder.saves) == saves and recorder.events == [] and publisher.stats["skipped"] == 15
    changed = fleet(plugin, 3)
    changed[5].value = 2.5  # ep-00001's first sensor (the 6th entity: 4 sensors, then the device)
    assert publisher.publish(changed) == 1
    settle(publisher)
    assert [(e.external_id, e.value) for e in recorder.events] == [("ep-00001/3303/0/5700", 2.5)]
    values = stored(plugin)
    assert values["ep-00001/3303/0/5700"] == 2.5 and values["ep-00001/3304/0/5700"] == 1.0
    assert values["ep-00001"] == "ep-00001"  # the device kept, its other children too
    assert publisher.publish(fleet(plugin, 1), force=True) == 5  # a scan saves them all the same
    settle(publisher)


def test_a_burst_of_changes_makes_few_saves_of_the_newest_value(plugin: str) -> None:
    recorder = Recorder()
    publisher = recorder.publisher(interval=0.3)
    publisher.publish(fleet(plugin, 1))
    settle(publisher)
    recorder.events.clear()
    started = time.monotonic()
    for value in range(50):
        publisher.publish(fleet(plugin, 1, float(value), only=0))
        time.sleep(0.01)
    elapsed = time.monotonic() - started  # ~0.5 s (more under load)
    settle(publisher)
    assert stored(plugin)["ep-00000/3303/0/5700"] == 49.0
    assert 1 <= len(recorder.events) <= min(elapsed / 0.3 + 2, 25), [e.value for e in recorder.events]
    assert recorder.events[-1].value == 49.0


def test_a_change_after_a_quiet_spell_is_saved_at_once(plugin: str) -> None:
    recorder = Recorder()
    publisher = recorder.publisher()
    publisher.publish(fleet(plugin, 1))
    settle(publisher)
    time.sleep(0.3)
    recorder.events.clear()
    started = time.monotonic()
    publisher.publish(fleet(plugin, 1, 7.0, only=1))
    wait_until(lambda: len(recorder.events) == 1, timeout=10)
    assert time.monotonic() - started < 0.2 + 1.0  # no hold: the save itself (generous under load)
    assert recorder.events[0].external_id == "ep-00000/3304/0/5700"


def test_a_failed_save_is_logged_and_retried_at_the_next_publication(plugin: str) -> None:
    recorder = Recorder(fail=1)
    publisher = recorder.publisher(interval=0)
    publisher.publish(fleet(plugin, 1))
    settle(publisher)
    assert publisher.stats["errors"] == 1 and stored(plugin) == {} and recorder.events == []
    assert publisher.publish(fleet(plugin, 1)) == 5  # not taken as saved: queued again
    settle(publisher)
    assert len(stored(plugin)) == 5 and len(recorder.events) == 5


def test_without_platypush_entities_engine_flush_does_not_wait(plugin: str) -> None:
    publisher = EntityPublisher("test", engine_timeout=0.1)
    publisher.publish(fleet(plugin, 1))
    started = time.monotonic()
    assert publisher.flush(5.0) is False
    assert time.monotonic() - started < 1.0
    publisher.stop()
    assert publisher.publish(fleet(plugin, 1)) == 0  # stopped


@pytest.mark.parametrize("count, limit", [(1, 400), (79, 400), (80, 400), (81, 400), (300, 400), (10, 5)])
def test_batches_keep_families_together_within_the_limit(count: int, limit: int) -> None:
    entities = fleet("batches", count)
    found = batches(entities, limit)
    assert sorted(map(id, itertools.chain(*found))) == sorted(map(id, entities))
    for batch in found:
        roots = {e.external_id.split("/")[0] for e in batch}
        assert len(batch) == 5 * len(roots)  # whole families
        assert len(batch) <= max(limit, 5)


def test_the_fingerprint_ignores_timestamps_and_sees_values_and_parents() -> None:
    one, two = fleet("fp", 1), fleet("fp", 1)
    two[0].updated_at = one[0].updated_at = None
    assert fingerprint(one[0]) == fingerprint(two[0])
    two[0].value = 3.0
    assert fingerprint(one[0]) != fingerprint(two[0])
    moved: Callable[[], list[Entity]] = lambda: fleet("fp", 2)[5:6]  # noqa: E731 - ep-00001's sensor
    assert fingerprint(moved()[0]) != fingerprint(one[0])


def test_every_module_of_platypush_that_maps_on_its_shared_registry_by_name_is_imported_first() -> None:
    """Canary: a module of Platypush (its entities aside, imported at start) that maps classes on the shared
    ``Base`` with a relationship named by string is imported before the first save (``MAPPED_MODULES``)."""
    root = Path(platypush.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "platypush.common.db import Base" in text and re.search(r"relationship\(\s*['\"]", text):
            found.add(".".join(("platypush", *path.relative_to(root).with_suffix("").parts)))
    found = {name for name in found if not name.startswith("platypush.entities")}
    assert found and found <= set(MAPPED_MODULES), found
    assert import_mapped_modules() == list(MAPPED_MODULES)
