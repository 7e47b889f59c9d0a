"""Events of the ``nikdev`` plugin."""

from __future__ import annotations

from ..events import BundleEvent, ServiceAuthFailedEvent, ServiceConnectedEvent, ServiceDisconnectedEvent


class NikdevEntriesPushedEvent(BundleEvent):
    """Committed entries reached the NikDev server (by ``push``, ``commit_and_push`` or the background flusher)."""

    def __init__(self, *args, count: int, values: int, batches: int, pending: int, **kwargs):
        """
        :param count: how many entries were pushed.
        :param values: how many values they held.
        :param batches: in how many requests.
        :param pending: entries still waiting in the outbox.
        """
        super().__init__(*args, count=count, values=values, batches=batches, pending=pending, **kwargs)


class NikdevPushFailedEvent(BundleEvent):
    """A push failed for a transient reason (server error, timeout, no connection).

    The entries are retained in the outbox and retried with backoff.
    """

    def __init__(self, *args, reason: str, retained: bool = True, will_retry: bool = True, pending: int = 0, **kwargs):
        """
        :param reason: what went wrong (no secrets).
        :param retained: whether the data is kept locally (always true: nothing is thrown away).
        :param will_retry: whether the entries are retried automatically.
        :param pending: entries waiting in the outbox.
        """
        super().__init__(*args, reason=reason, retained=retained, will_retry=will_retry, pending=pending, **kwargs)


class NikdevDeadLetteredEvent(BundleEvent):
    """The server rejected entries (4xx: wrong credentials, no write access, rejected data).

    They were moved to the dead letters with the server's reason; they are kept
    but not retried until ``nikdev.retry_dead`` is called.
    """

    def __init__(self, *args, count: int, values: int, reason: str, status: int | None, dead: int, **kwargs):
        """
        :param count: how many entries were dead-lettered.
        :param values: how many values they held.
        :param reason: the server's reason.
        :param status: the HTTP status of the rejection.
        :param dead: dead letters now in the outbox.
        """
        super().__init__(*args, count=count, values=values, reason=reason, status=status, dead=dead, **kwargs)


class NikdevOutboxNearlyFullEvent(BundleEvent):
    """The outbox crossed its warning ratio of its entry or byte limit (reported once per crossing)."""

    def __init__(
        self, *args, pending: int, dead: int, usage: float, max_entries: int, max_bytes: int, when_full: str, **kwargs
    ):
        """
        :param pending: entries waiting to be pushed.
        :param dead: dead letters.
        :param usage: the fuller of entries/max_entries and bytes/max_bytes (0 to 1).
        :param max_entries: the entry limit.
        :param max_bytes: the byte limit.
        :param when_full: what happens when full: ``reject`` or ``drop_oldest``.
        """
        super().__init__(
            *args,
            pending=pending,
            dead=dead,
            usage=usage,
            max_entries=max_entries,
            max_bytes=max_bytes,
            when_full=when_full,
            **kwargs,
        )


class NikdevAuthFailedEvent(ServiceAuthFailedEvent):
    """The NikDev server refused the API key (401/403: revoked, or without write access); posted
    once, when the refusals start. The refused entries go to the dead letters as before; the
    flusher retries rarely and posts :class:`NikdevConnectedEvent` once the key works again."""


class NikdevConnectedEvent(ServiceConnectedEvent):
    """The NikDev server answers again (first push, or first after an outage)."""


class NikdevDisconnectedEvent(ServiceDisconnectedEvent):
    """The NikDev server became unreachable; pushes are retried with backoff."""
