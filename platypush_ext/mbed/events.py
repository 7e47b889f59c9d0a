"""Events of the ``mbed`` plugin: one per element of the notification channel,
plus connected / disconnected. They replace the original library's
``setHandler(type, fn)``: write hooks on them instead.

Every event made from the notification channel also carries ``journal_id``
(``"<message>.<element>"``, a string): delivery is at-least-once, and a re-post
after a restart or a crash carries the same id, so that a hook can recognise it."""

from __future__ import annotations

from ..core.untrusted import JSON
from ..events import ServiceAuthFailedEvent, ServiceConnectedEvent, ServiceDisconnectedEvent
from ..glue.delivery import JournaledEvent


class MbedNotificationEvent(JournaledEvent, journal="mbed"):
    """A subscribed resource changed (an element of ``notifications``)."""

    def __init__(
        self,
        *args,
        endpoint: str,
        path: str,
        value: str,
        encoding: str = "text",
        content_type: str = "",
        max_age: int | None = None,
        value_timestamp: JSON = None,
        **kwargs,
    ):
        """
        :param endpoint: the endpoint (device) name.
        :param path: the resource path, e.g. ``/3303/0/5700``.
        :param value: the new value: UTF-8 text for textual content types, else base64.
        :param encoding: ``text`` or ``base64`` (how ``value`` is encoded).
        :param content_type: the value's content type, e.g. ``text/plain``.
        :param max_age: seconds the value stays valid in the service's cache.
        :param value_timestamp: when the value was measured, if the service says (Pelion).
        """
        super().__init__(
            *args,
            endpoint=endpoint,
            path=path,
            value=value,
            encoding=encoding,
            content_type=content_type,
            max_age=max_age,
            value_timestamp=value_timestamp,
            **kwargs,
        )


class MbedRegistrationEvent(JournaledEvent, journal="mbed"):
    """An endpoint registered (an element of ``registrations``)."""

    def __init__(
        self,
        *args,
        endpoint: str,
        endpoint_type: str = "",
        queue_mode: bool = False,
        resources: list | None = None,
        original_endpoint: str | None = None,
        **kwargs,
    ):
        """
        :param endpoint: the endpoint name (Pelion: the device id).
        :param endpoint_type: the endpoint type (``ept``), e.g. ``Light``.
        :param queue_mode: whether the endpoint is in queue mode (``q``).
        :param resources: its resources, ``[{"path", "rt", "ct", "obs", "if"}]``.
        :param original_endpoint: the device's own name (Pelion's ``original-ep``).
        """
        super().__init__(
            *args,
            endpoint=endpoint,
            endpoint_type=endpoint_type,
            queue_mode=queue_mode,
            resources=resources or [],
            original_endpoint=original_endpoint,
            **kwargs,
        )


class MbedRegistrationUpdateEvent(MbedRegistrationEvent):
    """An endpoint updated its registration (an element of ``reg-updates``; frequent)."""


class MbedDeregistrationEvent(JournaledEvent, journal="mbed"):
    """An endpoint de-registered in a controlled manner (``de-registrations``)."""

    def __init__(self, *args, endpoint: str, **kwargs):
        """
        :param endpoint: the endpoint name.
        """
        super().__init__(*args, endpoint=endpoint, **kwargs)


class MbedRegistrationExpiredEvent(JournaledEvent, journal="mbed"):
    """An endpoint's registration expired (``registrations-expired``)."""

    def __init__(self, *args, endpoint: str, **kwargs):
        """
        :param endpoint: the endpoint name.
        """
        super().__init__(*args, endpoint=endpoint, **kwargs)


class MbedAsyncResponseEvent(JournaledEvent, journal="mbed"):
    """The result of an asynchronous request arrived (``async-responses``).

    Actions waiting for it already return its value; this event also reports the
    results of requests made with ``wait=False``.
    """

    def __init__(
        self,
        *args,
        async_id: str,
        status: int,
        value: str = "",
        encoding: str = "text",
        content_type: str = "",
        max_age: int | None = None,
        error: str | None = None,
        **kwargs,
    ):
        """
        :param async_id: the request's ``async-response-id`` (``id`` in the service's JSON).
        :param status: the device's status, e.g. ``200``, ``404``, ``504``.
        :param value: the payload: UTF-8 text for textual content types, else base64.
        :param encoding: ``text`` or ``base64``.
        :param content_type: the payload's content type.
        :param max_age: seconds the value stays cached.
        :param error: the service's error text, e.g. ``TIMEOUT``.
        """
        super().__init__(
            *args,
            async_id=async_id,
            status=status,
            value=value,
            encoding=encoding,
            content_type=content_type,
            max_age=max_age,
            error=error,
            **kwargs,
        )


class MbedConnectedEvent(ServiceConnectedEvent):
    """The notification channel works (first success, or back after an outage)."""

    def __init__(self, *args, base_url: str, channel: str, **kwargs):
        """
        :param base_url: the service's base URL.
        :param channel: ``long_poll``, ``callback`` or ``websocket``.
        """
        super().__init__(*args, base_url=base_url, channel=channel, **kwargs)


class MbedDisconnectedEvent(ServiceDisconnectedEvent):
    """The notification channel failed; it keeps retrying with backoff."""

    def __init__(self, *args, base_url: str, channel: str, error: str, **kwargs):
        """
        :param base_url: the service's base URL.
        :param channel: ``long_poll``, ``callback`` or ``websocket``.
        :param error: what went wrong (no secrets).
        """
        super().__init__(*args, base_url=base_url, channel=channel, error=error, **kwargs)


class MbedAuthFailedEvent(ServiceAuthFailedEvent):
    """The service refused the access key (401/403: revoked or wrong); posted once, when the
    refusals start. The channel retries rarely and posts :class:`MbedConnectedEvent` once the key
    works again; ``mbed.status`` shows ``credentials_rejected`` meanwhile."""

    def __init__(self, *args, base_url: str, channel: str, error: str, status: int | None = None, **kwargs):
        """
        :param base_url: the service's base URL.
        :param channel: ``long_poll``, ``callback`` or ``websocket``.
        :param error: the refusal in one line, with the service's own sentence (no secrets).
        :param status: the HTTP status (401 or 403).
        """
        super().__init__(*args, base_url=base_url, channel=channel, error=error, status=status, **kwargs)


#: The event class of each kind of notification element.
EVENT_CLASSES = {
    "notifications": MbedNotificationEvent,
    "registrations": MbedRegistrationEvent,
    "reg-updates": MbedRegistrationUpdateEvent,
    "de-registrations": MbedDeregistrationEvent,
    "registrations-expired": MbedRegistrationExpiredEvent,
    "async-responses": MbedAsyncResponseEvent,
}
