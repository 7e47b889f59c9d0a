"""Health on the Home panel: a plugin's diagnostic entities (NikDev's outbox, each Pushjet device),
so that a glance at the panel shows that nothing is stuck.

:class:`HealthEntities` reads a plugin's state (a cheap function of its own) every ``interval``
seconds, or at once when poked, and publishes it as entities through an
:class:`~platypush_ext.glue.entities.EntityPublisher` — which saves and announces only what
changed: a steady state costs a read every few seconds and nothing else. It runs only inside
Platypush (it waits, a bounded time, for the entities engine) and ends with the plugin.

:func:`group` builds the entities: a ``Device`` per thing watched, its readings as sensors.
:class:`HealthManager` makes the plugin an entity manager: ``entities.scan`` (the Home panel calls
it when it opens) calls the plugin's ``status``, which publishes the health entities again — the
panel shows a plugin's group only after an update of one of its entities since it opened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

from platypush.entities import Entity, get_entities_engine
from platypush.utils import utcnow
from redis.exceptions import RedisError

from ..core.untrusted import JSON, JSONObject
from .entities import EntityPublisher, FastEntities, entity_classes

logger = logging.getLogger("platypush_ext")

#: A reading: ``(id suffix, name, Platypush entity class, {column: value})``.
Reading = tuple[str, str, str, JSONObject]

H = TypeVar("H", bound="HealthManager")


def group(
    entity_id: str, name: str, description: str, readings: Iterable[Reading], icon: str, reachable: bool = True
) -> list[Entity]:
    """A ``Device`` (``entity_id``) with one read-only sensor per reading, e.g.
    ``("/pending", "Pending entries", "NumericSensor", {"value": 3, "unit": "entries"})``.

    :param entity_id: the device's id (the readings' ids append their suffix).
    :param name: how the panel names the device.
    :param description: what it is.
    :param readings: its readings.
    :param icon: a Font Awesome class for the device and its readings, e.g. ``fas fa-inbox``.
    :param reachable: whether the panel shows it reachable (else with a warning sign).
    """
    classes = entity_classes()
    meta = {"icon": {"class": icon}}
    parent = classes["Device"](id=entity_id, name=name, description=description, meta=meta, reachable=reachable)
    children = []
    for suffix, label, cls, columns in readings:
        child = classes[cls](id=entity_id + suffix, name=label, meta=meta, reachable=reachable, **columns)
        child.parent = parent
        children.append(child)
    return [*children, parent]


def normalise(plugin: str, entities: Iterable[Entity]) -> list[Entity]:
    """As Platypush's ``EntityManager`` does before it publishes: ``external_id``, ``plugin``, time.

    :param plugin: the plugin's name, e.g. ``nikdev``.
    :param entities: the entities (``id`` is the plugin's own id).
    """
    out = list(entities)
    for entity in out:
        if entity.id and not entity.external_id:
            entity.external_id, entity.id = entity.id, None
        entity.plugin, entity.updated_at = plugin, utcnow()
    return out


class HealthEntities:
    """Keeps a plugin's diagnostic entities current (see the module).

    :param plugin: the plugin's name (the entities' ``plugin``).
    :param read: the entities now (:func:`group`), cheap: called every ``interval`` s.
    :param stopping: set when the plugin stops (the thread ends with it).
    :param interval: seconds between two reads (default: 5).
    :param publisher: where they go (default: a publisher of their own).
    :param engine_timeout: the most seconds to wait for Platypush's entities engine.
    """

    #: The least seconds between two reads, however often it is poked.
    MIN_GAP = 0.5

    def __init__(
        self,
        plugin: str,
        read: Callable[[], list[Entity]],
        stopping: threading.Event,
        interval: float = 5.0,
        publisher: EntityPublisher | None = None,
        engine_timeout: float = 60.0,
    ):
        self.plugin, self.read, self.stopping, self.interval = plugin, read, stopping, float(interval)
        self.publisher = publisher or EntityPublisher(f"{plugin}-health")
        self.engine_timeout = float(engine_timeout)
        self._poked = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> HealthEntities:
        """Start watching (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.plugin}-health", daemon=True)
            self._thread.start()
        return self

    def poke(self) -> None:
        """Something changed: read and publish now rather than at the next interval."""
        self._poked.set()

    def publish_now(self, force: bool = False) -> int:
        """Read and publish once; returns how many entities were queued.

        :param force: save and announce them even if unchanged (a scan).
        """
        return self.publisher.publish(normalise(self.plugin, self.read()), force=force)

    def _run(self) -> None:
        try:
            get_entities_engine(timeout=self.engine_timeout).wait_start(timeout=self.engine_timeout)
        except TimeoutError:
            return  # not inside Platypush (or without its entities): nothing to show them on
        while not self.stopping.is_set():
            try:
                self.publish_now()
            except Exception as exc:  # noqa: BLE001 - the next read tries again
                logger.warning("%s: could not read the health entities: %s", self.plugin, exc)
            if self.stopping.wait(self.MIN_GAP):  # pokes in a burst (commits): one read per MIN_GAP
                break
            self._poked.wait(max(0.0, self.interval - self.MIN_GAP))
            self._poked.clear()
        self.publisher.stop()


class HealthManager(FastEntities):
    """Mixin before a plugin's bases, ``SensorEntityManager`` after them (``class NikdevPlugin(HealthManager,
    ServicePlugin, RunnablePlugin, SensorEntityManager)``: Platypush's entity manager drops the constructor's
    arguments that the bundle's ``Diagnostics`` keeps): the plugin is an entity manager of its health
    entities (:attr:`_health`, started by the plugin); its ``status`` calls :meth:`_scan_health`."""

    _health: HealthEntities | None = None

    def __new__(cls: type[H], *args: JSON, **kwargs: JSON) -> H:
        # An entity manager registers itself in Platypush's Redis when it is created; without Redis
        # (a script reading the configuration) the plugin still works, off the Home panel.
        try:
            return super().__new__(cls, *args, **kwargs)
        except RedisError as exc:
            logger.warning("%s: not in the entity registry: %s", cls.__name__, exc)
            return object.__new__(cls)

    def transform_entities(self, entities: Collection[Entity], **_: object) -> Collection[Entity]:
        """The health entities are Platypush entities already."""
        return entities

    def _watch_health(self, plugin: str, read: Callable[[], list[Entity]], stopping: threading.Event) -> None:
        """Start showing the health entities (once; through the plugin's publisher).

        :param plugin: the plugin's name.
        :param read: the entities now.
        :param stopping: the plugin's stop event.
        """
        if self._health is None:
            self._health = HealthEntities(plugin, read, stopping, publisher=self.entity_publisher).start()

    def _scan_health(self) -> None:
        """Publish the health entities again, saved even if unchanged (``entities.scan``)."""
        if self._health is not None:
            self._health.publish_now(force=True)
