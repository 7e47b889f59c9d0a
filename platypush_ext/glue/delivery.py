"""The one delivery pipeline: what a plugin reads destructively from its service (a Pushjet fetch, an
mbed pull, callback or WebSocket message) enters an :class:`Inbox` — journaled as received, turned
into events entry by entry (a bad entry is dropped and counted, never in the way of the next),
posted once a subscriber of Platypush's bus listens, marked delivered when it got there
(``docs/delivery.md``).

* :class:`Inbox` — one service's journal (:mod:`platypush_ext.core.journal`), publisher
  (:mod:`platypush_ext.core.bus`) and delivery lock;
* :class:`JournaledEvent` — the base of the events made of journal entries: recorded as *seen*
  in the journal once Platypush's main loop is done with one;
* :class:`DeliveryMarkEvent`, :func:`delivery_mark` — published after each batch, so that the
  batch's last event can be confirmed too.

The plugin base that drives an inbox is :class:`platypush_ext.glue.plugin.ListeningPlugin`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from ..core.bus import Bus, Publisher
from ..core.journal import Drops, Entry, Journal, JournalOptions, LazyJournal, Rejected, confirm
from ..core.untrusted import JSON
from ..events import BundleEvent

if TYPE_CHECKING:
    from platypush.event.hook import EventCondition
    from platypush.message.event import Event, EventMatchResult
    from typing_extensions import Unpack

__all__ = ["DeliveryMarkEvent", "Events", "Inbox", "JournaledEvent", "Made", "delivery_mark"]


class _Watch:
    """What Platypush's main loop still does with one event: the results of its hook
    evaluations still alive (``EventHook.run`` hands its result to the hook's thread, which
    holds it until the hook returned). Confirmed to the journal once none is, or once the
    event itself is gone (no hook at all)."""

    __slots__ = ("name", "journal_id", "thread", "live", "done", "__weakref__")

    def __init__(self, name: str, journal_id: object):
        self.name, self.journal_id = name, journal_id
        self.thread = threading.get_ident()  # the main loop's thread that evaluates the event
        self.live: set[int] = set()
        self.done = False

    def hold(self, result: object) -> None:
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


class JournaledEvent(BundleEvent):
    """An event made from a journal entry, named by its ``journal_id``
    (:mod:`platypush_ext.core.journal`). When Platypush's main loop is done with it — it
    logged it, evaluated it against every hook, and every hook it started returned —
    the journal ``journal`` records it as seen, so that a crash re-posts only what was not.
    (``@when`` handlers of scripts are not waited for.)

    A subclass names its journal, its service's :class:`Inbox`:
    ``class PushjetMessageEvent(JournaledEvent, journal="pushjet")``.
    """

    journal_name: ClassVar[str] = ""
    #: a base of the plugins' events, not one of its own: kept off the web panel's event list
    internal_event: ClassVar[bool] = True

    def __init_subclass__(cls, journal: str = "", **kwargs: object):
        super().__init_subclass__(**kwargs)
        if journal:
            cls.journal_name = journal

    def log(self, *args: object, **kwargs: object) -> None:
        # Platypush's main loop (Application.on_message) logs each event it takes off the
        # bus, then evaluates it against the hooks, in the same thread
        result = super().log(*args, **kwargs)
        journal_id = self.args.get("journal_id")
        if journal_id is not None and self.journal_name and "_journal_watch" not in self.__dict__:
            watch = self.__dict__["_journal_watch"] = _Watch(self.journal_name, journal_id)
            weakref.finalize(self, watch.finish).atexit = False
        return result

    def matches_condition(self, condition: EventCondition) -> EventMatchResult:
        result = super().matches_condition(condition)
        watch = self.__dict__.get("_journal_watch")
        if watch is not None and not watch.done and watch.thread == threading.get_ident():
            watch.hold(result)  # an evaluation of the main loop (or the run of a hook): wait for it
        return result


class DeliveryMarkEvent(BundleEvent):
    """Says nothing: published after each batch of journaled events, so that Platypush's bus
    loop lets go of the last one (it keeps the last message it decoded until the next one
    comes) and that event can be confirmed. Quiet: logged at debug level, not sent to the
    web clients; no hook should need it."""

    #: delivery plumbing: kept off the web panel's event list
    internal_event: ClassVar[bool] = True

    def __init__(self, *args: JSON, **kwargs: JSON):
        kwargs.update(logging_level=logging.DEBUG, disable_web_clients_notification=True)
        super().__init__(*args, **kwargs)


def delivery_mark() -> str:
    """The wire text of a :class:`DeliveryMarkEvent` (what a :class:`~platypush_ext.core.bus.Publisher`
    publishes after a batch of journaled events)."""
    return str(DeliveryMarkEvent())


class DeliveryStatus(Drops):
    """What :meth:`Inbox.status` tells: the journal's drops and its counts."""

    journal: dict[str, int]


#: An entry's events: Platypush events, and its
#: :class:`~platypush_ext.core.journal.Rejected` elements.
Events = Sequence["Event | Rejected"]

#: What :meth:`Inbox.post_pending` may be given for an entry just received: its events (and
#: :class:`~platypush_ext.core.journal.Rejected` elements), already made, or the exception that
#: says why it cannot be read (the entry is dropped with it).
Made = Events | Exception


class Inbox:
    """What one service reads destructively, on its way to Platypush's bus.

    Everything read is first :meth:`receive`\\ d (journaled, as received), then
    :meth:`post_pending` makes each pending entry into events with ``to_events`` and
    publishes them; an entry counts as delivered once a subscriber of the bus received
    every event of it (at-least-once: a crash, or a post that reached nobody, posts it
    again with the same ``journal_id``).

    :param service: the service's name: its journal's (its events say
        ``JournaledEvent, journal=<service>``) and the logs'.
    :param to_events: an entry's events (and a :class:`~platypush_ext.core.journal.Rejected`
        for each element that cannot be one); raises (a
        :class:`~platypush_ext.core.errors.ProtocolError` without secrets) for an entry that
        cannot be read: it is dropped, logged once and counted.
    :param bus: returns Platypush's bus (looked up at each post).
    :param path: the journal's file.
    :param log: where the waits for the bus are logged.
    :param journal_options: the journal's other options (``keep_posted``, ``grace``).
    """

    def __init__(
        self,
        service: str,
        to_events: Callable[[Entry], Events],
        bus: Callable[[], Bus],
        path: str,
        log: logging.Logger | None = None,
        **journal_options: Unpack[JournalOptions],
    ):
        self.service, self._to_events = service, to_events
        self.log = log or logging.getLogger(f"platypush_ext.{service}")
        self._journal = LazyJournal(path, name=service, **journal_options)
        self._publisher = Publisher(bus, mark=delivery_mark)
        #: Held while entries are posted, and by a reader around a destructive read, its
        #: journaling and its post, so that reads and posts keep their order and two posts
        #: never publish the same pending entry twice (reentrant: a reader's post takes it again).
        self.lock = threading.RLock()
        #: the events of entries just received, by journal id (bounded: what falls out is made again)
        self._made: dict[int, Made] = {}
        self._made_lock = threading.Lock()

    @property
    def journal(self) -> Journal:
        """The journal (opened on first use)."""
        return self._journal.get()

    def receive(self, source: str, payloads: Sequence[JSON]) -> list[int]:
        """Durably journal what was read, as received, before anything else is done with it.

        :param source: where it came from (a device, a channel).
        :param payloads: JSON-serialisable payloads, one entry each (what cannot be decoded:
            its text as received, e.g. bytes decoded with ``surrogateescape``).
        :return: their journal ids (none, and the journal untouched, for no payload).
        """
        return self.journal.append(source, payloads) if payloads else []

    def post_pending(self, stop: threading.Event, timeout: float = 10.0, made: Mapping[int, Made] | None = None) -> int:
        """Post the events of the entries not delivered yet, oldest first.

        :param stop: set when the caller must give up (the plugin stops).
        :param timeout: the most seconds spent waiting for a subscriber of the bus.
        :param made: the events of entries just received (made already: not made again).
        :return: how many entries were delivered (the others stay pending).
        """
        self.keep_made(made or {})
        with self.lock:
            return self.journal.post_pending(self._publisher, self._events, stop, timeout=timeout)

    def keep_made(self, made: Mapping[int, Made]) -> None:
        """Keep the events of entries just received for their post (at most :attr:`MADE_LIMIT`
        entries: the oldest, posted first, are kept; those beyond are made again from the journal
        when posted).

        :param made: events (or the exception that drops the entry), by journal id.
        """
        with self._made_lock:
            for entry_id, events in made.items():
                if len(self._made) >= self.MADE_LIMIT:
                    return
                self._made[entry_id] = events

    #: The most entries whose events :meth:`keep_made` keeps.
    MADE_LIMIT = 10_000

    def _events(self, entry: Entry) -> Events:
        with self._made_lock:
            made = self._made.pop(entry.id, None)
        if isinstance(made, Exception):
            raise made
        return self._to_events(entry) if made is None else made

    def wait_for_bus(self, stop: threading.Event, interval: float = 30.0) -> bool:
        """Wait until a subscriber listens on Platypush's bus (its main loop subscribes about a
        second after plugins start: what is read before would only fill the journal); logs
        every ``interval`` seconds while none does.

        :param stop: set when the caller must give up.
        :param interval: seconds between two log lines.
        :return: whether one listens (``False``: ``stop`` was set).
        """
        while not self._publisher.wait_listening(stop, timeout=interval):
            if stop.is_set():
                return False
            self.log.info("%s: waiting for Platypush's bus to have a subscriber", self.service)
        return True

    def status(self) -> DeliveryStatus:
        """What a plugin's ``status`` shows of its deliveries: ``{"dropped": n, "recent_drops":
        [...], "journal": {"pending", "posted", "dropped", "duplicates"}}``
        (:meth:`~platypush_ext.core.journal.Journal.drops`, ``counts``)."""
        journal = self.journal
        return {**journal.drops(), "journal": journal.counts()}

    def close(self, timeout: float = 2.0) -> None:
        """Close the journal (a clean stop) once no post runs; a post still running after
        ``timeout`` seconds leaves it open: recovered at the next start as after a crash.

        :param timeout: seconds to wait for a running post.
        """
        self._journal.close(self.lock, timeout)
