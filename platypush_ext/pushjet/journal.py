"""The Pushjet message journal: fetched messages are written here before anything
else happens to them, so that a destructive ``GET /message`` never loses one.

A message is *pending* from the moment it is journaled until its event has been
posted; pending messages are posted again after a crash (at-least-once
delivery). Each message keeps its journal id, which events carry so that a
duplicate can be recognised.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterable

from ..storage import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device     TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    fetched_at REAL    NOT NULL,
    posted_at  REAL
);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (posted_at) WHERE posted_at IS NULL;
"""


class MessageJournal:
    """SQLite journal of fetched messages.

    :param path: the database file.
    :param keep_posted: how many posted messages to keep (oldest pruned).
    """

    def __init__(self, path: str, keep_posted: int = 1000):
        self.path = path
        self.keep_posted = keep_posted
        self._db = connect(path)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def append(self, device: str, payloads: Iterable[dict[str, Any]]) -> list[int]:
        """Durably record fetched message payloads; returns their journal ids."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = [
                    self._db.execute(
                        "INSERT INTO messages (device, payload, fetched_at) VALUES (?, ?, ?)",
                        (device, json.dumps(payload), now),
                    ).lastrowid
                    for payload in payloads
                ]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [int(i) for i in ids if i is not None]

    def pending(self, limit: int = 500) -> list[tuple[int, str, dict[str, Any]]]:
        """Journaled messages whose event has not been posted, oldest first:
        ``(journal id, device, payload)``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, device, payload FROM messages WHERE posted_at IS NULL ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(row[0], row[1], json.loads(row[2])) for row in rows]

    def mark_posted(self, journal_id: int) -> None:
        """Record that the message's event was posted."""
        with self._lock:
            self._db.execute("UPDATE messages SET posted_at = ? WHERE id = ?", (time.time(), journal_id))

    def prune(self) -> None:
        """Forget the oldest posted messages beyond ``keep_posted``."""
        with self._lock:
            self._db.execute(
                "DELETE FROM messages WHERE posted_at IS NOT NULL AND id NOT IN "
                "(SELECT id FROM messages WHERE posted_at IS NOT NULL ORDER BY id DESC LIMIT ?)",
                (self.keep_posted,),
            )

    def counts(self) -> dict[str, int]:
        """``{"pending": n, "posted": m}``."""
        with self._lock:
            pending, total = self._db.execute(
                "SELECT SUM(posted_at IS NULL), COUNT(*) FROM messages"
            ).fetchone()
        return {"pending": int(pending or 0), "posted": int(total or 0) - int(pending or 0)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
