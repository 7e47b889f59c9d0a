"""The correlation of asynchronous answers (framework-free): a device request answered ``202
{"async-response-id"}`` (or sent with our own ``async-id``) is answered later, on the notification
channel; :class:`AsyncRegistry` hands each answer to the caller waiting for it, and keeps one that
came before its ``202`` for a while, so that race loses nothing.
"""

from __future__ import annotations

import collections
import threading
import time

from .messages import AsyncResponse


class AsyncRegistry:
    """Correlates ``async-response-id``s with their responses.

    :param buffer_size: how many unmatched responses are kept (oldest dropped).
    :param buffer_age: seconds an unmatched response is kept (the Connector's
        delivery window is 15 minutes).
    """

    def __init__(self, buffer_size: int = 10000, buffer_age: float = 900.0):
        self._cond = threading.Condition()
        self._waiting: dict[str, AsyncResponse | None] = {}
        self._unmatched: collections.OrderedDict[str, tuple[float, AsyncResponse]] = collections.OrderedDict()
        self.buffer_size, self.buffer_age = buffer_size, buffer_age

    def expect(self, async_id: str) -> None:
        """Announce that a caller will wait for ``async_id`` (picks a response that came early)."""
        with self._cond:
            early = self._unmatched.pop(async_id, None)
            self._waiting[async_id] = early[1] if early else None

    def deliver(self, response: AsyncResponse) -> bool:
        """Hand over a response; returns whether a caller was waiting for it."""
        with self._cond:
            if response.async_id in self._waiting:
                self._waiting[response.async_id] = response
                self._cond.notify_all()
                return True
            now = time.monotonic()
            self._unmatched[response.async_id] = (now, response)
            while self._unmatched and (
                len(self._unmatched) > self.buffer_size
                or next(iter(self._unmatched.values()))[0] < now - self.buffer_age
            ):
                self._unmatched.popitem(last=False)
            return False

    def wait(self, async_id: str, timeout: float) -> AsyncResponse | None:
        """The response of ``async_id`` (``None`` after ``timeout`` s); forgets the id."""
        deadline = time.monotonic() + timeout
        with self._cond:
            try:
                while self._waiting.get(async_id) is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cond.wait(left)
                return self._waiting[async_id]
            finally:
                self._waiting.pop(async_id, None)

    def unmatched(self) -> int:
        """How many answers wait for their caller (buffered)."""
        with self._cond:
            return len(self._unmatched)

    def waiting(self) -> int:
        """How many ids callers are waiting for."""
        with self._cond:
            return len(self._waiting)
