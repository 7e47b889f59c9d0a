"""The delivery journal: what a plugin read destructively from a service (a Pushjet
fetch, an mbed pull, callback or WebSocket message) is written here before
anything else, and counts as delivered only once a subscriber of Platypush's bus
received its events (:class:`platypush_ext.bus.Publisher`).

An entry is *pending* from the moment it is journaled until its events were
delivered; pending entries are posted again (after a restart, or when a post
reached nobody): at-least-once delivery. After a crash (the journal was not
closed), the entries delivered in the last ``grace`` seconds before it are posted
once more too, since Platypush may have died before running their hooks. Each
entry keeps its id, which its events carry so that a hook can recognise a
re-post; every delivery beyond an entry's first is counted as a duplicate.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from .bus import Publisher
from .storage import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    journaled_at REAL    NOT NULL,
    posted_at    REAL,
    deliveries   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_pending ON entries (posted_at) WHERE posted_at IS NULL;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Entry(NamedTuple):
    """A journaled entry: its id, where it came from (e.g. a device) and what was read."""

    id: int
    source: str
    payload: Any


class Journal:
    """SQLite journal of entries read from a service, with their delivery state.

    :param path: the database file.
    :param keep_posted: how many delivered entries to keep (older ones are pruned).
    :param grace: after a crash, entries delivered this many seconds before the
        last delivery are posted again.
    """

    def __init__(self, path: str, keep_posted: int = 1000, grace: float = 5.0):
        self.path, self.keep_posted, self.grace = path, keep_posted, grace
        self._lock = threading.Lock()
        self._unpruned = 0  # entries marked posted since the last prune
        self._db = connect(path)
        self._db.executescript(_SCHEMA)
        self._adopt_legacy()
        self.recovered = self._recover()
        self._db.execute("INSERT OR REPLACE INTO state VALUES ('open', '1')")

    def _adopt_legacy(self) -> None:
        """Take over the pending messages of the Pushjet journal's first schema (table ``messages``)."""
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone():
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute(
            "INSERT INTO entries (source, payload, journaled_at) SELECT device, payload, fetched_at "
            "FROM messages WHERE posted_at IS NULL ORDER BY id"
        )
        self._db.execute("DROP TABLE messages")
        self._db.execute("COMMIT")

    def _recover(self) -> int:
        """After a crash, mark the deliveries of the last ``grace`` seconds pending again."""
        row = self._db.execute("SELECT value FROM state WHERE key = 'open'").fetchone()
        if not row or row[0] != "1":
            return 0
        return self._db.execute(
            "UPDATE entries SET posted_at = NULL WHERE posted_at >= (SELECT MAX(posted_at) FROM entries) - ?",
            (self.grace,),
        ).rowcount

    def append(self, source: str, payloads: Sequence[Any]) -> list[int]:
        """Durably record what was read, in one transaction.

        :param source: where it came from (e.g. the device).
        :param payloads: JSON-serialisable payloads, one entry each.
        :return: their ids.
        """
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = [
                    int(
                        self._db.execute(
                            "INSERT INTO entries (source, payload, journaled_at) VALUES (?, ?, ?)",
                            (source, json.dumps(payload), now),
                        ).lastrowid
                        or 0
                    )
                    for payload in payloads
                ]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    def get(self, entry_id: int) -> Entry | None:
        """One entry by its id, delivered or not (``None`` when unknown or pruned).

        :param entry_id: the id :meth:`append` returned.
        """
        with self._lock:
            row = self._db.execute("SELECT id, source, payload FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return Entry(row[0], row[1], json.loads(row[2])) if row else None

    def pending(self, limit: int = 500) -> list[Entry]:
        """Entries not delivered yet, oldest first.

        :param limit: at most this many.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, source, payload FROM entries WHERE posted_at IS NULL ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [Entry(row[0], row[1], json.loads(row[2])) for row in rows]

    def mark_posted(self, ids: Sequence[int], delivered: bool = True) -> None:
        """Record that the entries' events were delivered (or dropped as unusable).

        :param ids: the entries.
        :param delivered: ``False`` for an entry dropped without a delivery (malformed).
        """
        now, count = time.time(), 1 if delivered else 0
        with self._lock, self._relaxed():
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "UPDATE entries SET posted_at = ?, deliveries = deliveries + ? WHERE id = ?",
                [(now, count, i) for i in ids],
            )
            self._db.execute("COMMIT")
            self._unpruned += len(ids)

    @contextlib.contextmanager
    def _relaxed(self) -> Iterator[None]:
        """No fsync for this commit (it survives a crash of the process, not of the machine):
        for what, if lost, only causes a duplicate (a delivery mark, a prune)."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def prune(self) -> None:
        """Forget the oldest delivered entries beyond ``keep_posted``."""
        with self._lock, self._relaxed():
            self._unpruned = 0
            self._db.execute(
                "DELETE FROM entries WHERE posted_at IS NOT NULL AND id <= (SELECT id FROM entries "
                "WHERE posted_at IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self.keep_posted,),
            )

    def counts(self) -> dict[str, int]:
        """``{"pending": n, "posted": m, "duplicates": d}`` (duplicates among the kept entries)."""
        with self._lock:
            pending, total, duplicates = self._db.execute(
                "SELECT SUM(posted_at IS NULL), COUNT(*), SUM(MAX(deliveries - 1, 0)) FROM entries"
            ).fetchone()
        return {
            "pending": int(pending or 0),
            "posted": int(total or 0) - int(pending or 0),
            "duplicates": int(duplicates or 0),
        }

    def post_pending(
        self, publisher: Publisher, build: Callable[[Entry], list[Any]], stop: threading.Event, timeout: float = 10.0
    ) -> int:
        """Post the events of pending entries, oldest first, until none is left.

        When a post reached nobody, waits (at most ``timeout`` seconds in all) for
        a subscriber and posts again; what is still undelivered stays pending.

        :param publisher: where to post.
        :param build: an entry's events (``[]``: unusable, dropped).
        :param stop: set when the caller must give up.
        :param timeout: the most seconds spent waiting for a subscriber.
        :return: how many entries were delivered.
        """
        delivered, deadline = 0, time.monotonic() + timeout
        while not stop.is_set():
            entries = self.pending()
            if not entries:
                break
            done = self._post(publisher, build, entries)
            delivered += done
            if done < len(entries) and not publisher.wait_listening(stop, deadline - time.monotonic()):
                break
        if self._unpruned > self.keep_posted // 10:
            self.prune()
        return delivered

    def _post(self, publisher: Publisher, build: Callable[[Entry], list[Any]], entries: list[Entry]) -> int:
        """Publish the entries' events; marks (and counts) those whose every event reached someone."""
        built = [(entry, build(entry)) for entry in entries]
        self.mark_posted([entry.id for entry, events in built if not events], delivered=False)
        counts = iter(publisher.publish([event for _, events in built for event in events]))
        ok = [entry.id for entry, events in built if events and min([next(counts) for _ in events]) >= 1]
        self.mark_posted(ok)
        return len(ok)

    def close(self) -> None:
        """Close the journal, recording a clean stop (no crash recovery at the next open)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO state VALUES ('open', '0')")
            self._db.close()


class LazyJournal:
    """A plugin's :class:`Journal`: opened at first use, by whichever thread (an action
    or the listener) comes first, and closed on a clean stop.

    :param path: the database file.
    :param options: the journal's other arguments (``keep_posted``, ``grace``).
    """

    def __init__(self, path: str, **options: Any):
        self.path, self.options = path, options
        self._journal: Journal | None = None
        self._lock = threading.Lock()

    def get(self) -> Journal:
        """The journal, opened if it is not yet."""
        with self._lock:
            if self._journal is None:
                self._journal = Journal(self.path, **self.options)
            return self._journal

    def close(self, busy: threading.Lock | threading.RLock, timeout: float = 2.0) -> None:
        """Close the journal once ``busy`` (held while entries are posted) is free. If a post
        still runs after ``timeout`` seconds, it is left open: recovered as after a crash.

        :param busy: the lock held by whoever posts the journal's entries.
        :param timeout: seconds to wait for it.
        """
        if not busy.acquire(timeout=timeout):
            return
        try:
            with self._lock:
                if self._journal is not None:
                    self._journal.close()  # a clean stop: no crash recovery at the next start
                    self._journal = None
        finally:
            busy.release()
