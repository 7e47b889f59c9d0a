"""What every listener loop needs, framework-free.

* :class:`Availability` — "unavailable" logged (and reported) once when it
  starts and once when it ends;
* :class:`Listener` — runs one bounded step after another until stopped,
  backing off with jitter (:class:`~platypush_ext.core.backoff.Backoff`) after a
  failure; its waits end as soon as it is stopped. A listener that holds a
  connection (``settle``) resets the backoff and reports "up" only for a
  connection that proved itself (data, or ``settle`` seconds up), so a server that
  accepts and drops every connection causes no reconnect storm.

The Pushjet and NikDev plugins' ``main`` and the mbed notification channels
are listeners.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .backoff import Backoff
from .errors import ServiceError
from .text import one_line

__all__ = ["Availability", "Backoff", "Listener"]


class Availability:
    """Tracks whether a service is reachable; reports each change once.

    :param what: how logs name the service (no secrets).
    :param log: where the changes are logged.
    :param on_up: called when the service becomes reachable (first success,
        or first success after a failure).
    :param on_down: called with the error when it becomes unreachable.
    """

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        on_up: Callable[[], None],
        on_down: Callable[[str], None],
    ):
        self.what, self.log, self.on_up, self.on_down = what, log, on_up, on_down
        self.up: bool | None = None

    def ok(self) -> None:
        """An exchange succeeded."""
        if self.up is not True:
            if self.up is False:
                self.log.info("%s is reachable again", self.what)
            self.up = True
            self.on_up()

    def failed(self, error: BaseException) -> None:
        """An exchange failed with ``error``.

        :param error: the failure (its text is made one short line).
        """
        text = one_line(error)  # as every error text of the bundle: one short line
        if self.up is not False:
            self.log.warning("%s is unavailable: %s (retrying with backoff)", self.what, text)
            self.up = False
            self.on_down(text)
        else:
            self.log.debug("%s still unavailable: %s", self.what, text)


class Listener:
    """Runs ``step`` until ``stopping`` is set.

    ``step`` makes one bounded exchange and returns the seconds to wait before
    the next one, or ``None`` when it failed and reported it itself (the backoff's
    delay is waited). A :class:`~platypush_ext.core.errors.ServiceError` goes to
    ``on_down``; both ``on_up`` and ``on_down`` are cheap to call each time
    (an :class:`Availability` deduplicates). Another exception goes to
    ``on_unexpected`` when one is given (the loop goes on with backoff), else
    it ends the loop.

    Without ``settle``, every step is a whole exchange (a poll): each success
    resets the backoff and goes to ``on_up``. With ``settle``, the steps carry a
    *connection* (a WebSocket): the step reports :meth:`connected` when one is
    established and :meth:`delivered` when it brought data; a failure ends it.
    A connection *proves itself* by delivering data or by staying up ``settle``
    seconds; only then is the backoff reset, so a server that accepts and drops
    every connection is retried ever more slowly instead of at the base delay.
    ``on_up`` is called when a connection is established after none or after one
    that proved itself, else only once the new one proves itself: an outage is
    one ``on_down`` (its start) and one ``on_up`` (its end), however many
    connections were accepted and dropped meanwhile.

    :param step: one exchange.
    :param stopping: set to stop; every wait ends at once when it is.
    :param backoff: the delays after failures (default: 1 s doubling to 60 s).
    :param on_up: called after each successful step (with ``settle``: see above).
    :param on_down: called with the error of each failed step.
    :param on_unexpected: called with any other exception of a step.
    :param settle: seconds a connection must stay up to count as a success (see above).
    """

    def __init__(
        self,
        step: Callable[[], float | None],
        stopping: threading.Event,
        *,
        backoff: Backoff | None = None,
        on_up: Callable[[], None] | None = None,
        on_down: Callable[[ServiceError], None] | None = None,
        on_unexpected: Callable[[Exception], None] | None = None,
        settle: float | None = None,
    ):
        self.step, self.stopping = step, stopping
        self.backoff = backoff or Backoff()
        self.on_up, self.on_down, self.on_unexpected = on_up, on_down, on_unexpected
        self.settle = settle
        self._lock = threading.Lock()
        self._since: float | None = None  # when the open connection was established
        self._proved = self._announced = False  # of the open connection
        self._last_proved: bool | None = None  # of the previous connection (None: there was none)

    def run(self) -> None:
        """Step and wait until stopped."""
        while not self.stopping.is_set():
            self.stopping.wait(self._once())

    def connected(self) -> None:
        """A connection is established (with ``settle``); ``on_up`` unless the previous one
        did not prove itself (then once this one does)."""
        with self._lock:
            self._since, self._proved = time.monotonic(), False
            self._announced = self._last_proved is not False
            announce = self._announced
        if announce:
            self._up()

    def delivered(self) -> None:
        """The open connection brought data: it proved itself (with ``settle``)."""
        self._prove()

    def _once(self) -> float:
        """One step; the seconds to wait after it."""
        try:
            delay = self.step()
        except ServiceError as exc:
            return self._failed(exc)
        except Exception as exc:
            if self.on_unexpected is None:
                raise
            self.on_unexpected(exc)  # the connection, if any, goes on
            return self.backoff.next_delay()
        if delay is None:
            return self._failed(None)
        if self.settle is None:
            self.backoff.reset()
            self._up()
        elif self._since is not None and time.monotonic() - self._since >= self.settle:
            self._prove()
        return delay

    def _failed(self, error: ServiceError | None) -> float:
        """A failed step: the open connection (if any) ended; the backoff's next delay."""
        with self._lock:
            since, self._since = self._since, None
            if since is not None:
                assert self.settle is not None
                self._last_proved = self._proved or time.monotonic() - since >= self.settle
                if self._last_proved:
                    self.backoff.reset()  # it did work: the next attempt waits the base delay
        if error is not None and self.on_down is not None:
            self.on_down(error)
        return self.backoff.next_delay()

    def _prove(self) -> None:
        with self._lock:
            if self._since is None or self._proved:
                return
            self._proved, announce, self._announced = True, not self._announced, True
            self.backoff.reset()
        if announce:
            self._up()

    def _up(self) -> None:
        if self.on_up is not None:
            self.on_up()
