"""platypush_ext.core.bus against a real redis-server and Platypush's real RedisBus: receiver
counts, waiting for a subscriber, and the private RedisBus API the module relies on."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from platypush.bus.redis import RedisBus
from platypush.message.event import Event

from platypush_ext.core.bus import BATCH, Publisher
from platypush_ext.sandbox.ports import free_port
from platypush_ext.sandbox.runner import redis_server_binary
from tests.support import Listener, RecordingBus, wait_until

pytestmark = pytest.mark.skipif(not redis_server_binary(), reason="redis-server is not installed")


def numbered(n: int) -> list[Event]:
    return [Event(n=i) for i in range(n)]


def test_the_private_redisbus_api_this_module_uses_is_still_there(redis_server: Any, redis_bus: RedisBus) -> None:
    # If Platypush renames RedisBus.redis / .redis_queue or changes what post() publishes,
    # this fails, and platypush_ext.core.bus must follow.
    assert redis_bus.redis_queue == "platypush/bus" == RedisBus.DEFAULT_REDIS_QUEUE
    assert isinstance(redis_bus.redis, redis.Redis)
    watcher = redis.Redis(port=redis_server.port).pubsub(ignore_subscribe_messages=True)
    watcher.subscribe(redis_bus.redis_queue)
    event = Event(marker="contract")
    redis_bus.post(event)
    got = wait_until(lambda: watcher.get_message(timeout=0.1), timeout=5)
    assert got["data"].decode() == str(event)  # the wire format the adapter publishes too
    watcher.close()


def test_nobody_listening_means_zero_receivers(redis_bus: RedisBus) -> None:
    publisher = Publisher(lambda: redis_bus)
    assert publisher.listeners() == 0
    assert publisher.publish(numbered(1)) == [0]
    assert publisher.publish(numbered(3)) == [0, 0, 0]


def test_a_listening_bus_receives_every_event_in_order(redis_bus: RedisBus, listener: Listener) -> None:
    publisher = Publisher(lambda: redis_bus)
    assert publisher.listeners() == 1
    total = BATCH + 7  # two pipelines
    assert publisher.publish(numbered(total)) == [1] * total
    assert publisher.publish([Event(n=total)]) == [1]

    def ours() -> list[int]:  # the bus loop also posts its own ApplicationStartedEvent
        return [m.args["n"] for m in listener.received if "n" in m.args]

    wait_until(lambda: len(ours()) >= total + 1, timeout=10)
    assert ours() == list(range(total + 1))


def test_wait_listening_returns_once_a_subscriber_comes(redis_server: Any, redis_bus: RedisBus) -> None:
    publisher, stop = Publisher(lambda: redis_bus), threading.Event()
    later: list[Listener] = []
    starter = threading.Timer(0.3, lambda: later.append(Listener(redis_server.port)))
    starter.start()
    started = time.monotonic()
    assert publisher.wait_listening(stop, timeout=10) is True
    assert 0.2 < time.monotonic() - started < 5
    starter.join()
    later[0].close()


def test_wait_listening_is_bounded_and_stoppable(redis_bus: RedisBus) -> None:
    publisher, stop = Publisher(lambda: redis_bus), threading.Event()
    started = time.monotonic()
    assert publisher.wait_listening(stop, timeout=0.3) is False
    assert 0.25 < time.monotonic() - started < 2
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert publisher.wait_listening(stop, timeout=30) is False
    assert time.monotonic() - started < 2


def test_an_unreachable_redis_means_nobody_received_and_nobody_listens() -> None:
    dead = RedisBus(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    assert Publisher(lambda: dead).publish(numbered(2)) == [0, 0]  # stays pending, never an exception
    assert Publisher(lambda: dead).wait_listening(threading.Event(), timeout=0.5) is False


def test_a_bus_without_pubsub_counts_a_post_as_delivered() -> None:
    recording = RecordingBus()
    publisher = Publisher(lambda: recording)
    assert publisher.listeners() == 1
    assert publisher.publish(numbered(3)) == [1, 1, 1]
    assert [e.args["n"] for e in recording.events] == [0, 1, 2]
    assert publisher.wait_listening(threading.Event(), timeout=0) is True


def test_a_large_backlog_is_paced_so_that_redis_does_not_drop_a_slow_subscriber(
    redis_server: Any, redis_bus: RedisBus
) -> None:
    # 1,000 events of 64 kB (64 MB) published unpaced exceed Redis's pub/sub output buffer
    # limit (32 MiB) for a subscriber slower than the publisher: Redis drops it after PUBLISH
    # counted it (redis-py then subscribes again), and what was in its buffer is gone
    subscriber = redis.Redis(port=redis_server.port).pubsub()
    subscriber.subscribe(redis_bus.redis_queue)
    received, subscribed, stop = [0], [0], threading.Event()

    def read_slowly() -> None:
        while not stop.is_set():
            message = subscriber.get_message(timeout=0.1)
            if message and message["type"] == "subscribe":
                subscribed[0] += 1
            elif message:
                received[0] += 1
                time.sleep(0.004)  # 16 MB/s: slower than the publisher

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    total = 1000
    events = [Event(n=i, padding="x" * 64_000) for i in range(total)]
    assert Publisher(lambda: redis_bus).publish(events) == [1] * total
    try:
        wait_until(lambda: received[0] >= total, timeout=30, interval=0.1)
    finally:
        stop.set()
        reader.join(5)
        subscriber.close()
    assert received[0] == total and subscribed[0] == 1  # all of them, on its first subscription
