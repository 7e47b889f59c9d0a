"""The ``nikdev`` Platypush plugin: thin glue over :class:`~platypush_ext.nikdev.uploader.Uploader`."""

from __future__ import annotations

import time

from platypush.entities.managers.sensors import SensorEntityManager

from platypush.plugins import RunnablePlugin

from ..core.errors import InvalidArgumentError
from ..core.listening import AuthBackoff, Backoff, Listener
from ..core.untrusted import JSON, JSONObject
from ..glue.actions import action
from ..glue.health import HealthManager
from ..glue.plugin import ServicePlugin, state_path
from .client import NikdevAuthError, NikdevClient, NikdevError
from .events import (
    NikdevAuthFailedEvent,
    NikdevConnectedEvent,
    NikdevDeadLetteredEvent,
    NikdevDisconnectedEvent,
    NikdevEntriesPushedEvent,
    NikdevOutboxNearlyFullEvent,
    NikdevPushFailedEvent,
)
from .health import outbox_entities
from .outbox import Committed, FlushResult, Outbox
from .uploader import Uploader, describe_failure


class NikdevPushError(NikdevError):
    """A push did not deliver everything (the text says where the entries are)."""


def _check_push_time_limit(push_time_limit: JSON) -> None:
    """``push_time_limit``: seconds in (0, 50] (the action answers within Platypush's 60 s)."""
    if (
        isinstance(push_time_limit, bool)
        or not isinstance(push_time_limit, (int, float))
        or not 0 < push_time_limit <= 50
    ):
        # 0 made every push stop before its first batch, and the flusher re-run it every 0.1 s forever
        raise InvalidArgumentError(
            f"nikdev.push_time_limit must be a number of seconds in (0, 50], got {push_time_limit!r}"
        )


class NikdevPlugin(HealthManager, ServicePlugin, RunnablePlugin, SensorEntityManager):
    """
    Record sensor values to a `NikDev IoT <https://iot.nik-dev.se>`_ server,
    with the original ``nikdev_iot`` library's model — ``add_value``,
    ``commit``, ``push`` — and nothing lost on the way.

    ``commit`` writes the entry to a local SQLite outbox (in Platypush's
    workdir) before it answers; entries leave the outbox only once the server
    accepted them. A background flusher pushes pending entries in batches
    every ``flush_interval`` seconds, retrying transient failures with backoff.
    Entries the server rejects (4xx) are moved to dead letters with the
    server's reason; ``retry_dead`` queues them again.

    Example configuration:

    .. code-block:: yaml

        nikdev:
          base_url: https://iot.nik-dev.se/api/v1/
          device_id: 01234567-89ab-cdef-0123-456789abcdef
          api_key: fedcba98-7654-3210-fedc-ba9876543210
          flush_interval: 10
          max_entries: 100000
          when_full: reject
    """

    _client: NikdevClient
    #: the events of the server's availability: up, down, the key refused
    AVAILABILITY_EVENTS = (NikdevConnectedEvent, NikdevDisconnectedEvent, NikdevAuthFailedEvent)
    #: while the server refuses the key: the waits between two pushes, and when the next may start
    _auth_schedule: AuthBackoff | None = None
    _retry_at = 0.0

    def __init__(
        self,
        base_url: str,
        device_id: str,
        api_key: str,
        connect_timeout: float = 5,
        read_timeout: float = 10,
        retries: int = 2,
        flush_interval: float = 10,
        batch_entries: int = 500,
        batch_bytes: int = 256 * 1024,
        max_entries: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        when_full: str = "reject",
        warn_ratio: float = 0.8,
        push_time_limit: float = 20,
        verify: bool | str = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        proxy: str | None = None,
        **kwargs: JSON,
    ):
        """
        :param base_url: base URL of the NikDev IoT API, e.g.
            ``https://iot.nik-dev.se/api/v1/`` (the historic host; its status is
            unknown, so this is required).
        :param device_id: the Device ID, shown in the server's device view.
        :param api_key: an API key of that device with write access (a secret).
        :param connect_timeout: seconds to wait for a connection (default: 5).
        :param read_timeout: seconds to wait for an answer (default: 10).
        :param retries: how many times a request is retried at once on a
            transient failure, before the outbox's own backoff (default: 2).
        :param flush_interval: seconds between two background pushes of
            pending entries (default: 10, at least 1).
        :param batch_entries: at most this many entries per request (default: 500).
        :param batch_bytes: at most this many bytes of entries per request
            (default: 262144).
        :param max_entries: the outbox holds at most this many entries,
            pending and dead (default: 100000).
        :param max_bytes: the outbox holds at most this many bytes of entries
            (default: 67108864).
        :param when_full: what ``commit`` does when the outbox is full:
            ``reject`` (default: the commit fails with a clear error, the
            values stay staged, nothing stored is touched) or ``drop_oldest``
            (the oldest dead letters, then the oldest pending entries, are
            deleted to make room; the count is logged and kept in ``status``).
        :param warn_ratio: a :class:`platypush_ext.nikdev.events.NikdevOutboxNearlyFullEvent`
            is posted when the outbox's usage crosses this ratio (default: 0.8).
        :param push_time_limit: ``push`` starts no new batch after this many
            seconds; the rest is left to the flusher (default: 20; more than 0,
            at most 50, so that the action answers within 60 s).
        :param verify: check the server's TLS certificate (``true``), not (``false``), or against this CA bundle.
        :param client_cert: a client certificate (PEM file) for mutual TLS (default: none).
        :param client_key: its private key (PEM file), when it is not in ``client_cert``.
        :param proxy: an HTTP(S) proxy URL, e.g. ``http://proxy:3128`` (default: the environment's).
        """
        _check_push_time_limit(push_time_limit)
        interval = max(1.0, float(flush_interval or 1))
        super().__init__(poll_interval=interval, **kwargs)
        self._set_transport("nikdev", verify=verify, client_cert=client_cert, client_key=client_key, proxy=proxy)
        self._open_client(
            NikdevClient,
            base_url,
            device_id,
            api_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries=retries,
            retry={"budget": max(1.0, float(push_time_limit))},
        )
        outbox = Outbox(
            state_path("nikdev", "outbox.db"),
            max_entries=max_entries,
            max_bytes=max_bytes,
            when_full=when_full,
            warn_ratio=warn_ratio,
            batch_entries=batch_entries,
            batch_bytes=batch_bytes,
        )
        self._uploader = Uploader(self._client, outbox, float(push_time_limit))
        self._availability = self._track_availability("NikDev server", *self.AVAILABILITY_EVENTS)

    # -- helpers -------------------------------------------------------------

    @property
    def uploader(self) -> Uploader:
        """The uploader and its outbox (in ``<workdir>/platypush_ext/nikdev/outbox.db``)."""
        return self._uploader

    def _after_commit(self, committed: Committed) -> JSONObject:
        if self._health is not None:
            self._health.poke()
        outbox = self.uploader.outbox
        if committed.dropped:
            self.logger.warning(
                "nikdev: outbox full, dropped the %d oldest entries (when_full: drop_oldest)", committed.dropped
            )
        if committed.nearly_full:
            status = outbox.status()
            self.logger.warning("nikdev: the outbox is %.0f%% full", status["usage"] * 100)
            self._bus.post(
                NikdevOutboxNearlyFullEvent(
                    pending=status["pending"],
                    dead=status["dead"],
                    usage=status["usage"],
                    max_entries=outbox.max_entries,
                    max_bytes=outbox.max_bytes,
                    when_full=outbox.when_full,
                )
            )
        return {
            "entry_id": committed.entry_id,
            "timestamp": committed.timestamp,
            "values": committed.values,
            "pending": committed.pending,
            "dropped": committed.dropped,
        }

    def _report(self, result: FlushResult) -> None:
        """Post the events of a push and track availability (a refused key: :meth:`_refused`), then
        the outbox's health entities."""
        if result.pushed_entries:
            self._bus.post(
                NikdevEntriesPushedEvent(
                    count=result.pushed_entries,
                    values=result.pushed_values,
                    batches=result.batches,
                    pending=result.pending,
                )
            )
        dead_total = self.uploader.outbox.status()["dead"] if result.dead else 0
        for dead in result.dead:
            self.logger.warning(
                "nikdev: %d entries rejected (HTTP %s: %s), moved to the dead letters",
                dead.entries,
                dead.status,
                dead.reason,
            )
            self._bus.post(
                NikdevDeadLetteredEvent(
                    count=dead.entries, values=dead.values, reason=dead.reason, status=dead.status, dead=dead_total
                )
            )
        refused = self._refused(result)
        if result.error is not None:
            self._availability.failed(result.error)
            self._bus.post(
                NikdevPushFailedEvent(reason=str(result.error), retained=True, will_retry=True, pending=result.pending)
            )
        elif result.batches and not refused:
            self._availability.ok()
            if self._auth_schedule is not None:
                self._auth_schedule.reset()
        if self._health is not None:
            self._health.poke()

    def _refused(self, result: FlushResult) -> bool:
        """Whether the server refused the key in this push (entries dead-lettered with 401/403, as any
        rejection): then the availability is told (one event per transition) and the flusher's next
        push waits as :class:`AuthBackoff` says (:attr:`_retry_at`)."""
        refused = next((d for d in result.dead if d.status in (401, 403)), None)
        if refused is None:
            return False
        text = f"the NikDev server refused the API key (HTTP {refused.status}: {refused.reason})"
        self._availability.failed(NikdevAuthError(text, status=refused.status, server_message=refused.reason))
        if self._auth_schedule is None:
            self._auth_schedule = self._auth_backoff()
        self._retry_at = time.monotonic() + self._auth_schedule.next_delay()
        return True

    def _push(self, entry_id: int | None = None) -> JSONObject:
        """Push now; with ``entry_id``, also say what became of that entry (``entry_state``), whoever
        pushed it: the background flusher may have held the push and sent it meanwhile."""
        result = self.uploader.push()
        self._report(result)
        failure = describe_failure(result)
        fate = self.uploader.outbox.entry_state(entry_id) if entry_id is not None else {}
        if fate.get("state") == "dead":
            own = (
                f"entry {entry_id} was committed, but the server rejected it (HTTP {fate['status']}: "
                f"{fate['reason']}) and it is in the dead letters (see nikdev.get_dead_letters, fix the cause, "
                "then nikdev.retry_dead)"
            )
            failure = f"{failure} — {own}" if failure else own  # what this push met first
        if failure:
            raise NikdevPushError(
                f"{failure} (pushed {result.pushed_entries} entries before)" if result.pushed_entries else failure
            )
        answer = {
            "pushed": result.pushed_entries,
            "values": result.pushed_values,
            "batches": result.batches,
            "pending": result.pending,
        }
        return {**answer, "entry_state": fate["state"]} if fate else answer

    # -- actions -------------------------------------------------------------

    @action
    def add_value(self, field: str, value: str | float | bool) -> JSONObject:
        """
        Stage a value for the next commit. A later value of the same field
        replaces the earlier one (as in the original library). Staged values
        are in memory until ``commit``.

        :param field: the field id, e.g. ``temp`` (no commas).
        :param value: a string, integer, number or boolean.
        :return: e.g. ``{"field": "temp", "value": 21.5, "staged": 2}``
        """
        staged = self.uploader.add_value(field, value)
        return {"field": field, "value": value, "staged": staged}

    @action
    def commit(self, values: JSONObject | None = None) -> JSONObject:
        """
        Commit the staged values as one entry, timestamped now, to the durable
        outbox; it is on disk when this answers. It is pushed by ``push`` or
        by the background flusher.

        :param values: more values to add first, as ``{field: value}`` (optional).
        :return: e.g. ``{"entry_id": 42, "timestamp": 1795303179, "values": 2,
            "pending": 3, "dropped": 0}``
        """
        return self._after_commit(self.uploader.commit(values))

    @action
    def push(self) -> JSONObject:
        """
        Push the pending entries now, in batches. On a transient failure the
        entries stay queued (the error says so) and the flusher retries them
        with backoff; entries the server rejects move to the dead letters and
        the error gives the server's reason.

        :return: e.g. ``{"pushed": 3, "values": 6, "batches": 1, "pending": 0}``
        """
        return self._push()

    @action
    def commit_and_push(self, values: JSONObject | None = None) -> JSONObject:
        """
        ``commit`` then ``push``, answering what became of this entry, whoever
        pushed it (this push, or the background flusher that held the push
        meanwhile): ``entry_state`` is ``pushed`` or ``pending`` (left for the
        flusher); an entry the server rejected is an error that says so (it is
        in the dead letters), as is a failed push (the entry stays queued).

        :param values: more values to add first, as ``{field: value}`` (optional).
        :return: e.g. ``{"entry_id": 42, "timestamp": 1795303179, "values": 2,
            "dropped": 0, "pushed": 1, "batches": 1, "pending": 0, "entry_state": "pushed"}``
        """
        committed = self._after_commit(self.uploader.commit(values))
        pushed = self._push(committed["entry_id"])
        return {
            **committed,
            "pushed": pushed["pushed"],
            "batches": pushed["batches"],
            "pending": pushed["pending"],
            "entry_state": pushed["entry_state"],
        }

    @action
    def get_values(self, fields: str | list[str]) -> list[JSONObject]:
        """
        Read the latest value of fields from the server (what the original
        library left unimplemented). Timestamps are converted to the local clock.

        :param fields: a field id, a list of them, or a comma-separated string.
        :return: e.g. ``[{"field": "temp", "value": 21.5, "timestamp": 1795303179}]``
        """
        return [v.to_dict() for v in self.uploader.get_values(fields)]

    @action
    def status(self) -> JSONObject:
        """
        The outbox's state and the server's reachability.

        :return: e.g.

            .. code-block:: json

                {"base_url": "https://iot.nik-dev.se/api/v1/", "reachable": true, "credentials_rejected": null,
                 "staged": {"temp": 21.5}, "pending": 0, "pending_values": 0,
                 "pending_bytes": 0, "dead": 1, "dead_bytes": 61,
                 "oldest_pending_age": null, "last_error": null,
                 "max_entries": 100000, "max_bytes": 67108864, "when_full": "reject",
                 "usage": 0.0, "pushed_entries": 12, "pushed_values": 24,
                 "pushed_batches": 4, "dead_lettered_entries": 1, "dropped_entries": 0}
        """
        self._scan_health()  # entities.scan calls status
        return {
            "base_url": self._client.base_url,
            "reachable": self._availability.up,
            **self._credentials_status(),
            "staged": self.uploader.staged(),
            **self.uploader.outbox.status(),
        }

    @action
    def get_dead_letters(self, limit: int = 100) -> list[JSONObject]:
        """
        The entries the server rejected, oldest first, with its reason.

        :param limit: at most this many (default: 100).
        :return: e.g.

            .. code-block:: json

                [{"entry_id": 7, "timestamp": 1795303179, "committed_at": 1795303179.2,
                  "values": {"temp": 21.5}, "added_at": [1795303178.9], "attempts": 0,
                  "reason": "Invalid API key", "status": 401, "dead_at": 1795303180.1}]
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgumentError(f"limit must be a positive integer, got {limit!r}")
        return self.uploader.outbox.dead_letters(limit)

    @action
    def retry_dead(self, ids: list[int] | None = None, push: bool = True) -> JSONObject:
        """
        Queue dead letters again (after fixing the key or the data), and push them.

        :param ids: the ``entry_id`` of the dead letters to retry (default: all).
        :param push: push right away (default: true; otherwise the flusher does).
        :return: e.g. ``{"requeued": 3, "pushed": 3, "pending": 0}``
        """
        requeued = self.uploader.outbox.retry_dead(ids)
        answer: JSONObject = {"requeued": requeued}
        if push and requeued:
            pushed = self._push()
            answer.update(pushed=pushed["pushed"], pending=pushed["pending"])
        return answer

    @action
    def purge_dead(self, ids: list[int] | None = None) -> JSONObject:
        """
        Delete dead letters for good.

        :param ids: the ``entry_id`` of the dead letters to delete (default: all).
        :return: e.g. ``{"purged": 3}``
        """
        return {"purged": self.uploader.outbox.purge_dead(ids)}

    # -- flusher ---------------------------------------------------------------

    def main(self) -> None:
        outbox, server = self.uploader.outbox, self._availability  # on the Home panel (nikdev/health.py)
        self._watch_health("nikdev", lambda: outbox_entities(outbox, server), self._should_stop)
        Listener(self._flush, self._should_stop, backoff=Backoff(base=1.0, cap=60.0)).run()

    def _flush(self) -> float | None:
        """Push what is pending (reported by :meth:`_report`); ``None`` after a failure (back off). While
        the server refuses the key, no push starts before :attr:`_retry_at` (the entries would only go
        to the dead letters); a push that succeeds meanwhile (``nikdev.push``) ends the wait."""
        refused = self._availability.rejected_since is not None
        if refused and time.monotonic() < self._retry_at:
            return min(self.poll_interval, self._retry_at - time.monotonic())
        if not self.uploader.outbox.pending_count():
            return self.poll_interval
        result = self.uploader.push()
        self._report(result)
        if self._availability.rejected_since is not None:
            return max(0.0, min(self.poll_interval, self._retry_at - time.monotonic()))
        if result.error is not None:
            return None
        return 0.1 if result.pending and result.batches else self.poll_interval  # 0.1: stopped at the time limit
