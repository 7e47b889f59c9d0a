"""The bundle in Platypush's web panel: the Execute tab, Extensions and the event listings.

The panel shows what the ``inspect`` plugin's components cache holds, and
Platypush fills that cache only from ``platypush/components.json.gz`` inside
its own package: our plugins appear there only after a manual
``inspect.refresh_cache()`` and a restart, reinstalling Platypush undoes it,
and events outside ``platypush.message.event`` never appear. So :func:`register`
(called when Platypush creates one of our plugins) has the ``inspect`` plugin
add the four plugins and every event of the bundle to its cache when it loads
it (lazily, at the panel's first request; at once if it is already loaded), in
memory, at every start: nothing is written into Platypush's package, and
Platypush's start-up pays nothing (loading ``inspect`` early would cost ~4 s).

The metadata comes from Platypush's own parser
(:class:`platypush.common.reflection.Integration` and ``Message``), so the
forms show what Platypush reads from our signatures and ``:param:`` docs. Its
documentation links would lead to pages of docs.platypush.tech that do not
exist for the bundle; they are removed (the docstrings are shown in place).

The private API of Platypush used here — ``InspectPlugin._load_cache()`` and
``InspectPlugin._cache`` (a ``Cache`` with ``lock()`` and ``set(category, type,
metadata)``) — is used in :func:`_hook_inspect` only; ``tests/test_webpanel.py``
fails if it changes.
"""

from __future__ import annotations

import logging
import threading
from typing import ContextManager, Protocol

from platypush.common.reflection import Integration, Message
from platypush.context import get_context
from platypush.message.event import Event
from platypush.utils import get_plugin_class_by_name

from platypush.plugins import Plugin

from ..core.untrusted import JSONObject

#: The plugins of the bundle, by their Platypush names.
PLUGINS = ("pushjet", "mbed", "nikdev", "gett")

logger = logging.getLogger("platypush_ext")
_lock = threading.Lock()
_registered = False


class Cache(Protocol):
    """What :func:`add_to` uses of the ``inspect`` plugin's components cache."""

    def lock(self) -> ContextManager[object]: ...

    def set(self, category: type, obj_type: type, meta: JSONObject) -> None: ...


def plugin_metadata(name: str) -> JSONObject:
    """What the panel shows for one plugin: Platypush's parse, without links to missing pages.

    :param name: the plugin's name, e.g. ``pushjet``.
    """
    meta = Integration.by_name(name).to_dict()
    meta["doc_url"] = None
    for item in (*meta["actions"].values(), *meta["events"].values()):
        item["doc_url"] = None
    return meta


def event_classes() -> list[type[Event]]:
    """Every event class of the bundle (those of the four plugins and their common bases), without
    the delivery plumbing that no hook needs (a class whose own ``internal_event`` is true)."""
    for name in PLUGINS:
        get_plugin_class_by_name(name)  # imports the plugin, hence its events
    found, todo = set(), [Event]
    while todo:
        for sub in type.__subclasses__(todo.pop()):
            todo.append(sub)
            if sub.__module__.startswith("platypush_ext.") and not sub.__dict__.get("internal_event"):
                found.add(sub)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def event_metadata(cls: type[Event]) -> JSONObject:
    """What the panel shows for one event class (its arguments and their ``:param:`` docs).

    :param cls: the event class.
    """
    return {**Message.by_type(cls).to_dict(), "doc_url": None}


def add_to(cache: Cache) -> None:
    """Add the bundle's plugins and events to a components cache; errors are logged, never raised.

    :param cache: the ``inspect`` plugin's ``Cache``.
    """
    try:
        entries = [(Plugin, get_plugin_class_by_name(name), plugin_metadata(name)) for name in PLUGINS]
        entries += [(Event, cls, event_metadata(cls)) for cls in event_classes()]
        with cache.lock():
            for category, obj_type, meta in entries:
                cache.set(category, obj_type, meta)
    except Exception as exc:  # the inspect plugin must load anyway
        logger.warning("the web panel will not list the platypush-ext plugins: %s", exc)


def _hook_inspect() -> None:
    """Have the ``inspect`` plugin add ours whenever it loads its cache (private API of Platypush)."""
    from platypush.plugins.inspect import InspectPlugin

    load = InspectPlugin._load_cache

    def load_with_bundle(self: InspectPlugin) -> None:
        load(self)
        add_to(self._cache)

    InspectPlugin._load_cache = load_with_bundle
    running = get_context().plugins.get("inspect")
    if running is not None:
        add_to(running._cache)


def register() -> bool:
    """List the bundle's plugins and events in the web panel (once per process).

    Never raises: without it the plugins still work, they are only missing from the panel.
    Returns whether the bundle will be listed.
    """
    global _registered
    with _lock:
        if not _registered:
            try:
                _hook_inspect()
            except Exception as exc:  # a changed Platypush must not stop our plugins
                logger.warning("the web panel will not list the platypush-ext plugins: %s", exc)
                return False
            _registered = True
        return True
