"""Entities on the Home panel at once: the bundle's entities saved and announced without the
engine's one-second hold, in bounded batches, and only when they changed.

Platypush's ``publish_entities`` hands entities to its engine, whose ``EntitiesQueue`` collects
for a whole second (1.0–1.5 s) before one save of everything collected. Two things follow:
every change reaches the panel a second late, and a big batch (more than about 1,000 entities:
a fleet's start-up) fails as a whole — ``EntitiesDb.fetch`` builds one ``OR`` per entity and
SQLite refuses an expression deeper than 1,000 (``Expression tree is too large``) — so the
entities are lost until they are published again.

:class:`EntityPublisher` (one per plugin, through the :class:`FastEntities` mixin) instead:

* keeps, per entity, the newest version not saved yet (several changes while a save runs make
  one save of the last), and skips an entity identical to the one it saved last (a value that
  did not change needs no save and no event);
* saves in its own thread as soon as something is pending (at most one save every 0.2 s: under
  a burst, what changes meanwhile makes one save), with Platypush's own repository
  (merge with the stored entity, parents, children, the same SQLite lock as the engine) in
  batches of at most :data:`MAX_BATCH` entities counted with their families;
* then posts one ``EntityUpdateEvent`` per entity it was given (what the engine's ``notify``
  posts; never the untouched siblings the repository also returns), so a hook on it runs once
  per change, and the panel after a reload shows what was announced: it was saved first.

The private API of Platypush used here — ``EntitiesRepository().save(*entities)`` in
``platypush.entities._engine.repo`` — is used in :func:`save_entities` only;
``tests/test_entities_publisher.py`` fails if it changes. :func:`entity_classes` finds Platypush's
entity classes for the bundle's entities (the mbed fleet, the services' health).
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from platypush.context import get_bus
from platypush.entities import Entity, get_entities_engine
from platypush.message.event.entities import EntityUpdateEvent

if TYPE_CHECKING:
    from platypush.entities._engine.repo import EntitiesRepository

logger = logging.getLogger("platypush_ext")

#: The most entities (each with its root and the root's children) in one save: SQLite refuses
#: more than 1,000 terms in the repository's lookup.
MAX_BATCH = 400
#: Columns that change with every publication without saying anything new.
_VOLATILE = frozenset({"id", "created_at", "updated_at", "parent_id"})

Key = tuple[str, str]
#: What is called with a saved entity (its result is ignored).
Callback = Callable[[Entity], object]


@functools.cache
def entity_classes() -> dict[str, type]:
    """Platypush's entity classes by name, however their modules were loaded (Platypush's start-up
    discovery defines each model once, in module objects of its own)."""
    _import_entity_modules()
    from platypush.entities import Entity

    classes: dict[str, type] = {}
    pending: list[type] = [Entity]
    while pending:
        cls = pending.pop()
        classes.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return classes


def _import_entity_modules() -> None:
    from platypush.entities import (  # noqa: F401 - defines the models (outside Platypush's start-up)
        batteries,
        devices,
        dimmers,
        electricity,
        humidity,
        illuminance,
        motion,
        presence,
        pressure,
        sensors,
        switches,
        temperature,
    )


#: Platypush's modules that map classes on its shared SQLAlchemy registry with relationships named by
#: string (the web panel's ``inspect`` imports them while entities are saved).
MAPPED_MODULES = ("platypush.plugins.notes.db._model",)


def import_mapped_modules(names: Iterable[str] = MAPPED_MODULES) -> list[str]:
    """Import ``names`` (when this module is imported: with the plugin's module, before any thread of
    the bundle runs); returns those imported. Creating or saving an entity configures every mapper
    of the registry: one that ran while another thread was half-way through such a module (``Note``
    mapped, its ``NoteTag`` not yet) failed for good, and every later query of Platypush failed with
    it (``inspect.get_all_events`` answered 500; seen in two runs of the suite in five, once the
    bundle's entities were created and saved as soon as they changed). A module imported whole
    before is only looked up by the others.

    :param names: the modules (one that cannot be imported is skipped).
    """
    imported = []
    for name in names:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as exc:  # noqa: BLE001 - an optional dependency missing: then nobody maps it
            logger.debug("entities: cannot import %s: %s", name, exc)
    return imported


import_mapped_modules()


@functools.cache
def _repository() -> EntitiesRepository:
    from platypush.entities._engine.repo import EntitiesRepository

    return EntitiesRepository()


def save_entities(entities: Collection[Entity]) -> list[Entity]:
    """Save entities as Platypush's engine does (merged with the stored ones, parents and children
    rewired, under the database's session lock); returns the saved copies, their families too.

    The one use of Platypush's private ``EntitiesRepository`` (see the module's docstring).

    :param entities: normalised entities (``external_id`` and ``plugin`` set).
    """
    return list(_repository().save(*entities))


def fingerprint(entity: Entity) -> str:
    """What an entity shows: its class, parent and columns, without ids and timestamps.

    :param entity: a (transient) entity.
    """
    parent = getattr(entity, "parent", None)
    columns = [(c.key, getattr(entity, c.key, None)) for c in entity.get_columns() if c.key not in _VOLATILE]
    return repr((type(entity).__name__, parent.entity_key if parent is not None else None, columns))


def family_size(entity: Entity) -> int:
    """How many entities a save of ``entity`` looks up: its root and the root's children (in memory)."""
    root = entity
    while getattr(root, "parent", None) is not None:
        root = root.parent
    return 1 + len(root.children)


def batches(entities: Iterable[Entity], limit: int = MAX_BATCH) -> list[list[Entity]]:
    """Entities in batches of at most ``limit`` lookups (:func:`family_size`), one family per batch.

    :param entities: the entities to save.
    :param limit: the most lookups per batch.
    """
    by_root: dict[int, list[Entity]] = {}
    sizes: dict[int, int] = {}
    for entity in entities:
        root = entity
        while getattr(root, "parent", None) is not None:
            root = root.parent
        by_root.setdefault(id(root), []).append(entity)
        sizes[id(root)] = 1 + len(root.children)
    out: list[list[Entity]] = []
    current: list[Entity] = []
    used = 0
    for root_id, members in by_root.items():
        if current and used + sizes[root_id] > limit:
            out.append(current)
            current, used = [], 0
        current += members
        used += sizes[root_id]
    if current:
        out.append(current)
    return out


class EntityPublisher:
    """Saves and announces one plugin's entities in a thread of its own (see the module).

    :param name: how logs and the thread name it.
    :param interval: the least seconds between the starts of two saves (default: 0.2): a change
        after a quiet spell is saved at once; changes that follow within ``interval`` wait for
        it, and several changes of one entity make one save.
    :param engine_timeout: the most seconds to wait for Platypush's entities engine (its database
        tables) before the first save; without it (not inside Platypush) nothing is saved.
    :param save: what saves a batch (default: :func:`save_entities`).
    :param post: what announces a saved entity (default: an ``EntityUpdateEvent`` on the bus).
    """

    def __init__(
        self,
        name: str,
        interval: float = 0.2,
        engine_timeout: float = 60.0,
        save: Callable[[Collection[Entity]], list[Entity]] = save_entities,
        post: Callback | None = None,
    ):
        self.name, self.interval, self.engine_timeout = name, float(interval), float(engine_timeout)
        self._save, self._post = save, post or (lambda entity: get_bus().post(EntityUpdateEvent(entity=entity)))
        self._pending: dict[Key, tuple[Entity, str, Callback | None]] = {}
        self._saved: dict[Key, str] = {}
        self._cond = threading.Condition()
        self._busy = False
        self._stopped = False
        self._ready: bool | None = None
        self._thread: threading.Thread | None = None
        #: ``published``: entities given; ``skipped``: unchanged, not saved; ``saved``: entities
        #: saved; ``saves``: batches; ``errors``: batches that failed (their entities are retried
        #: at their next publication); ``save_seconds``: time spent saving.
        self.stats: dict[str, float] = dict.fromkeys(("published", "skipped", "saved", "saves", "errors"), 0)
        self.stats["save_seconds"] = 0.0

    def publish(self, entities: Iterable[Entity], force: bool = False, callback: Callback | None = None) -> int:
        """Queue normalised entities; returns how many were queued (changed, or ``force``).

        :param entities: entities with ``external_id`` and ``plugin`` set.
        :param force: queue even those identical to the last saved version.
        :param callback: called with each saved entity (as the engine's callbacks).
        """
        queued = 0
        with self._cond:
            if self._stopped:
                return 0
            for entity in entities:
                key, shown = entity.entity_key, fingerprint(entity)
                self.stats["published"] += 1
                if not force and self._saved.get(key) == shown and key not in self._pending:
                    self.stats["skipped"] += 1
                    continue
                self._pending[key] = (entity, shown, callback)
                queued += 1
            if queued:
                self._start()
                self._cond.notify_all()
        return queued

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is pending or being saved; returns whether that happened in time
        (``False`` at once while Platypush's entities engine is not known to run).

        :param timeout: the most seconds to wait.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._save is save_entities and not self._ready:
                return False  # no engine (yet): nothing will be saved soon
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        """Stop: what is pending is dropped, a save that runs finishes."""
        with self._cond:
            self._stopped = True
            self._pending.clear()
            self._cond.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-entities", daemon=True)
            self._thread.start()

    def _engine_ready(self) -> bool:
        """Whether Platypush's entities engine runs (waited for once, at most ``engine_timeout`` s)."""
        if self._ready is None:
            try:
                get_entities_engine(timeout=self.engine_timeout).wait_start(timeout=self.engine_timeout)
                self._ready = True
            except TimeoutError:
                if not self._stopped:  # a plugin stopped meanwhile has nothing more to say
                    logger.warning("%s: no entities engine: the entities are not saved", self.name)
                self._ready = False
        return self._ready

    def _run(self) -> None:
        ready = self._engine_ready() if self._save is save_entities else True
        last = float("-inf")
        while True:
            with self._cond:
                while not self._stopped:
                    if self._pending:
                        wait = last + self.interval - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)  # more changes meanwhile: one save of the newest
                    else:
                        self._busy = False
                        self._cond.notify_all()
                        self._cond.wait()
                if self._stopped:
                    self._busy = False
                    self._cond.notify_all()
                    return
                work, self._pending, self._busy = self._pending, {}, True
            last = time.monotonic()
            if ready:
                for batch in batches(entity for entity, _, _ in work.values()):
                    self._save_batch(batch, work)

    def _save_batch(self, batch: list[Entity], work: dict[Key, tuple[Entity, str, Callback | None]]) -> None:
        keys = {entity.entity_key for entity in batch}
        started = time.perf_counter()
        try:
            saved = self._save(batch)
        except Exception as exc:  # noqa: BLE001 - the next publication retries them
            self.stats["errors"] += 1
            logger.error("%s: could not save %d entities: %s", self.name, len(batch), exc)
            return
        finally:
            self.stats["save_seconds"] += time.perf_counter() - started
        with self._cond:
            self.stats["saves"] += 1
            self.stats["saved"] += len(keys)
            for key in keys:
                self._saved[key] = work[key][1]
        for entity in saved:
            if entity.entity_key in keys:
                self._announce(entity, work[entity.entity_key][2])

    def _announce(self, entity: Entity, callback: Callback | None) -> None:
        try:
            self._post(entity)
            if callback is not None:
                callback(entity)
        except Exception as exc:  # noqa: BLE001 - the others are announced all the same
            logger.warning("%s: could not announce entity %s: %s", self.name, entity.external_id, exc)


class FastEntities:
    """Mixin before Platypush's entity managers (``class MbedPlugin(FastEntities, …,
    SensorEntityManager)``): ``publish_entities`` goes through the plugin's
    :class:`EntityPublisher` instead of the engine's queue."""

    transform_entities: Callable[..., Collection[Entity]]
    _normalize_entities: Callable[[Collection[Entity]], Collection[Entity]]

    @property
    def entity_publisher(self) -> EntityPublisher:
        """The plugin's publisher (created on first use)."""
        publisher = self.__dict__.get("_entity_publisher")
        if publisher is None:
            publisher = self.__dict__["_entity_publisher"] = EntityPublisher(type(self).__name__)
        return publisher

    def publish_entities(
        self,
        entities: Collection[object] | None,
        callback: Callback | None = None,
        force: bool = False,
        **kwargs: object,
    ) -> Collection[Entity]:
        """Transform, normalise and queue entities (Platypush's ``publish_entities``, without the hold).

        :param entities: the plugin's own objects (``transform_entities`` turns them into entities).
        :param callback: called with each saved entity.
        :param force: save even those that did not change.
        """
        transformed = self._normalize_entities(self.transform_entities(entities or [], **kwargs))
        self.entity_publisher.publish(transformed, force=force, callback=callback)
        return transformed

    def stop(self) -> None:
        """Stop the plugin, then its publisher."""
        super().stop()  # type: ignore[misc]
        publisher = self.__dict__.get("_entity_publisher")
        if publisher is not None:
            publisher.stop()
