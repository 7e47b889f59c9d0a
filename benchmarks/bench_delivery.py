"""The cost of confirming events (:class:`platypush_ext.glue.delivery.JournaledEvent`): events per second
through Platypush's own bus loop, message handler and hook engine (one ``@hook`` that does
nothing), for a plain event and for a journaled one whose journal records what the engine was
done with; and journal entries per second posted by ``Journal.post_pending``."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from platypush.message.event import Event

from platypush_ext.glue.delivery import JournaledEvent


class PlainEvent(Event):
    """An event as before: not confirmed."""


class ConfirmedEvent(JournaledEvent, journal="bench-delivery"):
    """A journaled event, confirmed to the journal ``bench-delivery``."""


def _main_loop(port: int, kind: type, done: list[int]) -> Any:
    """Platypush's bus loop, ``Application.on_message`` and ``EventProcessor`` with one hook."""
    from platypush.app import Application
    from platypush.bus.redis import RedisBus
    from platypush.event.hook import hook
    from platypush.event.processor import EventProcessor

    @hook(kind)
    def count(event: Any, **_: Any) -> None:
        done[0] += 1

    processor = EventProcessor(hooks={"Count": count})
    on_message = Application.on_message(SimpleNamespace(event_processor=processor))  # type: ignore[arg-type]
    bus = RedisBus(on_message=on_message, host="127.0.0.1", port=port)
    threading.Thread(target=bus.poll, daemon=True).start()
    return bus


def _through_hooks(port: int, kind: type, count: int, journal: Any) -> float:
    """Events per second from the first publish to the last hook run (and, for a journaled
    kind, the last confirmation recorded)."""
    from platypush_ext.core.bus import Publisher
    from tests.support import wait_until

    done = [0]
    bus = _main_loop(port, kind, done)
    publisher = Publisher(lambda: bus)
    wait_until(lambda: publisher.listeners() >= 1, timeout=10)
    events = [kind(n=i, journal_id=i + 1) for i in range(count)]
    started = time.perf_counter()
    publisher.publish(events, mark=True)
    wait_until(lambda: done[0] >= count, timeout=120, interval=0.005)
    if issubclass(kind, JournaledEvent):
        wait_until(lambda: len(journal._seen(list(range(1, count + 1)))) >= count, timeout=60, interval=0.005)
    elapsed = time.perf_counter() - started
    bus.stop()
    return count / elapsed


def _post_pending(port: int, count: int) -> float:
    """Journal entries per second delivered by ``post_pending`` (one event each) to a listening bus."""
    from platypush.bus.redis import RedisBus

    from platypush_ext.core.bus import Publisher
    from platypush_ext.core.journal import Journal
    from tests.support import Listener

    listener = Listener(port)
    journal = Journal(str(Path(tempfile.mkdtemp(prefix="bench-delivery-"), "post.db")), keep_posted=count)
    journal.append("dev", [f"m{i}" for i in range(count)])
    bus = RedisBus(host="127.0.0.1", port=port)
    started = time.perf_counter()
    delivered = journal.post_pending(
        Publisher(lambda: bus), lambda e: [PlainEvent(text=e.payload, journal_id=e.id)], threading.Event()
    )
    elapsed = time.perf_counter() - started
    assert delivered == count
    journal.close()
    listener.close()
    return count / elapsed


def run(quick: bool = False) -> list[str]:
    import tests.conftest  # noqa: F401  # Platypush's Config, in a throw-away folder
    from platypush_ext.core.journal import Journal
    from tests.support import RedisServer

    count, rounds = (500, 1) if quick else (3000, 3)
    redis = RedisServer()
    journal = Journal(str(Path(tempfile.mkdtemp(prefix="bench-delivery-"), "seen.db")), name="bench-delivery")
    try:
        plain = [_through_hooks(redis.port, PlainEvent, count, journal) for _ in range(rounds)]
        confirmed = []
        for _ in range(rounds):
            with journal._transaction() as db:
                db.execute("DELETE FROM seen")
            confirmed.append(_through_hooks(redis.port, ConfirmedEvent, count, journal))
        posted = [_post_pending(redis.port, count) for _ in range(rounds)]
    finally:
        journal.close()
        redis.stop()
    return [
        f"- {count} events through Platypush's bus loop and hook engine (one hook), best of {rounds}:",
        f"  plain events {max(plain):,.0f}/s; journaled events, confirmed {max(confirmed):,.0f}/s "
        f"({100 * (1 - max(confirmed) / max(plain)):.0f} % fewer)",
        f"- `Journal.post_pending`, {count} entries of one event to a listening bus: {max(posted):,.0f} entries/s",
    ]
