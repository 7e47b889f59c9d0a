"""What every listener loop needs, framework-free.

* :class:`Availability` — "unavailable" logged (and reported) once when it
  starts and once when it ends;
* :class:`Listener` — runs one bounded step after another until stopped,
  backing off with jitter (:class:`~platypush_ext.backoff.Backoff`) after a
  failure; its waits end as soon as it is stopped.

The Pushjet and NikDev plugins' ``main`` and the mbed notification channels
are listeners.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from .backoff import Backoff
from .http import ServiceError, one_line

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
    delay is waited). A :class:`~platypush_ext.http.ServiceError` goes to
    ``on_down`` and a success to ``on_up``; both are cheap to call each time
    (an :class:`Availability` deduplicates). Another exception goes to
    ``on_unexpected`` when one is given (the loop goes on with backoff), else
    it ends the loop.

    :param step: one exchange.
    :param stopping: set to stop; every wait ends at once when it is.
    :param backoff: the delays after failures (default: 1 s doubling to 60 s).
    :param on_up: called after each successful step.
    :param on_down: called with the error of each failed step.
    :param on_unexpected: called with any other exception of a step.
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
    ):
        self.step, self.stopping = step, stopping
        self.backoff = backoff or Backoff()
        self.on_up, self.on_down, self.on_unexpected = on_up, on_down, on_unexpected

    def run(self) -> None:
        """Step and wait until stopped."""
        while not self.stopping.is_set():
            self.stopping.wait(self._once())

    def _once(self) -> float:
        """One step; the seconds to wait after it."""
        try:
            delay = self.step()
        except ServiceError as exc:
            if self.on_down is not None:
                self.on_down(exc)
            return self.backoff.next_delay()
        except Exception as exc:
            if self.on_unexpected is None:
                raise
            self.on_unexpected(exc)
            return self.backoff.next_delay()
        if delay is None:
            return self.backoff.next_delay()
        self.backoff.reset()
        if self.on_up is not None:
            self.on_up()
        return delay
