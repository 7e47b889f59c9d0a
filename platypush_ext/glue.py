"""Platypush glue shared by every plugin of the bundle.

* :func:`action` — Platypush's ``@action`` that turns a :class:`ServiceError`
  into a readable error response (one log line, no traceback, no secret).
* :class:`Backoff` and :class:`Availability` — what every listener loop needs:
  exponential backoff with jitter, and "unavailable" logged (and reported)
  once when it starts and once when it ends.
* :func:`state_path` — where a plugin keeps its local state (Platypush's workdir).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import random
from typing import Any, Callable, Optional, TypeVar

from platypush.config import Config

from platypush.plugins import action as platypush_action

from .http import ServiceError

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("platypush_ext")


def action(method: F) -> F:
    """Platypush's ``@action``, with errors of the bundle reported as plain text.

    A :class:`~platypush_ext.http.ServiceError` (bad input, service errors,
    unreachable service) becomes the response's error text, logged as one
    warning line; anything else is left to Platypush (logged with a traceback).
    Platypush finds actions by this decorator's *name*, so it must stay ``action``.
    """

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ServiceError as exc:
            self.logger.warning("%s: %s", method.__name__, exc)
            return None, str(exc)

    run.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]  # the UI's argument form
    return platypush_action(run)  # type: ignore[return-value]


def state_path(service: str, filename: str) -> str:
    """``<Platypush workdir>/platypush_ext/<service>/<filename>``."""
    return os.path.join(Config.get_workdir(), "platypush_ext", service, filename)


class Backoff:
    """Exponential backoff with jitter: ``base``, ``2·base``, … capped at ``cap`` seconds."""

    def __init__(self, base: float = 1.0, cap: float = 60.0):
        self.base, self.cap, self.failures = base, cap, 0

    def next_delay(self) -> float:
        """The delay before the next attempt after one more failure."""
        delay = min(self.cap, self.base * (2**self.failures))
        self.failures += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.failures = 0


class Availability:
    """Tracks whether a service is reachable; reports each change once.

    :param what: how logs name the service (no secrets).
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
        self.up: Optional[bool] = None

    def ok(self) -> None:
        if self.up is not True:
            if self.up is False:
                self.log.info("%s is reachable again", self.what)
            self.up = True
            self.on_up()

    def failed(self, error: BaseException) -> None:
        if self.up is not False:
            self.log.warning("%s is unavailable: %s (retrying with backoff)", self.what, error)
            self.up = False
            self.on_down(str(error))
        else:
            self.log.debug("%s still unavailable: %s", self.what, error)
