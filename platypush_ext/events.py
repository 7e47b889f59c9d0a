"""Events shared by the plugins of the bundle.

Each plugin with a listener posts its own subclasses (``PushjetConnectedEvent``,
``MbedDisconnectedEvent``, …), so a hook can react to one service or, with
these base classes as ``type``, to any of them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, ClassVar

from platypush.message.event import Event

from .core.journal import confirm


class ServiceConnectedEvent(Event):
    """A service is reachable: the listener's first success, or its first after an outage."""

    def __init__(self, *args, base_url: str, **kwargs):
        """
        :param base_url: the service's base URL.
        """
        super().__init__(*args, base_url=base_url, **kwargs)


class ServiceDisconnectedEvent(Event):
    """A service became unavailable; its listener keeps retrying with backoff."""

    def __init__(self, *args, base_url: str, error: str, **kwargs):
        """
        :param base_url: the service's base URL.
        :param error: what went wrong (never a secret).
        """
        super().__init__(*args, base_url=base_url, error=error, **kwargs)


class _Watch:
    """What Platypush's main loop still does with one event: the results of its hook
    evaluations still alive (``EventHook.run`` hands its result to the hook's thread, which
    holds it until the hook returned). Confirmed to the journal once none is, or once the
    event itself is gone (no hook at all)."""

    __slots__ = ("name", "journal_id", "thread", "live", "done", "__weakref__")

    def __init__(self, name: str, journal_id: Any):
        self.name, self.journal_id = name, journal_id
        self.thread = threading.get_ident()  # the main loop's thread that evaluates the event
        self.live: set[int] = set()
        self.done = False

    def hold(self, result: Any) -> None:
        self.live.add(id(result))
        weakref.finalize(result, self.release, id(result)).atexit = False

    def release(self, key: int) -> None:
        self.live.discard(key)
        if not self.live:
            self.finish()

    def finish(self) -> None:
        if not self.done:
            self.done = True
            confirm(self.name, self.journal_id)


class JournaledEvent(Event):
    """An event made from a journal entry, named by its ``journal_id``
    (:mod:`platypush_ext.core.journal`). When Platypush's main loop is done with it — it
    logged it, evaluated it against every hook, and every hook it started returned —
    the journal ``journal`` records it as seen, so that a crash re-posts only what was not.
    (``@when`` handlers of scripts are not waited for.)

    A subclass names its journal: ``class PushjetMessageEvent(JournaledEvent, journal="pushjet")``.
    """

    journal_name: ClassVar[str] = ""
    #: a base of the plugins' events, not one of its own: kept off the web panel's event list
    internal_event: ClassVar[bool] = True

    def __init_subclass__(cls, journal: str = "", **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if journal:
            cls.journal_name = journal

    def log(self, *args: Any, **kwargs: Any) -> Any:
        # Platypush's main loop (Application.on_message) logs each event it takes off the
        # bus, then evaluates it against the hooks, in the same thread
        result = super().log(*args, **kwargs)
        journal_id = self.args.get("journal_id")
        if journal_id is not None and self.journal_name and "_journal_watch" not in self.__dict__:
            watch = self.__dict__["_journal_watch"] = _Watch(self.journal_name, journal_id)
            weakref.finalize(self, watch.finish).atexit = False
        return result

    def matches_condition(self, condition: Any) -> Any:
        result = super().matches_condition(condition)
        watch = self.__dict__.get("_journal_watch")
        if watch is not None and not watch.done and watch.thread == threading.get_ident():
            watch.hold(result)  # an evaluation of the main loop (or the run of a hook): wait for it
        return result


class DeliveryMarkEvent(Event):
    """Says nothing: published after each batch of journaled events, so that Platypush's bus
    loop lets go of the last one (it keeps the last message it decoded until the next one
    comes) and that event can be confirmed. Quiet: logged at debug level, not sent to the
    web clients; no hook should need it."""

    #: delivery plumbing: kept off the web panel's event list
    internal_event: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.update(logging_level=logging.DEBUG, disable_web_clients_notification=True)
        super().__init__(*args, **kwargs)


def delivery_mark() -> str:
    """The wire text of a :class:`DeliveryMarkEvent` (what a :class:`~platypush_ext.core.bus.Publisher`
    publishes after a batch of journaled events)."""
    return str(DeliveryMarkEvent())
