"""Local SQLite storage shared by the journals and outboxes of the plugins."""

from __future__ import annotations

import os
import sqlite3


def connect(path: str) -> sqlite3.Connection:
    """Open (creating it and its folder) an SQLite database for durable local state.

    WAL mode with ``synchronous=FULL``: a committed transaction survives a crash
    of the process or of the machine. The connection may be shared by threads;
    callers serialise their use of it.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=30000")
    return db
