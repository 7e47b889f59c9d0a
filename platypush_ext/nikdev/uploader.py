"""The original ``nikdev_iot`` model — ``add_value``, ``commit``, ``push`` — over a durable outbox.

Framework-free::

    uploader = Uploader(NikdevClient(base_url, device_id, api_key), Outbox("/var/lib/app/nikdev.db"))
    uploader.add_value("temp", 21.5)
    uploader.add_value("hum", 40)
    uploader.commit()              # durable when it returns
    result = uploader.push()       # batches; result.error / result.dead tell what failed

Values added but not committed are kept in memory (as the original library
does by default until its exit hook); :meth:`Uploader.commit` is the point
from which nothing is lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from ..core.errors import InvalidArgumentError
from ..core.untrusted import JSON
from .client import Entry, NikdevClient, Scalar, Value, check_field, check_value
from .outbox import Committed, FlushResult, Outbox


def describe_failure(result: FlushResult) -> str | None:
    """A readable account of what went wrong in a push (``None`` if nothing did)."""
    parts = []
    if result.dead:
        reasons = "; ".join(sorted({f"HTTP {d.status}: {d.reason}" for d in result.dead}))
        parts.append(
            f"the server rejected {result.dead_entries} entries ({reasons}); they were moved to the dead letters "
            "(see nikdev.status / nikdev.get_dead_letters, fix the cause, then nikdev.retry_dead)"
        )
    if result.error is not None:
        parts.append(
            f"push failed: {result.error}; the {result.pending} pending entries are kept in the outbox "
            "and retried with backoff"
        )
    return " — ".join(parts) if parts else None


class Uploader:
    """Stage values, commit them durably as entries, push them in batches.

    :param client: the NikDev client.
    :param outbox: the durable outbox.
    :param push_time_limit: :meth:`push` stops starting new batches after this
        many seconds (the rest stays queued), so that a Platypush action
        answers well within its 60 s limit.
    """

    def __init__(self, client: NikdevClient, outbox: Outbox, push_time_limit: float = 20.0):
        self.client = client
        self.outbox = outbox
        self.push_time_limit = push_time_limit
        self._staged: dict[str, tuple[Scalar, float]] = {}
        self._lock = threading.Lock()

    def add_value(self, field: str, value: JSON) -> int:
        """Stage a value for the next commit (a later value of the same field replaces it).

        :return: how many fields are staged.
        """
        field = check_field(field)
        value = check_value(field, value)
        with self._lock:
            self._staged.pop(field, None)  # keep the order of the latest additions
            self._staged[field] = (value, time.time())
            return len(self._staged)

    def staged(self) -> dict[str, Scalar]:
        """The values staged for the next commit."""
        with self._lock:
            return {f: v for f, (v, _) in self._staged.items()}

    def discard_staged(self) -> int:
        """Forget the staged values; returns how many there were."""
        with self._lock:
            count = len(self._staged)
            self._staged.clear()
            return count

    def commit(self, values: Mapping[str, JSON] | None = None) -> Committed:
        """Commit the staged values (plus ``values``, added first) as one entry, durably.

        The staged values are cleared only once the entry is on disk; if the
        commit fails (e.g. the outbox is full) they stay staged.
        """
        if values is not None and not isinstance(values, Mapping):
            raise InvalidArgumentError(f"values must be a mapping of field ids to values, got {values!r}")
        for field, value in (values or {}).items():
            self.add_value(field, value)
        with self._lock:
            if not self._staged:
                raise InvalidArgumentError("nothing to commit: add values first (add_value)")
            staged = list(self._staged.items())
            entry = Entry.build([(f, v) for f, (v, _) in staged])
            committed = self.outbox.commit(entry, [added for _, (_, added) in staged])
            self._staged.clear()
        return committed

    def push(self, time_limit: float | None = None) -> FlushResult:
        """Push pending entries (see :meth:`Outbox.flush`); never raises for service failures."""
        limit = self.push_time_limit if time_limit is None else time_limit
        return self.outbox.flush(self.client, deadline=time.monotonic() + limit)

    def commit_and_push(self, values: Mapping[str, JSON] | None = None) -> tuple[Committed, FlushResult]:
        """:meth:`commit`, then :meth:`push`."""
        committed = self.commit(values)
        return committed, self.push()

    def get_values(self, fields: Sequence[str] | str) -> list[Value]:
        """The latest value of each field on the server."""
        return self.client.get_values(fields)

    def close(self) -> None:
        self.client.close()
        self.outbox.close()
