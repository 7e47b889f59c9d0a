"""Publishing events with proof of delivery: how many subscribers of Platypush's bus got each.

Platypush's main loop subscribes to the Redis pub/sub channel ``platypush/bus``
about a second *after* runnable plugins start, and pub/sub keeps nothing: an
event published before (or while the main loop is down) reaches nobody.
``RedisBus.post`` throws away the receiver count that Redis's ``PUBLISH``
answers, so this module publishes through the bus's own Redis connection and
channel name (``RedisBus.redis`` and ``RedisBus.redis_queue``): the only use
of Platypush's private bus API in the bundle, checked by
``tests/test_bus.py``. Every other bus (the tests' in-memory one) has no count:
its ``post`` counts as delivered. Framework-free: a bus is anything with ``post``,
and a Redis bus anything that also has ``redis`` (a Redis client) and ``redis_queue``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

#: Events published per Redis pipeline, and the most bytes of one pipeline.
BATCH = 500
BATCH_BYTES = 1024 * 1024
#: Before the next pipeline, wait (at most ``DRAIN_WAIT`` seconds) until no subscriber has more
#: than this many bytes waiting in Redis: Redis drops a subscriber that reaches 32 MiB, or stays
#: above 8 MiB for 60 s (``client-output-buffer-limit pubsub``, its default), after ``PUBLISH``
#: counted it as a receiver.
BACKLOG_BYTES = 2 * 1024 * 1024
DRAIN_WAIT = 5.0


class Pipeline(Protocol):
    """A Redis pipeline (``redis.client.Pipeline``): the commands it is given run at :meth:`execute`."""

    def publish(self, channel: str, message: str) -> object:
        """Queue a ``PUBLISH``."""

    def execute(self) -> list[int]:
        """Run the queued commands; their answers (a ``PUBLISH``'s: its receiver count)."""


class Redis(Protocol):
    """The part of a Redis client (``redis.Redis``, as Platypush's bus holds it) this module uses."""

    def publish(self, channel: str, message: str) -> int:
        """``PUBLISH``: how many subscribers received ``message``."""

    def pipeline(self, transaction: bool = True) -> Pipeline:
        """A pipeline of commands."""

    def client_list(self, _type: str | None = None) -> list[dict[str, str]]:
        """``CLIENT LIST``: one mapping of fields (``omem``…) per client."""

    def pubsub_numsub(self, *channels: str) -> list[tuple[bytes, int]]:
        """``PUBSUB NUMSUB``: ``(channel, subscribers)`` pairs."""


class Bus(Protocol):
    """A bus: anything with ``post`` (a Redis bus also has ``redis`` and ``redis_queue``, looked up
    with ``getattr``)."""

    def post(self, event: object) -> None:
        """Publish one event (a Platypush event)."""


def _redis_of(bus: Bus) -> tuple[Redis, str] | None:
    """The Redis connection and channel of a Redis bus (``None`` for other buses)."""
    redis, channel = getattr(bus, "redis", None), getattr(bus, "redis_queue", None)
    if redis is None or not hasattr(redis, "pipeline") or not isinstance(channel, str):
        return None
    return redis, channel


def _batches(texts: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, end)`` of the pipelines: at most :data:`BATCH` events and (unless one alone is
    larger) :data:`BATCH_BYTES` characters each."""
    batches, start, size = [], 0, 0
    for index, text in enumerate(texts):
        if index > start and (index - start >= BATCH or size + len(text) > BATCH_BYTES):
            batches.append((start, index))
            start, size = index, 0
        size += len(text)
    return batches + [(start, len(texts))] if texts else batches


def _backlog(redis: Redis) -> int:
    """The most bytes waiting in Redis for one pub/sub client (0 if Redis does not say)."""
    from redis.exceptions import RedisError

    try:
        return max([int(c.get("omem", 0)) for c in redis.client_list(_type="pubsub")] or [0])
    except (RedisError, ValueError):
        return 0  # e.g. CLIENT disabled on a managed Redis: unpaced


def _wait_drained(redis: Redis, interval: float = 0.02) -> None:
    """Wait (at most :data:`DRAIN_WAIT` seconds: a stuck stranger does not stop delivery) until
    every subscriber read all but :data:`BACKLOG_BYTES` of what was published to it."""
    deadline = time.monotonic() + DRAIN_WAIT
    while _backlog(redis) > BACKLOG_BYTES and time.monotonic() < deadline:
        time.sleep(interval)


class Publisher:
    """Publishes events on Platypush's bus and tells how many subscribers received each.

    :param get_bus: returns the bus (a plugin's ``lambda: self._bus``; looked up at each call).
    :param mark: the wire text of a message published after a batch when asked (``publish(mark=True)``),
        e.g. one that makes Platypush's bus loop let go of the last event.
    """

    def __init__(self, get_bus: Callable[[], Bus], mark: Callable[[], str] | None = None):
        self._get_bus = get_bus
        self._mark = mark

    def publish(self, events: Sequence[object], texts: Sequence[str] | None = None, mark: bool = False) -> list[int]:
        """Publish ``events`` in order (pipelined on Redis).

        :param events: the events.
        :param texts: their wire texts (``str(event)``), if the caller made them already.
        :param mark: then the publisher's ``mark`` (Redis only, if it has one).
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
            marked = mark and self._mark is not None
            return self._publish(*target, texts + [self._mark()] if marked else texts)[: len(events)]  # type: ignore[misc]
        except RedisError:
            return [0] * len(events)

    @staticmethod
    def _publish(redis: Redis, channel: str, texts: Sequence[str]) -> list[int]:
        if len(texts) == 1:
            return [int(redis.publish(channel, texts[0]))]
        counts: list[int] = []
        for start, end in _batches(texts):
            if start:
                _wait_drained(redis)
            pipeline = redis.pipeline(transaction=False)
            for text in texts[start:end]:
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
