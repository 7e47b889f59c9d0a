"""mbed endpoints as Platypush entities: the fleet's state and its live updates.

* :class:`Fleet` — the endpoints and their shown resources (thread-safe, framework-free), changed
  by registrations, notifications, de-registrations and expirations;
* :class:`EntitySync` — what the plugin runs: the start-up sync (bounded: a few workers, a total
  budget of device reads, values from the service's cache first), the subscriptions, the writes;
* :func:`to_platypush` — a fleet's endpoints as Platypush entity objects (a ``Device`` per
  endpoint, its resources as children).

Which resources show, and how, is :mod:`platypush_ext.mbed.ipso`'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ..core.errors import InvalidArgumentError, ServiceError
from ..core.text import one_line
from ..core.untrusted import JSON, JSONObject
from ..glue.entities import EntityPublisher, entity_classes
from .client import MbedClient
from .errors import NoCacheError
from .ipso import TYPES, EntityMap, Kind, encode_value, parse_value
from .messages import Notification

if TYPE_CHECKING:
    from platypush.entities import Entity

logger = logging.getLogger("platypush_ext.mbed")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Shown:
    """One resource on the dashboard."""

    path: str
    kind: Kind
    observable: bool = True
    value: JSON = None


@dataclass
class Endpoint:
    """One endpoint (a ``Device`` entity) and its shown resources."""

    name: str
    label: str
    type: str = ""
    queue_mode: bool = False
    reachable: bool = True
    resources: dict[str, Shown] = field(default_factory=dict)
    suspended: bool = False  # by the operator or the system (Pelion / Izuma): unreachable until resumed
    left_at: float | None = None  # ``time.monotonic()`` when it de-registered or expired (and is not back)

    def entity_id(self, path: str) -> str:
        """The entity id of one of its resources.

        :param path: the resource path.
        """
        return f"{self.name}{path}"


class Fleet:
    """The endpoints and their shown resources (thread-safe; snapshots are copies).

    :param entity_map: which resources show, and how.
    """

    def __init__(self, entity_map: EntityMap):
        self.map = entity_map
        self._endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()

    def add(
        self, name: str, label: str, type: str, queue_mode: bool, resources: Iterable[Mapping[str, JSON]]
    ) -> Endpoint:
        """A (re-)registered endpoint: its shown resources (values kept for those it still has).

        :param name: the endpoint name (the id every request takes).
        :param label: how the dashboard names it.
        :param type: the endpoint type.
        :param queue_mode: whether it is a queue-mode endpoint.
        :param resources: ``[{"path" or "uri", "obs"}]`` as a registration or a listing gives them.
        """
        with self._lock:
            old = self._endpoints.get(name)
            endpoint = Endpoint(name, label or (old.label if old else name), type, bool(queue_mode))
            endpoint.suspended = bool(old and old.suspended)
            for resource in resources:
                path = str(resource.get("path") or resource.get("uri") or "")
                kind = self.map.kind(path)
                if kind is not None:
                    value = old.resources[path].value if old and path in old.resources else None
                    endpoint.resources[path] = Shown(path, kind, bool(resource.get("obs", True)), value)
            self._endpoints[name] = endpoint
            return self._copy(endpoint)

    def update(self, name: str, path: str, text: str | None) -> Endpoint | None:
        """A notification: the endpoint (copy) if the resource is shown, else ``None``.

        :param name: the endpoint name.
        :param path: the resource path.
        :param text: the new value.
        """
        with self._lock:
            endpoint = self._endpoints.get(name)
            if endpoint is None or path not in endpoint.resources:
                return None
            shown = endpoint.resources[path]
            value = parse_value(shown.kind, text)
            if value == shown.value and type(value) is type(shown.value) and endpoint.reachable:
                return None  # nothing to show: no publication, no save
            shown.value, endpoint.reachable = value, True
            return self._copy(endpoint)

    def set_reachable(self, name: str, reachable: bool) -> Endpoint | None:
        """A de-registration/expiration (``False``) or a registration update (``True``).

        :param name: the endpoint name.
        :param reachable: whether it is reachable now.
        """
        with self._lock:
            endpoint = self._endpoints.get(name)
            if endpoint is None:
                return None
            endpoint.reachable = reachable
            endpoint.left_at = None if reachable else (endpoint.left_at or time.monotonic())
            return self._copy(endpoint)

    def set_suspended(self, name: str, suspended: bool) -> Endpoint | None:
        """A suspension or a return to service: the endpoint (copy) if it changed, else ``None``.

        :param name: the endpoint name.
        :param suspended: whether it is suspended now.
        """
        with self._lock:
            endpoint = self._endpoints.get(name)
            if endpoint is None or endpoint.suspended == suspended:
                return None
            endpoint.suspended = suspended
            return self._copy(endpoint)

    def stale(self, left_before: float) -> list[str]:
        """The endpoints that left before ``left_before`` (``time.monotonic()``) and did not come back.

        :param left_before: the cut-off.
        """
        with self._lock:
            return [e.name for e in self._endpoints.values() if e.left_at is not None and e.left_at < left_before]

    def remove(self, names: Iterable[str]) -> list[Endpoint]:
        """Forget endpoints; returns those that were there.

        :param names: the endpoint names.
        """
        with self._lock:
            return [e for e in (self._endpoints.pop(n, None) for n in names) if e is not None]

    def find(self, entity_id: str) -> tuple[Endpoint, Shown]:
        """The endpoint and resource of an entity id (``<endpoint><path>``).

        :param entity_id: e.g. ``node-001/3311/0/5850``.
        :raises InvalidArgumentError: no such entity.
        """
        with self._lock:
            for endpoint in self._endpoints.values():
                if entity_id.startswith(endpoint.name) and entity_id[len(endpoint.name) :] in endpoint.resources:
                    copy = self._copy(endpoint)
                    return copy, copy.resources[entity_id[len(endpoint.name) :]]
        raise InvalidArgumentError(f"no mbed entity {entity_id[:80]!r} (ids look like 'node-001/3311/0/5850')")

    def get(self, name: str) -> Endpoint | None:
        """An endpoint (a copy), or ``None``.

        :param name: the endpoint name.
        """
        with self._lock:
            endpoint = self._endpoints.get(name)
            return self._copy(endpoint) if endpoint else None

    def all(self) -> list[Endpoint]:
        """Every endpoint (copies)."""
        with self._lock:
            return [self._copy(e) for e in self._endpoints.values()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._endpoints)

    def sample(self, start: int, limit: int) -> list[Endpoint]:
        """At most ``limit`` endpoints (copies) from the ``start``-th on, wrapping around.

        :param start: where to begin (modulo the fleet's size).
        :param limit: the most endpoints.
        """
        with self._lock:
            names = list(self._endpoints)
            if not names:
                return []
            start %= len(names)
            chosen = (names[start:] + names[:start])[: max(0, limit)]
            return [self._copy(self._endpoints[n]) for n in chosen]

    @staticmethod
    def _copy(endpoint: Endpoint) -> Endpoint:
        return replace(endpoint, resources={p: replace(s) for p, s in endpoint.resources.items()})


class EntitySync:
    """Keeps the fleet and the dashboard in step with the service.

    Start-up (:meth:`start`): one ``GET /v2/endpoints``, then per endpoint one resource
    listing (the service's cache, never the device), one subscription request per shown
    observable resource and one ``cacheOnly`` read per shown resource; only what the cache
    does not hold is read from the device, at most ``max_reads`` such reads in total (never
    from queue-mode endpoints), by ``concurrency`` workers. After that the channel's
    messages (:meth:`handle`) keep it live: no polling. Changed endpoints are published by one
    thread, the newest state of each (a notification that changes nothing publishes nothing); the
    plugin's publisher (:mod:`platypush_ext.glue.entities`) saves only the entities that changed.

    :param client: the service's client.
    :param fleet: the state it updates.
    :param publish: called with the endpoints whose entities changed.
    :param ready: whether the notification channel runs (device answers arrive through it).
    :param concurrency: requests in flight at once (default: 4).
    :param max_reads: device reads at start-up (default: 100; the rest shows once notified).
    :param read_timeout: seconds one device read may take (default: 10).
    :param publish_interval: the least seconds between two publishes (default: 0, at once: the
        publisher coalesces what changes while it saves).
    :param remove: called with the endpoints that left for good (off the dashboard).
    :param stale_after: seconds after which an endpoint that de-registered or expired (and is not back)
        is removed from the fleet and the dashboard (default: 600).
    :param directory_interval: seconds between two reads of the endpoint list (default: 300; 0: never):
        suspensions show, endpoints gone from it are removed.
    """

    def __init__(
        self,
        client: MbedClient,
        fleet: Fleet,
        publish: Callable[[list[Endpoint]], object],
        ready: Callable[[], bool] = lambda: True,
        concurrency: int = 4,
        max_reads: int = 100,
        read_timeout: float = 10.0,
        publish_interval: float = 0.0,
        remove: Callable[[list[Endpoint]], object] = lambda endpoints: None,
        stale_after: float = 600.0,
        directory_interval: float = 300.0,
    ):
        if concurrency < 1 or max_reads < 0:
            raise InvalidArgumentError(
                "mbed entities: concurrency must be at least 1 and entities_max_reads at least 0"
            )
        if stale_after < 0 or directory_interval < 0:
            raise InvalidArgumentError("mbed: stale_after and directory_interval must be at least 0 seconds")
        self.client, self.fleet, self.publish, self.ready = client, fleet, publish, ready
        self.read_timeout, self._reads_left = float(read_timeout), int(max_reads)
        self._pool = ThreadPoolExecutor(max_workers=int(concurrency), thread_name_prefix="mbed-entities")
        self._lock, self._stopped = threading.Lock(), threading.Event()
        self.stats = dict.fromkeys(("listings", "subscriptions", "cache_reads", "device_reads", "errors", "removed"), 0)
        self.remove, self.stale_after, self.directory_interval = remove, float(stale_after), float(directory_interval)
        self._next_directory = time.monotonic() + self.directory_interval
        self._suspended: set[str] = set()  # suspended endpoints, also before their sync added them
        self._gone: set[str] = set()  # endpoints the last directory read no longer lists
        self.publish_interval = float(publish_interval)
        self._pending: dict[str, Endpoint] = {}
        self._cursor = 0
        self._publisher: threading.Thread | None = None
        self._changed = threading.Condition(self._lock)
        #: Endpoints with syncs queued or running: ``[how many, whether it left meanwhile]`` (a
        #: de-registration then may find no endpoint in the fleet yet: applied once a sync adds it).
        self._syncing: dict[str, list[int | bool]] = {}

    def _queue(self, endpoints: list[Endpoint]) -> None:
        """Publish soon: the newest state of each endpoint replaces what is still pending.

        :param endpoints: the changed endpoints.
        """
        with self._lock:
            self._pending.update({e.name: e for e in endpoints})
            self._start_publisher()
            self._changed.notify()

    def _start_publisher(self) -> None:
        """Start the publishing thread, once (call with the lock held)."""
        if self._publisher is None:
            self._publisher = threading.Thread(target=self._publish_loop, name="mbed-entities", daemon=True)
            self._publisher.start()

    def _publish_loop(self) -> None:
        """Publishes what changed, and removes what left (:meth:`_sweep`), at most every ``publish_interval`` s."""
        while not self._stopped.is_set():
            with self._lock:
                if not self._pending:
                    self._changed.wait(1.0)  # at least once a second: the sweep
                endpoints, self._pending = list(self._pending.values()), {}
            try:
                if endpoints:
                    self.publish(endpoints)
                self._sweep()
            except Exception:  # noqa: BLE001 - the next changes are published all the same
                logger.exception("mbed entities: could not publish the entities")
            self._stopped.wait(self.publish_interval)

    def _sweep(self) -> None:
        """Forget the endpoints that left more than ``stale_after`` s ago or are gone from the list (in
        the publishing thread: nothing is published for them afterwards); read the list when it is time."""
        now = time.monotonic()
        with self._lock:
            names = set(self.fleet.stale(now - self.stale_after)) | self._gone
            self._gone = set()
            names -= set(self._syncing)  # a sync in flight adds it again: its registration is newer
            for name in names:
                self._pending.pop(name, None)
                self._suspended.discard(name)
            removed = self.fleet.remove(names)
            self.stats["removed"] += len(removed)
        if removed:
            logger.info("mbed entities: %d endpoint(s) left for good: %s", len(removed), one_line(removed[0].label))
            self.remove(removed)
        if self.directory_interval > 0 and now >= self._next_directory and not self._stopped.is_set():
            self._next_directory = now + self.directory_interval
            self._pool.submit(self._read_directory).add_done_callback(_log_bug)

    def _read_directory(self) -> None:
        """One read of the endpoint list (Pelion / Izuma: every state): suspensions and departures show,
        an endpoint that vanished from it while reachable is removed at the next sweep."""
        try:
            listed = {ep.get("name"): ep for ep in self.client.get_endpoints(all_states=True)}
        except ServiceError as exc:
            self._count("errors")
            self._warn("cannot list the endpoints: %s", one_line(exc))
            return
        changed, gone = [], set()
        for endpoint in self.fleet.all():
            ep = listed.get(endpoint.name)
            if ep is None:
                if endpoint.left_at is None:  # gone while it seemed there: now; else after stale_after
                    gone.add(endpoint.name)
                continue
            with self._lock:
                (self._suspended.add if ep.get("suspended") else self._suspended.discard)(endpoint.name)
            updated = self.fleet.set_suspended(endpoint.name, bool(ep.get("suspended")))
            if str(ep.get("status", "")).upper() != "ACTIVE" and endpoint.reachable:
                updated = self.fleet.set_reachable(endpoint.name, False)
            if updated is not None:
                changed.append(updated)
        with self._lock:
            self._gone |= gone
        if changed:
            self._queue(changed)

    def set_suspended(self, name: str, suspended: bool) -> None:
        """An endpoint was suspended or returned to service: its entities show it.

        :param name: the endpoint name.
        :param suspended: whether it is suspended now.
        """
        with self._lock:
            (self._suspended.add if suspended else self._suspended.discard)(name)
        endpoint = self.fleet.set_suspended(name, suspended)
        if endpoint is not None:
            self._queue([endpoint])

    def tracked(self) -> int:
        """How many endpoints the sync holds in memory (the fleet, pending publishes and syncs, the
        suspended), for :meth:`~platypush_ext.mbed.plugin.MbedPlugin.status` and churn tests."""
        with self._lock:
            names = {e.name for e in self.fleet.all()} | set(self._pending) | set(self._syncing) | self._suspended
            return len(names)

    def sample(self, limit: int) -> list[Endpoint]:
        """The next ``limit`` endpoints to publish again (round-robin: repeated calls cover the fleet).

        :param limit: the most endpoints.
        """
        with self._lock:
            start, self._cursor = self._cursor, self._cursor + max(0, limit)
        return self.fleet.sample(start, limit)

    def republish(self, publish: Callable[..., object], publisher: EntityPublisher, limit: int = 100) -> dict[str, int]:
        """What ``status`` does (``entities.scan`` calls it): publish at most ``limit`` endpoints again
        (saved even if unchanged: a scan restores entities deleted on the panel), the next ones at
        each call, wait (5 s at most) for their save; returns the counts.

        :param publish: the plugin's ``publish_entities``.
        :param publisher: its :class:`~platypush_ext.glue.entities.EntityPublisher`.
        :param limit: the most endpoints per call.
        """
        sample = self.sample(limit)
        if sample:
            publish(sample, force=True)
            publisher.flush(5.0)
        saves = {k: int(publisher.stats[k]) for k in ("saved", "skipped")}
        saves["save_errors"] = int(publisher.stats["errors"])
        counts = {"endpoints": len(self.fleet), "tracked": self.tracked(), "republished": len(sample)}
        return {**counts, **self.stats, **saves}

    def _warn(self, text: str, *args: object) -> None:
        """One warning line of the sync, unless it was stopped meanwhile (its requests then fail)."""
        if not self._stopped.is_set():
            logger.warning("mbed entities: " + text, *args)

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def start(self, wait: float = 30.0) -> None:
        """Sync the registered endpoints in the background, once the channel runs (at most ``wait`` s).

        :param wait: the most seconds to wait for the channel before syncing anyway.
        """
        threading.Thread(target=self._start, args=(wait,), name="mbed-entities-sync", daemon=True).start()

    def _start(self, wait: float) -> None:
        for _ in range(int(wait * 10)):
            if self.ready() or self._stopped.wait(0.1):
                break
        try:
            endpoints = self.client.get_endpoints()
        except ServiceError as exc:
            self._count("errors")
            self._warn("cannot list the endpoints: %s", one_line(exc))
            return
        with self._lock:
            self._start_publisher()  # its sweep runs even if no endpoint shows
            self._suspended |= {
                ep["name"] for ep in endpoints if ep.get("suspended") and isinstance(ep.get("name"), str)
            }
        for ep in endpoints:
            if str(ep.get("status", "ACTIVE")).upper() == "ACTIVE" and isinstance(ep.get("name"), str):
                self._submit(ep["name"], ep.get("label") or ep["name"], ep.get("type") or "", ep.get("q"), None)

    def stop(self) -> None:
        """Stop: what is queued is dropped, what runs finishes."""
        self._stopped.set()
        with self._lock:
            self._changed.notify()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(
        self, name: str, label: str, type: str, queue_mode: JSON, resources: Iterable[Mapping[str, JSON]] | None
    ) -> None:
        if not self._stopped.is_set():
            with self._lock:
                pending = self._syncing.setdefault(name, [0, False])
                pending[0], pending[1] = pending[0] + 1, False  # a registration: it is there
            self._pool.submit(self._sync, name, label, type, bool(queue_mode), resources).add_done_callback(_log_bug)

    def _added(
        self, name: str, label: str, type: str, queue_mode: bool, resources: Iterable[Mapping[str, JSON]]
    ) -> Endpoint:
        """The synced endpoint in the fleet, unreachable if it left while its sync waited."""
        with self._lock:
            self.fleet.add(name, label, type, queue_mode, resources)
            self.fleet.set_suspended(name, name in self._suspended)
            left = self._release(name)
            return self.fleet.set_reachable(name, not left)  # type: ignore[return-value]

    def _release(self, name: str) -> bool:
        """One sync of ``name`` ended (call with the lock held); returns whether it left meanwhile."""
        pending = self._syncing.get(name)
        if pending is None:
            return False
        pending[0] -= 1
        if pending[0] <= 0:
            del self._syncing[name]
        return bool(pending[1])

    def _reachable(self, name: str, reachable: bool) -> Endpoint | None:
        """A de-registration, expiration or registration update: the endpoint (copy) if in the fleet;
        for one whose sync is still waiting, also noted for that sync."""
        with self._lock:
            if name in self._syncing:
                self._syncing[name][1] = not reachable
            return self.fleet.set_reachable(name, reachable)

    def _sync(
        self, name: str, label: str, type: str, queue_mode: bool, resources: Iterable[Mapping[str, JSON]] | None
    ) -> None:
        """One endpoint: its resources, subscriptions and first values; published twice (shape, values)."""
        added = False
        try:
            if resources is None:
                self._count("listings")
                resources = self.client.get_resources(name)
            endpoint, added = self._added(name, label, type, queue_mode, resources), True
        except ServiceError as exc:
            self._count("errors")
            self._warn("%s: %s", name, one_line(exc))
            return
        finally:
            if not added:
                with self._lock:
                    self._release(name)
        if not endpoint.resources or endpoint.suspended:  # a suspended device answers nothing
            if endpoint.resources:
                self._queue([endpoint])
            return
        self._queue([endpoint])
        for shown in endpoint.resources.values():
            if shown.observable:
                self._attempt("subscriptions", name, self.client.subscribe, name, shown.path, wait=False)
        for shown in endpoint.resources.values():
            text = self._first_value(endpoint, shown)
            if text is not None:
                self.fleet.update(name, shown.path, text)
        current = self.fleet.get(name)
        if current is not None:
            self._queue([current])

    def _attempt(self, what: str, name: str, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        if self._stopped.is_set():
            return None
        self._count(what)
        try:
            return call(*args, **kwargs)
        except ServiceError as exc:
            self._count("errors")
            self._warn("%s: %s", name, one_line(exc))
            return None

    def _first_value(self, endpoint: Endpoint, shown: Shown) -> str | None:
        """The service's cached value; else one device read while the budget lasts."""
        self._count("cache_reads")
        try:
            return self.client.get_resource_value(endpoint.name, shown.path, cache_only=True).value  # type: ignore[union-attr]
        except NoCacheError:
            pass
        except ServiceError as exc:
            self._count("errors")
            self._warn("%s%s: %s", endpoint.name, shown.path, one_line(exc))
            return None
        with self._lock:
            allowed = not endpoint.queue_mode and self._reads_left > 0
            self._reads_left -= allowed
        if not allowed:
            return None
        value = self._attempt(
            "device_reads", endpoint.name, self.client.get_resource_value, endpoint.name, shown.path, self.read_timeout
        )
        return None if value is None else value.value

    def handle(self, items: list[Notification]) -> None:
        """The elements of one NotificationMessage: entity updates (published once per endpoint).
        A bug here is logged: it never stops the message's events.

        :param items: the parsed elements.
        """
        try:
            self._handle(items)
        except Exception:  # noqa: BLE001 - the events flow on
            logger.exception("mbed entities: could not update the entities")

    def _handle(self, items: list[Notification]) -> None:
        changed: dict[str, Endpoint] = {}
        for item in items:
            data = item.data
            name = data.get("endpoint", "")
            if item.kind == "notifications":
                endpoint = self.fleet.update(name, data["path"], data.get("value"))
            elif item.kind == "registrations" or (item.kind == "reg-updates" and self.fleet.get(name) is None):
                label = data.get("original_endpoint") or name
                self._submit(name, label, data.get("endpoint_type", ""), data.get("queue_mode"), data["resources"])
                continue
            elif item.kind in ("reg-updates", "de-registrations", "registrations-expired"):
                endpoint = self._reachable(name, item.kind == "reg-updates")
            else:
                continue
            if endpoint is not None:
                changed[name] = endpoint
        if changed:
            self._queue(list(changed.values()))

    def write(self, entity_id: str, value: JSON = None, toggle: bool = False) -> JSONObject:
        """PUT an entity's resource; the entity shows the written value once the device accepted it.

        :param entity_id: ``<endpoint><path>``, e.g. ``node-001/3311/0/5850``.
        :param value: the new value (ignored with ``toggle``).
        :param toggle: write the opposite of the current on/off state.
        :return: ``{"entity": <id>, "value": <new value>}``
        """
        endpoint, shown = self.fleet.find(entity_id)
        if not shown.kind.writable:
            raise InvalidArgumentError(f"{endpoint.label} {shown.kind.name} ({entity_id}) is read-only")
        if toggle:
            if shown.kind.parse != "bool":
                raise InvalidArgumentError(f"{endpoint.label} {shown.kind.name} is not an on/off entity")
            value = not shown.value
        text = encode_value(shown.kind, value)
        self.client.put_resource_value(endpoint.name, shown.path, text)
        updated = self.fleet.update(endpoint.name, shown.path, text)
        if updated is not None:
            self._queue([updated])
        return {"entity": endpoint.entity_id(shown.path), "value": parse_value(shown.kind, text)}


def _log_bug(future: Future[None]) -> None:
    """A sync that failed with something else than a service error (a bug): logged, with its traceback."""
    if not future.cancelled() and future.exception() is not None:
        logger.error("mbed entities: the sync failed", exc_info=future.exception())


def to_platypush(endpoints: Iterable[Endpoint]) -> list[Entity]:
    """Platypush entities: per endpoint its shown resources, then the ``Device`` that is their parent.

    :param endpoints: the endpoints to show.
    """
    classes, entities = entity_classes(), []
    for endpoint in endpoints:
        reachable = endpoint.reachable and not endpoint.suspended
        description = f"{endpoint.type} (suspended)".strip() if endpoint.suspended else endpoint.type or None
        parent = classes["Device"](id=endpoint.name, name=endpoint.label, description=description, reachable=reachable)
        for shown in endpoint.resources.values():
            cls_name, column, _ = TYPES[shown.kind.type]
            cls = classes[cls_name]
            kind = shown.kind
            extra = {
                k: getattr(kind, k) for k in ("unit", "min", "max") if getattr(kind, k) is not None and hasattr(cls, k)
            }
            child = cls(
                id=endpoint.entity_id(shown.path),
                name=kind.name,
                reachable=reachable,
                is_read_only=not kind.writable,
                data={"endpoint": endpoint.name, "path": shown.path},
                meta={"icon": {"class": kind.icon}} if kind.icon else {},
                **{column: shown.value},
                **extra,
            )
            child.parent = parent
            entities.append(child)
        entities.append(parent)
    return entities


def remove_from_platypush(endpoints: Iterable[Endpoint], plugin: str = "mbed") -> int:
    """Delete the entities of endpoints that left for good from Platypush's database (the Home panel
    drops them: Platypush posts an ``EntityDeleteEvent`` for each); returns how many were deleted.

    :param endpoints: the endpoints.
    :param plugin: the plugin whose entities they are.
    """
    from platypush.context import get_plugin
    from platypush.entities import Entity

    ids = [e.name for e in endpoints] + [e.entity_id(path) for e in endpoints for path in e.resources]
    entities = get_plugin("entities")
    if entities is None or not ids:
        return 0
    with entities._get_session(locked=True) as session:
        found = [row.id for row in session.query(Entity).filter(Entity.plugin == plugin, Entity.external_id.in_(ids))]
    if found:
        entities.delete(*found)
    return len(found)
