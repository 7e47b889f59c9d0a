"""The one backoff of platypush-ext (framework-free, no imports from the bundle).

Used by the HTTP layer's retries (:class:`~platypush_ext.core.retry.RetryPolicy`), every
listener (:class:`~platypush_ext.core.listening.Listener`), Ge.tt's upload polling and
the sandbox servers; :class:`AuthBackoff` is the rare retry of a listener whose credentials
were refused.
"""

from __future__ import annotations

import random


def exponential_delay(base: float, cap: float, failures: int, jitter: bool = True) -> float:
    """The delay after ``failures + 1`` failures: ``base · 2**failures`` capped at ``cap``.

    With ``jitter`` ("equal jitter"), a random value between half of it and it.

    :param base: the first delay (seconds).
    :param cap: the longest delay (seconds).
    :param failures: failures before this one.
    :param jitter: spread the delay so that many clients do not retry in step.
    """
    delay = min(cap, base * (2**failures))
    return random.uniform(delay / 2, delay) if jitter else delay


class Backoff:
    """Exponential backoff with jitter: ``base``, ``2·base``, … capped at ``cap`` seconds.

    :param base: the first delay (seconds).
    :param cap: the longest delay (seconds).
    :param jitter: randomise each delay (see :func:`exponential_delay`).
    """

    def __init__(self, base: float = 1.0, cap: float = 60.0, jitter: bool = True):
        self.base, self.cap, self.jitter, self.failures = base, cap, jitter, 0

    def next_delay(self) -> float:
        """The delay before the next attempt after one more failure."""
        delay = exponential_delay(self.base, self.cap, self.failures, self.jitter)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits ``base`` again."""
        self.failures = 0


class AuthBackoff:
    """The waits of a listener whose credentials the service refuses (401/403): a rejected key is
    not an outage, so it is not retried from one second up but rarely: at most three requests in
    the first ``window`` seconds (the refused one included: at 0, ``window/3`` and ``5·window/6``),
    then one about every ``interval`` seconds (90–100 % of it, with ``jitter``). The defaults give
    requests at 0, 10 and 25 s, then one every 4½–5 minutes.

    :param window: the first seconds, in which at most three requests are made.
    :param interval: the wait between two later requests (at least ``window``).
    :param jitter: spread the later waits (so that many clients do not retry in step).
    :raises ValueError: a wait that is not positive, or ``interval`` below ``window``.
    """

    #: The waits (as parts of ``window``) after the first and the second refusal.
    EARLY = (1 / 3, 1 / 2)

    def __init__(self, window: float = 30.0, interval: float = 300.0, jitter: bool = True):
        if not (0 < window <= interval):
            raise ValueError(
                f"the auth retry window must be positive and at most the interval, got {window}, {interval}"
            )
        self.window, self.interval, self.jitter, self.failures = float(window), float(interval), jitter, 0

    def next_delay(self) -> float:
        """The wait before the next request after one more refusal."""
        failures, self.failures = self.failures, self.failures + 1
        if failures < len(self.EARLY):
            return self.window * self.EARLY[failures]
        return random.uniform(0.9 * self.interval, self.interval) if self.jitter else self.interval

    def reset(self) -> None:
        """After a success: a later refusal starts the schedule again."""
        self.failures = 0
