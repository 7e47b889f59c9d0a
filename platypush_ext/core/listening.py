"""What every listener loop needs, framework-free.

* :class:`Availability` — "unavailable" logged (and reported) once when it
  starts and once when it ends; refused credentials (401/403) are a state of their
  own, "rejected", logged and reported once too;
* :class:`Listener` — runs one bounded step after another until stopped,
  backing off with jitter (:class:`~platypush_ext.core.backoff.Backoff`) after a
  failure, and rarely (:class:`~platypush_ext.core.backoff.AuthBackoff`) after refused
  credentials; its waits end as soon as it is stopped. A listener that holds a
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

from .backoff import AuthBackoff, Backoff
from .errors import AuthError, ServiceError
from .text import iso_time, one_line

__all__ = ["Availability", "AuthBackoff", "Backoff", "Listener"]


class Availability:
    """Tracks whether a service is reachable; reports each change once.

    Refused credentials (an :class:`~platypush_ext.core.errors.AuthError`: 401/403) are not an
    outage when ``on_rejected`` is given: the service is then *rejected* (``up`` is false and
    :attr:`rejected_since` says since when), reported once to ``on_rejected`` and logged once;
    the first success after it is reported to ``on_up`` as the end of an outage is.

    :param what: how logs name the service (no secrets).
    :param log: where the changes are logged.
    :param on_up: called when the service becomes reachable (first success,
        or first success after a failure).
    :param on_down: called with the error when it becomes unreachable.
    :param on_rejected: called with the error's text and the error when the service starts to
        refuse the credentials (without it, a refusal is an outage like any other failure).
    """

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        on_up: Callable[[], None],
        on_down: Callable[[str], None],
        on_rejected: Callable[[str, ServiceError], None] | None = None,
    ):
        self.what, self.log, self.on_up, self.on_down = what, log, on_up, on_down
        self.on_rejected = on_rejected
        self._lock = threading.RLock()  # one transition at a time (e.g. Pushjet's connections, one per device)
        self.up: bool | None = None
        #: when the credentials were first refused (``time.time()``), ``None`` unless rejected now
        self.rejected_since: float | None = None
        #: the refusal's text (one line, no secret), ``None`` unless rejected now
        self.rejected_error: str | None = None

    def ok(self) -> None:
        """An exchange succeeded."""
        with self._lock:
            self._ok()

    def _ok(self) -> None:
        if self.up is not True:
            if self.rejected_since is not None:
                self.log.info("%s accepts the credentials again", self.what)
            elif self.up is False:
                self.log.info("%s is reachable again", self.what)
            self.up, self.rejected_since, self.rejected_error = True, None, None
            self.on_up()

    def failed(self, error: BaseException) -> None:
        """An exchange failed with ``error``.

        :param error: the failure (its text is made one short line).
        """
        with self._lock:
            self._failed(error)

    def _failed(self, error: BaseException) -> None:
        text = one_line(error)  # as every error text of the bundle: one short line
        if self.on_rejected is not None and isinstance(error, AuthError):
            self._rejected(text, error)
        elif self.up is not False or self.rejected_since is not None:
            self.log.warning("%s is unavailable: %s (retrying with backoff)", self.what, text)
            self.up, self.rejected_since, self.rejected_error = False, None, None
            self.on_down(text)
        else:
            self.log.debug("%s still unavailable: %s", self.what, text)

    def _rejected(self, text: str, error: AuthError) -> None:
        if self.rejected_since is not None:
            self.log.debug("%s still refuses the credentials: %s", self.what, text)
            return
        self.up, self.rejected_since, self.rejected_error = False, time.time(), text
        self.log.warning("%s refused the credentials: %s (retrying rarely until they work again)", self.what, text)
        assert self.on_rejected is not None
        self.on_rejected(text, error)

    def rejection(self) -> dict[str, str] | None:
        """``{"since": <ISO 8601 time, UTC>, "error": <the refusal>}`` while the credentials are
        refused, else ``None`` (for a plugin's ``status``)."""
        since, error = self.rejected_since, self.rejected_error
        if since is None or error is None:
            return None
        return {"since": iso_time(since), "error": error}


class Listener:
    """Runs ``step`` until ``stopping`` is set.

    ``step`` makes one bounded exchange and returns the seconds to wait before
    the next one, or ``None`` when it failed and reported it itself (the backoff's
    delay is waited). A :class:`~platypush_ext.core.errors.ServiceError` goes to
    ``on_down``; both ``on_up`` and ``on_down`` are cheap to call each time
    (an :class:`Availability` deduplicates). Another exception goes to
    ``on_unexpected`` when one is given (the loop goes on with backoff), else
    it ends the loop. A refusal of the credentials (an
    :class:`~platypush_ext.core.errors.AuthError`) is followed by the waits of ``auth_backoff``
    instead (rare: the key was revoked, retrying soon cannot help); a success resets both.

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
    :param auth_backoff: the waits after refused credentials (default: :class:`AuthBackoff`'s).
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
        auth_backoff: AuthBackoff | None = None,
    ):
        self.step, self.stopping = step, stopping
        self.backoff = backoff or Backoff()
        self.auth_backoff = auth_backoff or AuthBackoff()
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
            self._reset()
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
                    self._reset()  # it did work: the next attempt waits the base delay
        if error is not None and self.on_down is not None:
            self.on_down(error)
        if isinstance(error, AuthError):
            return self.auth_backoff.next_delay()
        return self.backoff.next_delay()

    def _reset(self) -> None:
        self.backoff.reset()
        self.auth_backoff.reset()

    def _prove(self) -> None:
        with self._lock:
            if self._since is None or self._proved:
                return
            self._proved, announce, self._announced = True, not self._announced, True
            self._reset()
        if announce:
            self._up()

    def _up(self) -> None:
        if self.on_up is not None:
            self.on_up()
