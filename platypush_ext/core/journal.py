"""The delivery journal: what a plugin read destructively from a service (a Pushjet
fetch, an mbed pull, callback or WebSocket message) is written here before
anything else, and counts as delivered only once a subscriber of Platypush's bus
received its events (:class:`platypush_ext.core.bus.Publisher`).

An entry is *pending* from the moment it is journaled until its events were
delivered; pending entries are posted again (after a restart, or when a post
reached nobody): at-least-once delivery. Each entry is made into events on its
own: one whose ``build`` raises (whatever the exception) or makes no event is
*dropped* — logged once, kept with a one-line reason (:meth:`Journal.dropped`),
never retried, and never in the way of the entries after it. An entry of several
elements (an mbed NotificationMessage) may have some of them refused: ``build`` returns
a :class:`Rejected` for each, beside the events of the others; each refused element is
logged once, counted and listed as dropped, and the entry's other events are delivered.

Platypush's main loop notes each event of the bundle it is done with — evaluated
against the hooks, and every hook it started returned (:func:`confirm`, called by
:class:`platypush_ext.glue.delivery.JournaledEvent`) — as *seen*. After a crash (the
journal was not closed after a delivery), the deliveries of the crashed run are
posted once more, but only their events that were not seen: Platypush may have died
before running their hooks. (If it confirmed nothing in that run, e.g. a Platypush
that evaluates events elsewhere, the deliveries of the last ``grace`` seconds before
the last one are posted again, whole.) Each entry keeps its id, which its events
carry so that a hook can recognise a re-post; every delivery beyond an entry's first is counted as a duplicate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, TypedDict

from .bus import Publisher
from .errors import ProtocolError
from .storage import connect
from .text import one_line
from .untrusted import JSON

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger("platypush_ext.core.journal")

#: The most characters kept of a dropped entry's reason, and of its payload.
REASON_LENGTH = 200
EXCERPT_LENGTH = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    journaled_at REAL    NOT NULL,
    posted_at    REAL,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    dropped      TEXT,
    events       INTEGER
);
CREATE INDEX IF NOT EXISTS entries_pending ON entries (posted_at) WHERE posted_at IS NULL;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (entry INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (entry, event))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejected (
    entry   INTEGER NOT NULL,
    element TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    excerpt TEXT    NOT NULL,
    at      REAL    NOT NULL,
    PRIMARY KEY (entry, element)
) WITHOUT ROWID;
"""

#: Made once the columns are there: counting the states reads this index, not the (large) payloads.
_INDEXES = "CREATE INDEX IF NOT EXISTS entries_state ON entries (posted_at, dropped, deliveries);"

#: Columns added to ``entries`` since its first version (added to an older file when it opens):
#: why an entry was dropped (``NULL``: it was not), how many events its last post had.
_ADDED_COLUMNS = {"dropped": "TEXT", "events": "INTEGER"}


class Entry(NamedTuple):
    """A journaled entry: its id, where it came from (e.g. a device) and what was read."""

    id: int
    source: str
    payload: JSON


class Rejected(NamedTuple):
    """An element of an entry that cannot become an event (what ``build`` returns for it, beside
    the events of the entry's other elements).

    :ivar element: where it is in the entry, e.g. ``notifications[2]``.
    :ivar reason: why, in one line (e.g. ``max-age: expected a whole, finite number (got inf)``).
    :ivar excerpt: the start of the element, for inspection.
    """

    element: str
    reason: str
    excerpt: str = ""


#: A value of a row of :meth:`Journal.dropped` (an SQLite column: id, element, source, reason,
#: journaled_at, payload).
Column = int | float | str | None


class Drops(TypedDict):
    """What :meth:`Journal.drops` tells: the count of drops (all time) and the newest ones."""

    dropped: int
    recent_drops: list[dict[str, Column]]


class JournalOptions(TypedDict, total=False):
    """The options of a :class:`Journal` a plugin may set (see its parameters)."""

    keep_posted: int
    grace: float
    keep_dropped: int


class NamedJournalOptions(JournalOptions, total=False):
    """:class:`JournalOptions` and the journal's ``name``."""

    name: str


class _Ready(NamedTuple):
    """An entry's events, ready to publish: its id, how many events it has, those still to publish
    and their texts, and its refused elements."""

    id: int
    total: int
    events: list[object]
    texts: list[str]
    rejected: list[Rejected]


def _describe(exc: BaseException) -> str:
    """Why a build failed, in one line of at most :data:`REASON_LENGTH` characters: a
    :class:`ProtocolError`'s text (bad data, said as a refused element is), else the
    exception's class and text (a surprise)."""
    try:
        text = one_line(exc, REASON_LENGTH)
    except Exception:  # noqa: BLE001 - an exception whose text cannot be had
        text = "(no text)"
    return text if isinstance(exc, ProtocolError) else one_line(f"{type(exc).__name__}: {text}", REASON_LENGTH)


def _key(event: object) -> str | None:
    """The key an event is seen under: its ``journal_id`` (``None`` without one)."""
    journal_id = (getattr(event, "args", None) or {}).get("journal_id")
    return None if journal_id is None else str(journal_id)


def _entry_of(key: str) -> int | None:
    """The entry id in a ``journal_id`` (``12`` or ``"12.3"``: 12)."""
    try:
        return int(key.split(".", 1)[0])
    except ValueError:
        return None


class Journal:
    """SQLite journal of entries read from a service, with their delivery state.

    :param path: the database file.
    :param keep_posted: how many delivered entries to keep (older ones are pruned).
    :param grace: after a crash, if Platypush confirmed none of the crashed run's events,
        the entries delivered this many seconds before the last delivery are posted again.
    :param name: the name under which Platypush's main loop confirms the events
        it is done with (:func:`confirm`); ``""``: none are.
    :param keep_dropped: how many dropped entries to keep for :meth:`dropped`.
    """

    def __init__(self, path: str, keep_posted: int = 1000, grace: float = 5.0, name: str = "", keep_dropped: int = 100):
        self.path, self.keep_posted, self.grace, self.name = path, keep_posted, grace, name
        self.keep_dropped = keep_dropped
        self._lock = threading.Lock()
        self._unpruned = 0  # entries marked posted since the last prune
        self._open = False  # whether the file says "open" (a delivery since the last clean close)
        self._db = connect(path)
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.executescript(_INDEXES)
        self._adopt_legacy()
        self.recovered = self._recover()
        self._db.execute("INSERT OR REPLACE INTO state VALUES ('open', '0')")
        if name:
            _register(self)

    def _migrate(self) -> None:
        """Add the columns a journal file of an earlier version lacks."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE entries ADD COLUMN {column} {kind}")

    def _adopt_legacy(self) -> None:
        """Take over the pending messages of the Pushjet journal's first schema (table ``messages``)."""
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone():
            return
        with self._transaction() as db:
            db.execute(
                "INSERT INTO entries (source, payload, journaled_at) SELECT device, payload, fetched_at "
                "FROM messages WHERE posted_at IS NULL ORDER BY id"
            )
            db.execute("DROP TABLE messages")

    def _recover(self) -> int:
        """After a crash, mark pending again the deliveries whose events Platypush did not all see.

        The ``open`` state holds when the crashed run first delivered. If Platypush confirmed
        any event of that run, every delivery of the run it did not see is posted again;
        otherwise (no confirmation came, or a file of an older version), those of the last
        ``grace`` seconds before the last delivery.
        """
        row = self._db.execute("SELECT value FROM state WHERE key = 'open'").fetchone()
        if not row or row[0] == "0":
            return 0
        try:
            since: float | None = None if row[0] == "1" else float(row[0])
        except ValueError:
            since = None
        unseen = "dropped IS NULL AND (events IS NULL OR events > (SELECT COUNT(*) FROM seen WHERE entry = entries.id))"
        with self._transaction() as db:
            confirmed = (
                since is not None
                and db.execute(
                    "SELECT 1 FROM seen WHERE entry IN (SELECT id FROM entries WHERE posted_at >= ?) LIMIT 1", (since,)
                ).fetchone()
            )
            if confirmed:
                return db.execute(
                    f"UPDATE entries SET posted_at = NULL WHERE posted_at >= ? AND {unseen}", (since,)
                ).rowcount
            return db.execute(
                "UPDATE entries SET posted_at = NULL WHERE posted_at >= "
                f"(SELECT MAX(posted_at) FROM entries WHERE dropped IS NULL) - ? AND {unseen}",
                (self.grace,),
            ).rowcount

    @contextlib.contextmanager
    def _transaction(self, relaxed: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: committed, or rolled back whatever went wrong.

        :param relaxed: no fsync for this commit (it survives a crash of the process, not of the
            machine): for what, if lost, only causes a duplicate (a delivery mark, a prune).
        """
        with self._lock:
            if relaxed:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            finally:
                if relaxed:
                    self._db.execute("PRAGMA synchronous=FULL")

    def append(self, source: str, payloads: Sequence[JSON]) -> list[int]:
        """Durably record what was read, in one transaction.

        :param source: where it came from (e.g. the device).
        :param payloads: JSON-serialisable payloads, one entry each.
        :return: their ids.
        """
        now = time.time()
        with self._transaction() as db:
            return [
                int(
                    db.execute(
                        "INSERT INTO entries (source, payload, journaled_at) VALUES (?, ?, ?)",
                        (source, json.dumps(payload), now),
                    ).lastrowid
                    or 0
                )
                for payload in payloads
            ]

    def get(self, entry_id: int) -> Entry | None:
        """One entry by its id, delivered or not (``None`` when unknown or pruned).

        :param entry_id: the id :meth:`append` returned.
        """
        with self._lock:
            row = self._db.execute("SELECT id, source, payload FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return Entry(row[0], row[1], _decoded(row[2])) if row else None  # a dropped one: None (cut short)

    def pending(self, limit: int = 500) -> list[Entry]:
        """Entries not delivered yet, oldest first (one whose payload cannot be decoded: ``None``).

        :param limit: at most this many.
        """
        return [Entry(row[0], row[1], _decoded(row[2])) for row in self._pending_rows(limit)]

    def _pending_rows(self, limit: int = 500) -> list[tuple[int, str, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT id, source, payload FROM entries WHERE posted_at IS NULL ORDER BY id LIMIT ?", (limit,)
            ).fetchall()

    def mark_posted(self, ids: Sequence[int], delivered: bool = True) -> None:
        """Record that the entries' events were delivered (or, ``delivered=False``, that they
        were dealt with without a delivery).

        :param ids: the entries.
        :param delivered: ``False``: not counted as a delivery.
        """
        self._delivered([(i, None, 1 if delivered else 0) for i in ids])

    def _delivered(self, rows: Sequence[tuple[int, int | None, int]]) -> None:
        """Mark entries delivered: ``(id, how many events it has or None, deliveries to add)``."""
        if not rows:
            return
        now = time.time()
        with self._transaction(relaxed=True) as db:
            if not self._open:
                db.execute("INSERT OR REPLACE INTO state VALUES ('open', ?)", (repr(now),))  # the run's first delivery
            db.executemany(
                "UPDATE entries SET posted_at = ?, deliveries = deliveries + ?, events = COALESCE(?, events) "
                "WHERE id = ?",
                [(now, count, total, i) for i, total, count in rows],
            )
        self._open = True
        self._unpruned += len(rows)

    def _drop(self, rows: Sequence[tuple[int, str, str]], rejected: Sequence[tuple[int, str, Rejected]] = ()) -> None:
        """Mark entries dropped, ``(id, source, reason)``, and record refused elements of entries,
        ``(id, source, Rejected)``: each logged and counted once (an element refused again when its
        entry is posted again is not); dropped entries keep a prefix of their payload."""
        if not rows and not rejected:
            return
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "UPDATE entries SET posted_at = ?, dropped = ?, payload = substr(payload, 1, ?) WHERE id = ?",
                [(now, reason, EXCERPT_LENGTH, i) for i, _, reason in rows],
            )
            new = []
            for i, source, element in rejected:
                reason, excerpt = one_line(element.reason, REASON_LENGTH), one_line(element.excerpt, EXCERPT_LENGTH)
                if db.execute(
                    "INSERT OR IGNORE INTO rejected VALUES (?, ?, ?, ?, ?)", (i, element.element, reason, excerpt, now)
                ).rowcount:
                    new.append((i, source, element.element, reason))
            whole = [row for row in rows if not any(r[0] == row[0] for r in rejected)]  # counted by their elements
            db.execute("INSERT OR IGNORE INTO state VALUES ('dropped', '0')")
            db.execute(
                "UPDATE state SET value = CAST(value AS INTEGER) + ? WHERE key = 'dropped'", (len(whole) + len(new),)
            )
        name = self.name or "journal"
        for i, source, reason in whole:
            logger.warning(one_line(f"{name}: dropped entry {i} from {source}: {reason}"))
        for i, source, element_name, reason in new:
            logger.warning(one_line(f"{name}: dropped {element_name} of entry {i} from {source}: {reason}"))

    def mark_seen(self, keys: Iterable[str]) -> None:
        """Record that Platypush's main loop is done with these events (their ``journal_id``).

        :param keys: the events' ``journal_id`` (``12``, ``"12.3"``).
        """
        rows = [(entry, key) for key in keys if (entry := _entry_of(key)) is not None]
        if rows:
            with self._transaction(relaxed=True) as db:
                db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", rows)

    def try_mark_seen(self, key: str) -> bool:
        """:meth:`mark_seen` for one event, at once if nobody uses the journal now (never waits).

        :param key: the event's ``journal_id``.
        :return: whether it is recorded (``False``: the journal was busy or failed).
        """
        entry = _entry_of(key)
        if entry is None:
            return True
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (entry, key))
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
            return True
        except sqlite3.Error:
            return False
        finally:
            self._lock.release()

    def _seen(self, ids: Sequence[int]) -> set[str]:
        """The seen events of these entries."""
        if not ids:
            return set()
        with self._lock:
            marks = ",".join("?" * len(ids))
            return {row[0] for row in self._db.execute(f"SELECT event FROM seen WHERE entry IN ({marks})", ids)}

    def prune(self) -> None:
        """Forget the oldest delivered entries beyond ``keep_posted``, and dropped ones beyond ``keep_dropped``."""
        with self._transaction(relaxed=True) as db:
            self._unpruned = 0
            for dropped, keep in (("IS NULL", self.keep_posted), ("IS NOT NULL", self.keep_dropped)):
                db.execute(
                    f"DELETE FROM entries WHERE posted_at IS NOT NULL AND dropped {dropped} AND id <= (SELECT id "
                    f"FROM entries WHERE posted_at IS NOT NULL AND dropped {dropped} ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (keep,),
                )
            db.execute("DELETE FROM seen WHERE entry NOT IN (SELECT id FROM entries)")
            db.execute(
                "DELETE FROM rejected WHERE at < (SELECT at FROM rejected ORDER BY at DESC LIMIT 1 OFFSET ?)",
                (self.keep_dropped,),
            )

    def counts(self) -> dict[str, int]:
        """``{"pending": n, "posted": m, "dropped": k, "duplicates": d}``: ``posted`` and ``duplicates``
        among the kept entries; ``dropped``: every entry this journal ever dropped."""
        with self._lock:
            pending, total, kept_dropped, duplicates = self._db.execute(
                "SELECT SUM(posted_at IS NULL), COUNT(*), SUM(dropped IS NOT NULL), SUM(MAX(deliveries - 1, 0)) "
                "FROM entries"
            ).fetchone()
            dropped = self._db.execute("SELECT value FROM state WHERE key = 'dropped'").fetchone()
        return {
            "pending": int(pending or 0),
            "posted": int(total or 0) - int(pending or 0) - int(kept_dropped or 0),
            "dropped": int(dropped[0]) if dropped else 0,
            "duplicates": int(duplicates or 0),
        }

    def dropped(self, limit: int = 20) -> list[dict[str, Column]]:
        """The most recent dropped entries and refused elements, newest first: ``{"id", "element",
        "source", "reason", "journaled_at", "payload"}`` (``element``: ``None`` for a whole entry, else
        where it is in the entry, e.g. ``notifications[2]``; ``payload``: the start of its JSON text).

        :param limit: at most this many.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, NULL, source, dropped, journaled_at, payload FROM entries "
                "WHERE dropped IS NOT NULL AND id NOT IN (SELECT entry FROM rejected) "
                "UNION ALL SELECT r.entry, r.element, COALESCE(e.source, ''), r.reason, COALESCE(e.journaled_at, r.at), "
                "r.excerpt FROM rejected r LEFT JOIN entries e ON e.id = r.entry "
                "ORDER BY 1 DESC, 2 DESC LIMIT ?",
                (max(0, int(limit)),),
            ).fetchall()
        keys = ("id", "element", "source", "reason", "journaled_at", "payload")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def drops(self, recent: int = 5) -> Drops:
        """What a plugin's ``status`` shows of what was dropped: ``{"dropped": <count, all time>,
        "recent_drops": [{"id", "element", "source", "reason"}, …]}`` (the newest ``recent``).

        :param recent: how many of the newest to list.
        """
        listed = [{k: row[k] for k in ("id", "element", "source", "reason")} for row in self.dropped(recent)]
        return {"dropped": self.counts()["dropped"], "recent_drops": listed}

    def post_pending(
        self,
        publisher: Publisher,
        build: Callable[[Entry], Sequence[object]],
        stop: threading.Event,
        timeout: float = 10.0,
    ) -> int:
        """Post the events of pending entries, oldest first, until none is left.

        Each entry is built on its own: one whose ``build`` raises or returns ``[]``
        (or only :class:`Rejected` elements) is dropped; refused elements beside events are
        recorded, and the events delivered. When a post reached nobody, waits (at most ``timeout`` seconds in
        all) for a subscriber and posts again; what is still undelivered stays pending.

        :param publisher: where to post.
        :param build: an entry's events (and a :class:`Rejected` for each element that cannot be one).
        :param stop: set when the caller must give up.
        :param timeout: the most seconds spent waiting for a subscriber.
        :return: how many entries were delivered.
        """
        delivered, deadline = 0, time.monotonic() + timeout
        while not stop.is_set():
            rows = self._pending_rows()
            if not rows:
                break
            done, usable = self._post(publisher, build, rows)
            delivered += done
            if done < usable and (
                time.monotonic() >= deadline or not publisher.wait_listening(stop, deadline - time.monotonic())
            ):
                break
        if self._unpruned > self.keep_posted // 10:
            self.prune()
        return delivered

    def _post(
        self, publisher: Publisher, build: Callable[[Entry], Sequence[object]], rows: list[tuple[int, str, str]]
    ) -> tuple[int, int]:
        """Build each entry, drop those that cannot be, publish the others' events not seen yet; marks
        (and counts) those whose every event reached someone. Returns (delivered, entries with events)."""
        seen = self._seen([row[0] for row in rows])
        ready: list[_Ready] = []
        dropped: list[tuple[int, str, str]] = []
        rejected: list[tuple[int, str, Rejected]] = []
        for row in rows:
            outcome = _prepare(build, row, seen)
            if isinstance(outcome, str):
                dropped.append((row[0], row[1], outcome))
                continue
            rejected += [(row[0], row[1], r) for r in outcome.rejected]
            if outcome.total:
                ready.append(outcome)
            else:  # every element refused
                dropped.append((row[0], row[1], "; ".join(r.reason for r in outcome.rejected[:3])[:REASON_LENGTH]))
        self._drop(dropped, rejected)
        events, texts = [e for r in ready for e in r.events], [t for r in ready for t in r.texts]
        counts = iter(publisher.publish(events, texts, mark=True))
        ok = [r for r in ready if min([next(counts) for _ in r.events] or [1]) >= 1]
        self._delivered([(r.id, r.total, 1 if r.events else 0) for r in ok])
        return len(ok), len(ready)

    def close(self) -> None:
        """Close the journal, recording a clean stop (no crash recovery at the next open)."""
        _unregister(self)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO state VALUES ('open', '0')")
            self._db.close()


def _decoded(payload: str) -> JSON:
    """A payload's JSON, ``None`` if it cannot be decoded."""
    try:
        return json.loads(payload)
    except Exception:  # noqa: BLE001 - e.g. RecursionError: the build drops the entry
        return None


def _prepare(build: Callable[[Entry], Sequence[object]], row: tuple[int, str, str], seen: set[str]) -> _Ready | str:
    """An entry's events not seen yet, with their texts, and its refused elements; or why it is
    dropped (whatever failed)."""
    entry_id, source, payload = row
    try:
        made = build(Entry(entry_id, source, json.loads(payload)))
        rejected = [item for item in made if isinstance(item, Rejected)]
        events = [item for item in made if not isinstance(item, Rejected)]
        if not events and not rejected:
            return "no event could be made of it"
        todo = [event for event in events if _key(event) not in seen]
        return _Ready(entry_id, len(events), todo, [str(event) for event in todo], rejected)
    except Exception as exc:  # noqa: BLE001 - whatever it is, it stops this entry only
        return _describe(exc)


# -- what Platypush's main loop is done with ---------------------------------------------------------------

_journals: dict[str, Journal] = {}  # the open journals, by name
_confirmed: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()  # (journal name, journal_id) to record
_writer_lock = threading.Lock()
_writer: list[threading.Thread] = []


def confirm(name: str, journal_id: object) -> None:
    """Note that Platypush's main loop is done with an event of the journal ``name``: recorded
    at once if the journal is free, else soon by a thread of this module. Called from a
    finaliser: never waits for a lock, never raises.

    :param name: the journal's name (``pushjet``, ``mbed``).
    :param journal_id: the event's ``journal_id``.
    """
    journal, key = _journals.get(name), str(journal_id)
    try:
        if journal is not None and journal.try_mark_seen(key):
            return
    except Exception:  # noqa: BLE001 - e.g. closed meanwhile: the writer thread says so
        pass
    _confirmed.put((name, key))


def _register(journal: Journal) -> None:
    _journals[journal.name] = journal
    with _writer_lock:
        if not _writer:
            _writer.append(threading.Thread(target=_write_confirmations, name="journal-seen", daemon=True))
            _writer[0].start()


def _unregister(journal: Journal) -> None:
    if _journals.get(journal.name) is journal:
        del _journals[journal.name]


def _write_confirmations(batch: int = 1000) -> None:
    """Record the confirmed events, a batch at a time (a mark lost in a crash only causes a duplicate)."""
    while True:
        items = [_confirmed.get()]
        with contextlib.suppress(queue.Empty):
            while len(items) < batch:
                items.append(_confirmed.get_nowait())
        keys: dict[str, list[str]] = defaultdict(list)
        for name, key in items:
            keys[name].append(key)
        for name, journal_keys in keys.items():
            journal = _journals.get(name)
            if journal is None:
                continue  # closed (a clean stop: nothing is posted again anyway)
            try:
                journal.mark_seen(journal_keys)
            except Exception as exc:  # noqa: BLE001 - e.g. closed meanwhile; the writer goes on
                logger.warning(one_line(f"{name}: {len(journal_keys)} events not marked seen: {exc}"))


class LazyJournal:
    """A plugin's :class:`Journal`: opened at first use, by whichever thread (an action
    or the listener) comes first, and closed on a clean stop. Used again after that (a
    late message of a channel still stopping, a status), it opens again; the file records
    a crash only if something was delivered since the clean close.

    :param path: the database file.
    :param options: the journal's other arguments (``keep_posted``, ``grace``, ``name``).
    """

    def __init__(self, path: str, **options: Unpack[NamedJournalOptions]):
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
