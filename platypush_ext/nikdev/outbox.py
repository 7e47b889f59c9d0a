"""The NikDev outbox: committed entries are stored durably, then pushed in batches.

Rules (what :class:`Outbox` guarantees):

* **Durable commit.** :meth:`Outbox.commit` returns only after the entry is in
  SQLite (WAL, ``synchronous=FULL``): a crash of the process — or of the machine —
  after it returned cannot lose the entry.
* **Pushed in order, in batches** of at most ``batch_entries`` entries and
  ``batch_bytes`` bytes, oldest first. An entry leaves the outbox only after
  the server answered 2xx for its batch: delivery is **at-least-once**. A crash
  between the server's answer and the local delete sends the batch again; the
  re-sent entries are identical (same timestamp, same values), so duplicates
  are detectable.
* **Transient failures** (5xx, 429, timeouts, connection errors) keep the
  entries pending; :meth:`flush` stops and reports the error, and the caller
  retries later with backoff (the plugin's flusher does).
* **Rejections** (4xx) move the entries to the *dead-letter* table with the
  server's reason: never silently dropped, never retried automatically.
  A batch rejected with 400-like statuses is split in halves until the
  rejected entries are isolated, so one bad entry does not take its batch
  down; with 401/403 (credentials) the whole batch is dead-lettered.
  :meth:`retry_dead` puts dead letters back in the queue, :meth:`purge_dead`
  deletes them.
* **Bounded**: pending and dead entries together are limited to
  ``max_entries`` rows and ``max_bytes`` bytes of serialised entries. When a
  commit would exceed a limit, the ``when_full`` policy applies:

  - ``"reject"`` (default): the commit fails with :class:`OutboxFullError`;
    nothing stored is touched (the caller keeps its values and can retry).
  - ``"drop_oldest"``: the oldest dead letters, then the oldest pending
    entries, are deleted to make room; the number is counted
    (``dropped_entries``) and returned, and logged by the plugin.

  Crossing ``warn_ratio`` of either limit is reported once (``nearly_full``)
  and re-armed when usage falls below ``warn_ratio - 0.1``.

One process at a time should use an outbox file (counters are kept in memory);
threads of that process may share it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..core.errors import HTTPStatusError, InvalidArgumentError, ServiceError
from ..core.storage import connect
from ..core.untrusted import JSONObject
from .client import Entry, NikdevClient

WHEN_FULL = ("reject", "drop_oldest")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp    INTEGER NOT NULL,   -- the entry's commit time (client clock), sent as is
    committed_at REAL    NOT NULL,
    payload      TEXT    NOT NULL,   -- the entry as sent: {"timestamp": t, "values": [...]}
    value_count  INTEGER NOT NULL,
    added_at     TEXT    NOT NULL,   -- JSON list: when each value was added
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE TABLE IF NOT EXISTS dead (
    id           INTEGER PRIMARY KEY,
    timestamp    INTEGER NOT NULL,
    committed_at REAL    NOT NULL,
    payload      TEXT    NOT NULL,
    value_count  INTEGER NOT NULL,
    added_at     TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    status       INTEGER,
    dead_at      REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COLUMNS = "id, timestamp, committed_at, payload, value_count, added_at, attempts"
#: A row of :data:`_COLUMNS`.
_Row = tuple[int, int, float, str, int, str, int]


class OutboxFullError(ServiceError):
    """The outbox reached a limit and its policy is ``reject``."""


@dataclass
class Committed:
    """What :meth:`Outbox.commit` did."""

    entry_id: int
    timestamp: int
    values: int
    pending: int
    dropped: int = 0
    nearly_full: bool = False


@dataclass
class DeadBatch:
    """Entries moved to the dead letters by one rejection."""

    entries: int
    values: int
    reason: str
    status: int | None


@dataclass
class FlushResult:
    """What :meth:`Outbox.flush` did."""

    pushed_entries: int = 0
    pushed_values: int = 0
    batches: int = 0
    dead: list[DeadBatch] = field(default_factory=list)
    error: ServiceError | None = None
    pending: int = 0

    @property
    def dead_entries(self) -> int:
        return sum(d.entries for d in self.dead)


class Outbox:
    """SQLite outbox of committed NikDev entries.

    :param path: the database file (created with its folder).
    :param max_entries: at most this many entries, pending and dead (default 100,000).
    :param max_bytes: at most this many bytes of serialised entries (default 64 MiB).
    :param when_full: ``"reject"`` or ``"drop_oldest"`` (see the module's documentation).
    :param warn_ratio: usage ratio reported once as ``nearly_full`` (default 0.8).
    :param batch_entries: at most this many entries per request (default 500).
    :param batch_bytes: at most this many bytes of entries per request (default 256 KiB).
    """

    def __init__(
        self,
        path: str,
        *,
        max_entries: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        when_full: str = "reject",
        warn_ratio: float = 0.8,
        batch_entries: int = 500,
        batch_bytes: int = 256 * 1024,
    ):
        for name, number in (
            ("max_entries", max_entries),
            ("max_bytes", max_bytes),
            ("batch_entries", batch_entries),
            ("batch_bytes", batch_bytes),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {number!r}")
        if when_full not in WHEN_FULL:
            raise InvalidArgumentError(f"when_full must be one of {', '.join(WHEN_FULL)}, got {when_full!r}")
        if not 0 < float(warn_ratio) <= 1:
            raise InvalidArgumentError(f"warn_ratio must be in (0, 1], got {warn_ratio!r}")
        self.path = path
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.when_full, self.warn_ratio = when_full, float(warn_ratio)
        self.batch_entries, self.batch_bytes = batch_entries, batch_bytes
        self._db = connect(path)
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()  # the connection and the counters
        self._push_lock = threading.Lock()  # one flush at a time: a batch is never in flight twice
        self._warned = False
        ((self._pending, self._pending_bytes),) = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM pending"
        ).fetchall()
        ((self._dead, self._dead_bytes),) = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM dead"
        ).fetchall()

    # -- helpers -------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _bump(self, name: str, by: int) -> None:
        if by:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    def _usage(self) -> float:
        entries = self._pending + self._dead
        size = self._pending_bytes + self._dead_bytes
        return max(entries / self.max_entries, size / self.max_bytes)

    def _check_warning(self) -> bool:
        """Whether usage just crossed ``warn_ratio`` (once; re-armed below ``warn_ratio - 0.1``)."""
        usage = self._usage()
        if usage >= self.warn_ratio and not self._warned:
            self._warned = True
            return True
        if usage < self.warn_ratio - 0.1:
            self._warned = False
        return False

    # -- commit --------------------------------------------------------------

    def commit(self, entry: Entry, added_at: Sequence[float] | None = None) -> Committed:
        """Store ``entry`` durably; returns when it is on disk.

        :param added_at: when each value was added (Unix time; default: now).
        :raises OutboxFullError: the outbox is full and its policy is ``reject``.
        """
        return self.commit_many([entry], [added_at] if added_at is not None else None)[-1]

    def commit_many(
        self, entries: Sequence[Entry], added_at: Sequence[Sequence[float]] | None = None
    ) -> list[Committed]:
        """Store several entries durably in one transaction (all or none)."""
        if not entries:
            raise InvalidArgumentError("nothing to commit")
        now = time.time()
        rows = []
        for index, entry in enumerate(entries):
            stamps = list(added_at[index]) if added_at is not None else [now] * len(entry.values)
            rows.append((entry.timestamp, now, entry.to_json(), len(entry.values), json.dumps(stamps)))
        size = sum(len(r[2]) for r in rows)
        with self._lock:
            dropped = self._make_room(len(rows), size)
            with self._transaction():
                ids = [
                    self._db.execute(
                        "INSERT INTO pending (timestamp, committed_at, payload, value_count, added_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        row,
                    ).lastrowid
                    for row in rows
                ]
                if dropped:
                    self._drop(dropped)
            self._pending += len(rows)
            self._pending_bytes += size
            warn = self._check_warning()
            pending = self._pending
        return [
            Committed(
                int(i or 0),
                e.timestamp,
                len(e.values),
                pending,
                dropped=sum(dropped.values()) if dropped else 0,
                nearly_full=warn,
            )
            for i, e in zip(ids, entries, strict=True)
        ]

    def _make_room(self, count: int, size: int) -> dict[str, int]:
        """Check the limits for ``count`` more entries of ``size`` bytes; returns what to drop per table."""
        if count > self.max_entries or size > self.max_bytes:
            raise OutboxFullError(
                f"nikdev outbox: {count} entries of {size} bytes exceed the outbox's limits "
                f"({self.max_entries} entries, {self.max_bytes} bytes)"
            )
        excess_entries = self._pending + self._dead + count - self.max_entries
        excess_bytes = self._pending_bytes + self._dead_bytes + size - self.max_bytes
        if excess_entries <= 0 and excess_bytes <= 0:
            return {}
        if self.when_full == "reject":
            raise OutboxFullError(
                f"nikdev outbox is full ({self._pending} pending and {self._dead} dead entries, "
                f"{self._pending_bytes + self._dead_bytes} of {self.max_bytes} bytes, at most {self.max_entries} "
                "entries): nothing was committed; push, purge dead letters (nikdev.purge_dead) or raise the limits"
            )
        plan: dict[str, int] = {}
        for table in ("dead", "pending"):
            if excess_entries <= 0 and excess_bytes <= 0:
                break
            for (length,) in self._db.execute(f"SELECT LENGTH(payload) FROM {table} ORDER BY id"):
                if excess_entries <= 0 and excess_bytes <= 0:
                    break
                plan[table] = plan.get(table, 0) + 1
                excess_entries -= 1
                excess_bytes -= length
        return plan

    def _drop(self, plan: Mapping[str, int]) -> None:
        """Delete the oldest rows of each table as planned (inside a transaction)."""
        for table, count in plan.items():
            (size,) = self._db.execute(
                f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM (SELECT payload FROM {table} ORDER BY id LIMIT ?)",
                (count,),
            ).fetchone()
            self._db.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT ?)", (count,))
            if table == "pending":
                self._pending -= count
                self._pending_bytes -= size
            else:
                self._dead -= count
                self._dead_bytes -= size
            self._bump("dropped_entries", count)

    # -- push ----------------------------------------------------------------

    def _next_batch(self, after_id: int) -> list[tuple[int, str, int]]:
        """The oldest pending entries after ``after_id`` within the batch limits: ``(id, payload, value_count)``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, payload, value_count FROM pending WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, self.batch_entries),
            ).fetchall()
        batch: list[tuple[int, str, int]] = []
        size = 0
        for row in rows:
            if batch and size + len(row[1]) + 1 > self.batch_bytes:
                break
            batch.append(row)
            size += len(row[1]) + 1
        return batch

    def flush(
        self, client: NikdevClient, *, deadline: float | None = None, max_batches: int | None = None
    ) -> FlushResult:
        """Push pending entries, oldest first, batch by batch.

        Stops at the first transient failure (reported in ``error``; the
        entries stay pending), after a batch refused with 401/403 (a refused
        key: the later batches stay pending), when nothing is left, at ``deadline``
        (``time.monotonic()`` value) or after ``max_batches`` batches.
        Rejected entries go to the dead letters (listed in ``dead``).
        """
        result = FlushResult()
        with self._push_lock:
            last_id = 0
            while max_batches is None or result.batches < max_batches:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                batch = self._next_batch(last_id)
                if not batch:
                    break
                last_id = batch[-1][0]
                error = self._send(client, batch, result, deadline)
                if error is not None:
                    result.error = error
                    break
                if result.dead and result.dead[-1].status in (401, 403):
                    break  # a refused key refuses the next batches too: they stay pending
        result.pending = self._pending
        return result

    def _send(
        self,
        client: NikdevClient,
        batch: list[tuple[int, str, int]],
        result: FlushResult,
        deadline: float | None = None,
    ) -> ServiceError | None:
        """Send one batch; returns a transient error, or ``None`` when every entry was pushed, dead-lettered,
        or left pending because ``deadline`` passed while a rejected batch was being split."""
        ids = [row[0] for row in batch]
        try:
            result.batches += 1
            client.push_serialized([row[1] for row in batch])
        except HTTPStatusError as exc:
            if exc.transient or exc.status is None or not 400 <= exc.status < 500:
                self._record_failure(ids, exc)
                return exc
            if len(batch) > 1 and exc.status not in (401, 403):
                middle = len(batch) // 2  # isolate the rejected entries
                for half in (batch[:middle], batch[middle:]):
                    if deadline is not None and time.monotonic() >= deadline:
                        return None  # the rest stays pending for the next flush (a batch of 500 is ~1000 requests)
                    error = self._send(client, half, result, deadline)
                    if error is not None:
                        return error
                return None
            reason = exc.server_message or str(exc)
            self._move_to_dead(ids, reason, exc.status)
            result.dead.append(DeadBatch(len(ids), sum(row[2] for row in batch), reason, exc.status))
            return None
        except ServiceError as exc:
            self._record_failure(ids, exc)
            return exc
        with self._lock:
            with self._transaction():
                count, size = self._delete(ids)
                self._bump("pushed_entries", len(ids))
                self._bump("pushed_values", sum(row[2] for row in batch))
                self._bump("pushed_batches", 1)
            self._pending -= count
            self._pending_bytes -= size
            self._check_warning()
        result.pushed_entries += len(ids)
        result.pushed_values += sum(row[2] for row in batch)
        return None

    def _delete(self, ids: Sequence[int]) -> tuple[int, int]:
        """Delete pending rows; returns how many existed and their size (some may have been dropped)."""
        marks = ",".join("?" * len(ids))
        (count, size) = self._db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM pending WHERE id IN ({marks})", ids
        ).fetchone()
        self._db.execute(f"DELETE FROM pending WHERE id IN ({marks})", ids)
        return int(count), int(size)

    def _record_failure(self, ids: Sequence[int], error: ServiceError) -> None:
        marks = ",".join("?" * len(ids))
        with self._lock, self._transaction():
            self._db.execute(
                f"UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE id IN ({marks})",
                (str(error)[:500], *ids),
            )

    def _move_to_dead(self, ids: Sequence[int], reason: str, status: int | None) -> None:
        marks = ",".join("?" * len(ids))
        now = time.time()
        with self._lock:
            with self._transaction():
                (count, size) = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM pending WHERE id IN ({marks})", ids
                ).fetchone()
                self._db.execute(
                    f"INSERT INTO dead ({_COLUMNS}, reason, status, dead_at) SELECT {_COLUMNS}, ?, ?, ? "
                    f"FROM pending WHERE id IN ({marks})",
                    (reason[:1000], status, now, *ids),
                )
                self._db.execute(f"DELETE FROM pending WHERE id IN ({marks})", ids)
                self._bump("dead_lettered_entries", count)
            self._pending -= count
            self._pending_bytes -= size
            self._dead += count
            self._dead_bytes += size

    # -- inspection and maintenance -------------------------------------------

    def counters(self) -> dict[str, int]:
        """Totals since the outbox was created (pushed, dead-lettered, dropped)."""
        with self._lock:
            found = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        names = ("pushed_entries", "pushed_values", "pushed_batches", "dead_lettered_entries", "dropped_entries")
        return {name: int(found.get(name, 0)) for name in names}

    def status(self) -> JSONObject:
        """Counts, sizes, limits and the age of the oldest pending entry."""
        with self._lock:
            oldest, values, last_error = self._db.execute(
                "SELECT MIN(committed_at), COALESCE(SUM(value_count), 0), "
                "(SELECT last_error FROM pending WHERE last_error IS NOT NULL ORDER BY id LIMIT 1) FROM pending"
            ).fetchone()
            status = {
                "pending": self._pending,
                "pending_values": int(values),
                "pending_bytes": self._pending_bytes,
                "dead": self._dead,
                "dead_bytes": self._dead_bytes,
                "oldest_pending_age": round(time.time() - oldest, 3) if oldest is not None else None,
                "last_error": last_error,
                "max_entries": self.max_entries,
                "max_bytes": self.max_bytes,
                "when_full": self.when_full,
                "usage": round(self._usage(), 4),
            }
        status.update(self.counters())
        return status

    def entry_state(self, entry_id: int) -> JSONObject:
        """Where entry ``entry_id`` is: ``{"state": "pending"}``, ``{"state": "dead", "reason": …,
        "status": …}``, or ``{"state": "pushed"}`` once it left the outbox (ids are never reused)."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM pending WHERE id = ?", (entry_id,)).fetchone():
                return {"state": "pending"}
            row = self._db.execute("SELECT reason, status FROM dead WHERE id = ?", (entry_id,)).fetchone()
        return {"state": "dead", "reason": row[0], "status": row[1]} if row else {"state": "pushed"}

    def pending_count(self) -> int:
        with self._lock:
            return self._pending

    def pending_entries(self, limit: int = 100) -> list[JSONObject]:
        """The oldest pending entries (for inspection)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, last_error FROM pending ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [_row_dict(row[:7]) | {"last_error": row[7]} for row in rows]

    def dead_letters(self, limit: int = 100) -> list[JSONObject]:
        """The oldest dead letters with the server's reason."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, reason, status, dead_at FROM dead ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [_row_dict(row[:7]) | {"reason": row[7], "status": row[8], "dead_at": row[9]} for row in rows]

    def _select_dead(self, ids: Iterable[int] | None) -> tuple[str, list[int]]:
        if ids is None:
            return "", []
        checked = []
        for entry_id in ids:
            if isinstance(entry_id, bool) or not isinstance(entry_id, int):
                raise InvalidArgumentError(f"dead letter ids must be integers, got {entry_id!r}")
            checked.append(entry_id)
        if not checked:
            raise InvalidArgumentError("give at least one dead letter id, or none to select them all")
        return f" WHERE id IN ({','.join('?' * len(checked))})", checked

    def retry_dead(self, ids: Iterable[int] | None = None) -> int:
        """Queue dead letters (all, or those ``ids``) for pushing again; returns how many."""
        where, args = self._select_dead(ids)
        with self._lock:
            with self._transaction():
                count, size = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM dead{where}", args
                ).fetchone()
                self._db.execute(f"INSERT INTO pending ({_COLUMNS}) SELECT {_COLUMNS} FROM dead{where}", args)
                self._db.execute(f"DELETE FROM dead{where}", args)
            self._pending += count
            self._pending_bytes += size
            self._dead -= count
            self._dead_bytes -= size
        return int(count)

    def purge_dead(self, ids: Iterable[int] | None = None) -> int:
        """Delete dead letters (all, or those ``ids``) for good; returns how many."""
        where, args = self._select_dead(ids)
        with self._lock:
            with self._transaction():
                count, size = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM dead{where}", args
                ).fetchone()
                self._db.execute(f"DELETE FROM dead{where}", args)
                self._bump("purged_entries", count)
            self._dead -= count
            self._dead_bytes -= size
            self._check_warning()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row_dict(row: _Row) -> JSONObject:
    entry_id, timestamp, committed_at, payload, _count, added_at, attempts = row
    values = json.loads(payload)["values"]
    return {
        "entry_id": entry_id,
        "timestamp": timestamp,
        "committed_at": committed_at,
        "values": {f: v for item in values for f, v in item.items()},
        "added_at": json.loads(added_at),
        "attempts": attempts,
    }


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
