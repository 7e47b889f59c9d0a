"""What is retried, and when: the one retry policy of every client (as urllib3's ``Retry``);
framework-free."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from .backoff import exponential_delay
from .errors import ServiceError

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["IDEMPOTENT_METHODS", "RetryChanges", "RetryPolicy"]

#: Methods replayed after they may have reached the server (as urllib3's ``Retry.DEFAULT_ALLOWED_METHODS``).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class RetryChanges(TypedDict, total=False):
    """Fields of a :class:`RetryPolicy` to change (:meth:`RetryPolicy.replace`)."""

    attempts: int
    backoff: float
    backoff_max: float
    budget: float
    methods: frozenset[str]
    respect_retry_after: bool


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried; immutable (adjust a copy with :meth:`replace`).

    An attempt is retried when its error is transient (connection errors,
    timeouts, 429, 5xx: :attr:`ServiceError.transient`), the request may be
    replayed (its method is in ``methods``, or it certainly did not reach the
    server), attempts are left and the delay fits in the budget.

    :ivar attempts: total attempts (1 = no retry).
    :ivar backoff: base delay; attempt *n* waits up to ``backoff * 2**n``.
    :ivar backoff_max: cap of one delay (also caps ``Retry-After``).
    :ivar budget: no retry starts after this many seconds since the first
        attempt, so that a call answers well within Platypush's 60 s limit.
    :ivar methods: methods replayed even after they may have reached the server.
    :ivar respect_retry_after: wait what a ``Retry-After`` header asks (capped).
    """

    attempts: int = 3
    backoff: float = 0.5
    backoff_max: float = 10.0
    budget: float = 30.0
    methods: frozenset[str] = IDEMPOTENT_METHODS
    respect_retry_after: bool = True

    def replace(self, **changes: Unpack[RetryChanges]) -> RetryPolicy:
        """A copy with ``changes`` (the fields above) applied.

        :param changes: field values, e.g. ``attempts=4``.
        """
        return dataclasses.replace(self, **changes)

    def with_retries(self, retries: int) -> RetryPolicy:
        """A copy that retries ``retries`` times (a plugin's ``retries`` setting).

        :param retries: retries after the first attempt (0 = none).
        """
        return self.replace(attempts=max(1, int(retries) + 1))

    def is_idempotent(self, method: str) -> bool:
        """Whether a ``method`` request may be replayed after it may have reached the server.

        :param method: the HTTP method, upper case.
        """
        return method in self.methods

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based).

        :param attempt: how many retries came before.
        :param retry_after: what the server's ``Retry-After`` asked, if anything.
        """
        if retry_after is not None and self.respect_retry_after:
            return min(max(retry_after, 0.0), self.backoff_max)
        return exponential_delay(self.backoff, self.backoff_max, attempt)

    def next_delay(
        self, error: ServiceError, *, failures: int, elapsed: float, replayable: bool, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when ``error`` is final.

        :param error: what the last attempt failed with.
        :param failures: attempts made so far (all failed).
        :param elapsed: seconds since the first attempt started.
        :param replayable: whether the request may be sent again (see the class).
        :param retry_after: the answer's ``Retry-After``, in seconds.
        """
        if not (error.transient and replayable) or failures >= self.attempts:
            return None
        delay = self.delay(failures - 1, retry_after)
        return delay if elapsed + delay <= self.budget else None
