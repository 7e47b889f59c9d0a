"""platypush_ext.core.journal with Platypush's real RedisBus on a real redis-server: an entry is
delivered only when a subscriber got its events, re-posted when nobody did, after a restart
and (its last deliveries) after a crash; duplicates are counted."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from typing import Any

import pytest
from platypush.bus.redis import RedisBus
from platypush.message.event import Event

from platypush_ext.core.bus import Publisher
from platypush_ext.core.journal import Entry, Journal, Rejected
from platypush_ext.glue.delivery import JournaledEvent, delivery_mark
from platypush_ext.sandbox.runner import redis_server_binary
from tests.support import Listener, wait_until

pytestmark = pytest.mark.skipif(not redis_server_binary(), reason="redis-server is not installed")


def build(entry: Entry) -> list[Event]:
    return [] if entry.payload == "broken" else [Event(text=entry.payload, journal_id=entry.id)]


@pytest.fixture
def publisher(redis_server: Any) -> Publisher:
    bus = RedisBus(host="127.0.0.1", port=redis_server.port)
    return Publisher(lambda: bus, mark=delivery_mark)


def texts(listener: Listener) -> list[str]:
    return [m.args["text"] for m in listener.received if "text" in m.args]


def test_nothing_counts_as_delivered_while_nobody_listens(tmp_path: Any, publisher: Publisher) -> None:
    journal = Journal(str(tmp_path / "j.db"))
    assert journal.append("dev", ["a", "b"]) == [1, 2]
    assert journal.post_pending(publisher, build, threading.Event(), timeout=0.3) == 0
    assert journal.counts() == {"pending": 2, "posted": 0, "dropped": 0, "duplicates": 0}
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
    assert journal.counts() == {"pending": 0, "posted": 2, "dropped": 1, "duplicates": 0}  # "broken": dropped
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
    assert again.counts() == {"pending": 0, "posted": 2, "dropped": 0, "duplicates": 2}
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
    assert journal.counts() == {"pending": 0, "posted": 3, "dropped": 0, "duplicates": 0}
    journal.close()


def test_a_failed_append_records_nothing(tmp_path: Any) -> None:
    journal = Journal(str(tmp_path / "j.db"))
    with pytest.raises(TypeError):
        journal.append("dev", ["fine", object()])  # not JSON: the whole batch is refused
    assert journal.counts() == {"pending": 0, "posted": 0, "dropped": 0, "duplicates": 0}
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
    from platypush_ext.core.journal import LazyJournal

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


def picky_build(entry: Entry) -> list[Event]:
    """What a plugin's build may do with bad data: raise anything, or make no event."""
    if entry.payload == "overflow":
        return [Event(n=int(json.loads("1e400")))]  # OverflowError, as "max-age": 1e400 once did
    if entry.payload == "deep":
        json.loads("[" * 100_000 + "]" * 100_000)  # RecursionError
    if entry.payload == "huge":
        raise ValueError("bad value " + "x" * 10_000_000 + "\nsecond line")
    return build(entry)


def test_an_entry_that_cannot_become_events_is_dropped_and_blocks_nothing_now_or_later(
    tmp_path: Any, publisher: Publisher, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="platypush_ext.core.journal")
    journal = Journal(str(tmp_path / "j.db"))
    journal.append("dev", ["a", "overflow", "b", "deep", "broken", "huge", "c"])
    assert journal.post_pending(publisher, picky_build, threading.Event()) == 3  # the good ones, in this run
    wait_until(lambda: len(texts(listener)) >= 3, timeout=5)
    assert texts(listener) == ["a", "b", "c"]
    assert journal.counts() == {"pending": 0, "posted": 3, "dropped": 4, "duplicates": 0}
    dropped = journal.dropped()
    assert [(d["id"], d["source"], d["reason"].split(":")[0]) for d in dropped] == [
        (6, "dev", "ValueError"),
        (5, "dev", "no event could be made of it"),
        (4, "dev", "RecursionError"),
        (2, "dev", "OverflowError"),
    ]
    assert dropped[3]["reason"] == "OverflowError: cannot convert float infinity to integer"
    assert dropped[3]["payload"] == '"overflow"' and dropped[3]["journaled_at"] > 0
    assert all(len(d["reason"]) <= 200 and "\n" not in d["reason"] for d in dropped)
    assert len(dropped[0]["payload"]) <= 200 and journal.dropped(limit=1) == dropped[:1]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and all(len(line) <= 500 and "\n" not in line for line in lines)
    journal.close()
    again = Journal(str(tmp_path / "j.db"))  # the next run: nothing bad is retried or in the way
    again.append("dev", ["d"])
    assert again.post_pending(publisher, picky_build, threading.Event()) == 1
    wait_until(lambda: "d" in texts(listener), timeout=5)
    assert again.counts() == {"pending": 0, "posted": 4, "dropped": 4, "duplicates": 0}
    assert len(caplog.records) == 4  # each logged once
    again.close()


def test_a_journal_of_the_previous_version_opens_with_its_pending_entries(
    tmp_path: Any, publisher: Publisher, listener: Listener
) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "j.db")  # the schema before "dropped" and "events"
    old.executescript("""CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,
                         payload TEXT NOT NULL, journaled_at REAL NOT NULL, posted_at REAL,
                         deliveries INTEGER NOT NULL DEFAULT 0);
                         CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                         INSERT INTO state VALUES ('open', '0');
                         INSERT INTO entries (source, payload, journaled_at, posted_at, deliveries) VALUES
                         ('dev', '"done"', 1, 2, 1), ('dev', '"overflow"', 1, NULL, 0), ('dev', '"a"', 1, NULL, 0);""")
    old.commit()
    old.close()
    journal = Journal(str(tmp_path / "j.db"))
    assert [e.payload for e in journal.pending()] == ["overflow", "a"]
    assert journal.post_pending(publisher, picky_build, threading.Event()) == 1
    assert journal.counts() == {"pending": 0, "posted": 2, "dropped": 1, "duplicates": 0}
    journal.close()


def test_a_failed_write_is_rolled_back_and_the_journal_goes_on(tmp_path: Any) -> None:
    journal = Journal(str(tmp_path / "j.db"))
    journal.append("dev", ["a"])
    with pytest.raises(sqlite3.Error):
        journal.mark_posted([[1]])  # type: ignore[list-item]  # fails inside the transaction
    assert journal.append("dev", ["b"]) == [2]  # not "cannot start a transaction within a transaction"
    journal.mark_posted([1])
    assert journal.counts() == {"pending": 1, "posted": 1, "dropped": 0, "duplicates": 0}
    journal.close()


def test_a_lazy_journal_used_after_its_clean_close_does_not_make_the_next_start_a_crash(
    tmp_path: Any, publisher: Publisher, listener: Listener
) -> None:
    from platypush_ext.core.journal import LazyJournal

    lazy, busy = LazyJournal(str(tmp_path / "j.db")), threading.Lock()
    lazy.get().append("dev", ["a"])
    assert lazy.get().post_pending(publisher, build, threading.Event()) == 1
    lazy.close(busy)  # the plugin stopped cleanly...
    lazy.get().append("dev", ["late"])  # ...and a channel still stopping journaled one more message
    again = Journal(str(tmp_path / "j.db"))  # the next start (the late journal was never closed)
    assert again.recovered == 0  # not a crash: "a" is not posted twice
    assert [e.payload for e in again.pending()] == ["late"]
    again.close()


class NoteEvent(JournaledEvent, journal="journal-tests"):
    """A journaled event of these tests (its journal is named ``journal-tests``)."""


def note_build(entry: Entry) -> list[Event]:
    return [NoteEvent(text=entry.payload, journal_id=entry.id)]


class MainLoop:
    """What Platypush's main loop runs: its Redis bus loop, its message handler
    (``Application.on_message``) and its hook engine (``EventProcessor``), with one
    ``@hook`` that records each ``NoteEvent`` whose ``lane`` is ``hooked``, and blocks
    on ``text == "slow"`` until released."""

    def __init__(self, port: int):
        from types import SimpleNamespace

        from platypush.app import Application
        from platypush.event.hook import hook
        from platypush.event.processor import EventProcessor

        self.ran: list[str] = []
        self.release = threading.Event()

        @hook(NoteEvent, lane="hooked")
        def record(event: NoteEvent, **_: Any) -> None:
            if event.args["text"].startswith("slow"):
                self.release.wait(10)
            self.ran.append(event.args["text"])

        processor = EventProcessor(hooks={"Record": record})
        self.bus = RedisBus(
            on_message=Application.on_message(SimpleNamespace(event_processor=processor)),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
        )
        self.thread = threading.Thread(target=self.bus.poll, daemon=True)
        self.thread.start()
        wait_until(lambda: Publisher(lambda: self.bus).listeners() >= 1, timeout=10)

    def close(self) -> None:
        self.release.set()
        self.bus.stop()
        self.thread.join(5)


def test_after_a_crash_only_the_events_platypush_was_not_done_with_are_posted_again(
    tmp_path: Any, publisher: Publisher, redis_server: Any
) -> None:
    loop = MainLoop(redis_server.port)
    lanes = {"a": "hooked", "b": "hooked", "slow": "hooked"}

    def lane_build(entry: Entry) -> list[Event]:
        return [NoteEvent(text=entry.payload, lane=lanes.get(entry.payload, "other"), journal_id=entry.id)]

    try:
        crashed = Journal(str(tmp_path / "j.db"), grace=0.3, name="journal-tests")
        crashed.append("dev", ["slow"])
        assert crashed.post_pending(publisher, lane_build, threading.Event()) == 1
        time.sleep(0.5)  # more than grace: the main loop may lag behind by more than that
        crashed.append("dev", ["a", "b"])
        crashed.append("other", ["no hook matches it"])
        assert crashed.post_pending(publisher, lane_build, threading.Event()) == 3
        wait_until(lambda: crashed._seen([1, 2, 3, 4]) == {"2", "3", "4"}, timeout=5)  # "slow": its hook still runs
        assert sorted(loop.ran) == ["a", "b"]  # (hooks run in threads of their own)
        # no close(): the process died while the hook of "slow" ran
        again = Journal(str(tmp_path / "j.db"), grace=0.3, name="journal-tests")
        assert again.recovered == 1 and [e.payload for e in again.pending()] == ["slow"]
        assert again.post_pending(publisher, lane_build, threading.Event()) == 1
        loop.release.set()  # (after the re-post: here the "crashed" loop lives on and would confirm "slow" now)
        wait_until(lambda: loop.ran.count("slow") == 2, timeout=5)
        assert sorted(loop.ran) == ["a", "b", "slow", "slow"]  # the first run of "slow" was not done: it ran again
        again.close()
    finally:
        loop.close()


def element_build(entry: Entry) -> list[Any]:
    """An entry of several elements, some of which are refused (as an mbed NotificationMessage's)."""
    made: list[Any] = []
    for index, item in enumerate(entry.payload):
        if item.startswith("bad"):
            made.append(Rejected(f"items[{index}]", f"value: expected a number (got {item!r})", item))
        else:
            made.append(Event(text=item, journal_id=f"{entry.id}.{index}"))
    return made


def test_refused_elements_are_dropped_one_by_one_and_the_others_delivered(
    tmp_path: Any, publisher: Publisher, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="platypush_ext.core.journal")
    journal = Journal(str(tmp_path / "j.db"), name="")
    journal.append("dev", [["a", "bad1", "b"], ["bad2", "bad3\nforged"], ["c"]])
    assert journal.post_pending(publisher, element_build, threading.Event()) == 2
    wait_until(lambda: len(texts(listener)) >= 3, timeout=5)
    assert texts(listener) == ["a", "b", "c"]
    assert journal.counts() == {"pending": 0, "posted": 2, "dropped": 3, "duplicates": 0}
    dropped = journal.dropped()
    assert [(d["id"], d["element"]) for d in dropped] == [(2, "items[1]"), (2, "items[0]"), (1, "items[1]")]
    assert dropped[2]["reason"] == "value: expected a number (got 'bad1')" and dropped[2]["payload"] == "bad1"
    assert dropped[0]["payload"] == "bad3\\nforged" and dropped[0]["source"] == "dev"
    lines = [r.getMessage() for r in caplog.records]
    assert "journal: dropped items[1] of entry 1 from dev: value: expected a number (got 'bad1')" in lines
    assert len(lines) == 3 and all(len(line) <= 500 and "\n" not in line for line in lines)
    with journal._transaction() as db:  # as after a crash: every entry posted again
        db.execute("UPDATE entries SET posted_at = NULL WHERE dropped IS NULL")
    assert journal.post_pending(publisher, element_build, threading.Event()) == 2
    assert journal.counts()["dropped"] == 3 and len(caplog.records) == 3  # refused again: neither counted nor logged
    journal.close()
