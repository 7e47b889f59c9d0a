"""Publishing events with proof of delivery: how many subscribers of Platypush's bus got each.

Platypush's main loop subscribes to the Redis pub/sub channel ``platypush/bus``
about a second *after* runnable plugins start, and pub/sub keeps nothing: an
event published before (or while the main loop is down) reaches nobody.
``RedisBus.post`` throws away the receiver count that Redis's ``PUBLISH``
answers, so this module publishes through the bus's own Redis connection and
channel name (``RedisBus.redis`` and ``RedisBus.redis_queue``): the only use
of Platypush's private bus API in the bundle, checked by
``tests/test_bus.py``. Any other bus (the tests' in-memory one) has no count:
its ``post`` counts as delivered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

#: Events published per Redis pipeline.
BATCH = 500


def _redis_of(bus: Any) -> tuple[Any, str] | None:
    """The Redis connection and channel of a ``RedisBus`` (``None`` for other buses)."""
    from platypush.bus.redis import RedisBus

    if not isinstance(bus, RedisBus):
        return None
    return bus.redis, bus.redis_queue


def _mark() -> str:
    from .events import DeliveryMarkEvent

    return str(DeliveryMarkEvent())


class Publisher:
    """Publishes events on Platypush's bus and tells how many subscribers received each.

    :param get_bus: returns the bus (a plugin's ``lambda: self._bus``; looked up at each call).
    """

    def __init__(self, get_bus: Callable[[], Any]):
        self._get_bus = get_bus

    def publish(self, events: Sequence[Any], texts: Sequence[str] | None = None, mark: bool = False) -> list[int]:
        """Publish ``events`` in order (pipelined on Redis).

        :param events: the events.
        :param texts: their wire texts (``str(event)``), if the caller made them already.
        :param mark: then a :class:`platypush_ext.events.DeliveryMarkEvent` (Redis only), so that
            Platypush's bus loop lets go of the last event.
        :return: the number of subscribers that received each event (0: nobody got it,
            also when Redis cannot be reached).
        """
        from redis.exceptions import RedisError

        if not events:
            return []
        bus = self._get_bus()
        target = _redis_of(bus)
        if target is None:
            for event in events:
                bus.post(event)
            return [1] * len(events)
        try:
            texts = [str(e) for e in events] if texts is None else list(texts)
            return self._publish(*target, texts + [_mark()] if mark else texts)[: len(events)]
        except RedisError:
            return [0] * len(events)

    @staticmethod
    def _publish(redis: Any, channel: str, texts: Sequence[str]) -> list[int]:
        if len(texts) == 1:
            return [int(redis.publish(channel, texts[0]))]
        counts: list[int] = []
        for start in range(0, len(texts), BATCH):
            pipeline = redis.pipeline(transaction=False)
            for text in texts[start : start + BATCH]:
                pipeline.publish(channel, text)
            counts += [int(n) for n in pipeline.execute()]
        return counts

    def listeners(self) -> int:
        """How many subscribers listen on the bus now (1 for a bus without pub/sub)."""
        target = _redis_of(self._get_bus())
        if target is None:
            return 1
        redis, channel = target
        return int(dict(redis.pubsub_numsub(channel)).get(channel.encode(), 0))

    def wait_listening(self, stop: threading.Event, timeout: float, interval: float = 0.1) -> bool:
        """Wait until a subscriber listens on the bus.

        :param stop: set when the caller must give up (e.g. the plugin stops).
        :param timeout: the most seconds to wait.
        :param interval: seconds between two checks.
        :return: whether a subscriber listens.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.listeners() >= 1:
                    return True
            except Exception:  # noqa: BLE001 - Redis not up yet: keep waiting, bounded
                pass
            left = deadline - time.monotonic()
            if left <= 0 or stop.wait(min(interval, left)):
                return False
