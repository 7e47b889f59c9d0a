"""platypush_ext.journal with Platypush's real RedisBus on a real redis-server: an entry is
delivered only when a subscriber got its events, re-posted when nobody did, after a restart
and (its last deliveries) after a crash; duplicates are counted."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from platypush.bus.redis import RedisBus
from platypush.message.event import Event

from platypush_ext.bus import Publisher
from platypush_ext.journal import Entry, Journal
from platypush_ext.runner import redis_server_binary
from tests.support import Listener, wait_until

pytestmark = pytest.mark.skipif(not redis_server_binary(), reason="redis-server is not installed")


def build(entry: Entry) -> list[Event]:
    return [] if entry.payload == "broken" else [Event(text=entry.payload, journal_id=entry.id)]


@pytest.fixture
def publisher(redis_server: Any) -> Publisher:
    bus = RedisBus(host="127.0.0.1", port=redis_server.port)
    return Publisher(lambda: bus)


def texts(listener: Listener) -> list[str]:
    return [m.args["text"] for m in listener.received if "text" in m.args]


def test_nothing_counts_as_delivered_while_nobody_listens(tmp_path: Any, publisher: Publisher) -> None:
    journal = Journal(str(tmp_path / "j.db"))
    assert journal.append("dev", ["a", "b"]) == [1, 2]
    assert journal.post_pending(publisher, build, threading.Event(), timeout=0.3) == 0
    assert journal.counts() == {"pending": 2, "posted": 0, "duplicates": 0}
    journal.close()


def test_a_post_that_reached_nobody_is_retried_once_a_subscriber_listens(
    tmp_path: Any, publisher: Publisher, redis_server: Any
) -> None:
    journal = Journal(str(tmp_path / "j.db"))
    journal.append("dev", ["a", "b", "broken"])
    late: list[Listener] = []
    starter = threading.Timer(0.4, lambda: late.append(Listener(redis_server.port)))
    starter.start()
    assert journal.post_pending(publisher, build, threading.Event(), timeout=10) == 2
    assert journal.counts() == {"pending": 0, "posted": 3, "duplicates": 0}  # "broken" dropped, not delivered
    starter.join()
    late[0].close()
    journal.close()


def test_pending_entries_are_delivered_after_a_restart(tmp_path: Any, publisher: Publisher, listener: Listener) -> None:
    first = Journal(str(tmp_path / "j.db"))
    first.append("dev", ["a", "b"])
    first.close()  # stopped before posting
    again = Journal(str(tmp_path / "j.db"))
    assert again.recovered == 0  # a clean stop: nothing delivered is posted again
    assert [e.payload for e in again.pending()] == ["a", "b"]
    assert again.post_pending(publisher, build, threading.Event()) == 2
    assert again.pending() == []
    again.close()


def test_after_a_crash_the_last_deliveries_are_posted_again_and_counted(
    tmp_path: Any, publisher: Publisher, listener: Listener
) -> None:
    crashed = Journal(str(tmp_path / "j.db"), grace=5.0)
    crashed.append("dev", ["a", "b"])
    assert crashed.post_pending(publisher, build, threading.Event()) == 2
    # no close(): the process died (Platypush may not have run the hooks of a and b yet)
    again = Journal(str(tmp_path / "j.db"), grace=5.0)
    assert again.recovered == 2
    assert again.post_pending(publisher, build, threading.Event()) == 2
    assert again.counts() == {"pending": 0, "posted": 2, "duplicates": 2}
    wait_until(lambda: len(texts(listener)) >= 4, timeout=5)
    assert sorted(texts(listener)) == ["a", "a", "b", "b"]
    again.close()


def test_a_stopping_caller_posts_nothing(tmp_path: Any, publisher: Publisher) -> None:
    journal = Journal(str(tmp_path / "j.db"))
    journal.append("dev", ["a"])
    stop = threading.Event()
    stop.set()
    assert journal.post_pending(publisher, build, stop) == 0
    assert journal.counts()["pending"] == 1
    journal.close()


def test_only_the_newest_delivered_entries_are_kept(tmp_path: Any, publisher: Publisher, listener: Listener) -> None:
    journal = Journal(str(tmp_path / "j.db"), keep_posted=3)
    journal.append("dev", [f"m{i}" for i in range(10)])
    assert journal.post_pending(publisher, build, threading.Event()) == 10
    assert journal.counts() == {"pending": 0, "posted": 3, "duplicates": 0}
    journal.close()


def test_a_failed_append_records_nothing(tmp_path: Any) -> None:
    journal = Journal(str(tmp_path / "j.db"))
    with pytest.raises(TypeError):
        journal.append("dev", ["fine", object()])  # not JSON: the whole batch is refused
    assert journal.counts() == {"pending": 0, "posted": 0, "duplicates": 0}
    journal.close()


def test_the_first_pushjet_journal_schema_is_taken_over(tmp_path: Any) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "j.db")
    old.executescript("""CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL,
                         payload TEXT NOT NULL, fetched_at REAL NOT NULL, posted_at REAL);
                         INSERT INTO messages (device, payload, fetched_at, posted_at) VALUES
                         ('dev', '"posted"', 1, 2), ('dev', '"pending 1"', 1, NULL), ('dev', '"pending 2"', 1, NULL);""")
    old.commit()
    old.close()
    journal = Journal(str(tmp_path / "j.db"))
    assert [(e.source, e.payload) for e in journal.pending()] == [("dev", "pending 1"), ("dev", "pending 2")]
    journal.close()
    assert [e.payload for e in Journal(str(tmp_path / "j.db")).pending()] == ["pending 1", "pending 2"]  # once


def test_a_lazy_journal_opens_once_and_closes_only_when_no_post_runs(tmp_path: Any) -> None:
    from platypush_ext.journal import LazyJournal

    lazy = LazyJournal(str(tmp_path / "journal.db"), keep_posted=5)
    opened: list[Journal] = []
    threads = [threading.Thread(target=lambda: opened.append(lazy.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(opened) == 8 and len({id(j) for j in opened}) == 1 and opened[0].keep_posted == 5
    busy = threading.Lock()
    with busy:  # a post still runs: left open, as after a crash
        lazy.close(busy, timeout=0.05)
        assert lazy.get() is opened[0]
    lazy.close(busy)
    assert not busy.locked()
    reopened = lazy.get()  # a clean stop, then a new start
    assert reopened is not opened[0] and reopened.counts()["pending"] == 0
    lazy.close(busy)
