"""The one backoff of platypush-ext (framework-free, no imports from the bundle).

Used by the HTTP layer's retries (:class:`~platypush_ext.core.retry.RetryPolicy`), every
listener (:class:`~platypush_ext.core.listening.Listener`), Ge.tt's upload polling and
the sandbox servers.
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
