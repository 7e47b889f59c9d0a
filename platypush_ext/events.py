"""Events shared by the plugins of the bundle.

Each plugin with a listener posts its own subclasses (``PushjetConnectedEvent``,
``MbedDisconnectedEvent``, …), so a hook can react to one service or, with
these base classes as ``type``, to any of them.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, ClassVar

from platypush.message.event import Event

from .journal import confirm


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


class JournaledEvent(Event):
    """An event made from a journal entry, named by its ``journal_id``
    (:mod:`platypush_ext.journal`). When Platypush's main loop is done with it — it
    logged it and evaluated it against the hooks, and every hook (or ``@when``
    handler) it started returned, i.e. nothing holds it any more — the journal
    ``journal`` records it as seen, so that a crash re-posts only what was not.

    A subclass names its journal: ``class PushjetMessageEvent(JournaledEvent, journal="pushjet")``.
    """

    journal_name: ClassVar[str] = ""

    def __init_subclass__(cls, journal: str = "", **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if journal:
            cls.journal_name = journal

    def log(self, *args: Any, **kwargs: Any) -> Any:
        # Platypush's main loop logs each event it takes off the bus, then evaluates it
        result = super().log(*args, **kwargs)
        self._watch()
        return result

    def matches_condition(self, condition: Any) -> Any:
        # the hook engine evaluates it against each hook (in case a version logs no more)
        self._watch()
        return super().matches_condition(condition)

    def _watch(self) -> None:
        """Confirm it to its journal once nothing holds it any more (once per event)."""
        journal_id = self.args.get("journal_id")
        if journal_id is None or not self.journal_name or self.__dict__.get("_journal_watched"):
            return
        self.__dict__["_journal_watched"] = True
        weakref.finalize(self, confirm, self.journal_name, journal_id).atexit = False


class DeliveryMarkEvent(Event):
    """Says nothing: published after each batch of journaled events, so that Platypush's bus
    loop lets go of the last one (it keeps the last message it decoded until the next one
    comes) and that event can be confirmed. Quiet: logged at debug level, not sent to the
    web clients; no hook should need it."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.update(logging_level=logging.DEBUG, disable_web_clients_notification=True)
        super().__init__(*args, **kwargs)
