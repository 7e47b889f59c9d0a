"""Events of the ``pushjet`` plugin."""

from __future__ import annotations

from ..events import ServiceAuthFailedEvent, ServiceConnectedEvent, ServiceDisconnectedEvent
from ..glue.delivery import JournaledEvent


class PushjetMessageEvent(JournaledEvent, journal="pushjet"):
    """A Pushjet message arrived for one of the configured devices.

    Delivery is at-least-once: after a crash a message may be posted twice,
    with the same ``journal_id``.
    """

    def __init__(
        self,
        *args,
        message: str,
        title: str | None = None,
        link: str | None = None,
        importance: int = 3,
        sent_at: int | None = None,
        service: str | None = None,
        service_name: str | None = None,
        service_icon: str | None = None,
        device: str | None = None,
        journal_id: int | None = None,
        **kwargs,
    ):
        """
        :param message: the message text.
        :param title: its title (``None`` when it has none).
        :param link: its link (``None`` when it has none).
        :param importance: from 1 (least) to 5 (most important).
        :param sent_at: when the server accepted it (Unix seconds).
        :param service: the public key of the sending service.
        :param service_name: the name of the sending service.
        :param service_icon: the icon URL of the sending service, if any.
        :param device: the UUID of the device that received it.
        :param journal_id: its id in the local journal (the same on a re-delivery).
        """
        super().__init__(
            *args,
            message=message,
            title=title,
            link=link,
            importance=importance,
            sent_at=sent_at,
            service=service,
            service_name=service_name,
            service_icon=service_icon,
            device=device,
            journal_id=journal_id,
            **kwargs,
        )


class PushjetConnectedEvent(ServiceConnectedEvent):
    """A path of the messages came up: the Pushjet server answered a poll (``path:
    polling``), or its connector accepted a device (``path: realtime``); the first
    time, or back after an outage."""

    def __init__(self, *args, base_url: str, path: str = "polling", realtime_url: str | None = None, **kwargs):
        """
        :param base_url: the Pushjet server's base URL.
        :param path: ``polling`` (the REST API) or ``realtime`` (the WebSocket connector).
        :param realtime_url: the connector's URL (``None`` without one).
        """
        super().__init__(*args, base_url=base_url, path=path, realtime_url=realtime_url, **kwargs)


class PushjetDisconnectedEvent(ServiceDisconnectedEvent):
    """A path of the messages went down: a poll failed (``path: polling``; the
    listener retries with backoff), or the connector became unreachable (``path:
    realtime``; the listener polls until it is back)."""

    def __init__(
        self, *args, base_url: str, error: str, path: str = "polling", realtime_url: str | None = None, **kwargs
    ):
        """
        :param base_url: the Pushjet server's base URL.
        :param error: what went wrong (never a secret).
        :param path: ``polling`` (the REST API) or ``realtime`` (the WebSocket connector).
        :param realtime_url: the connector's URL (``None`` without one).
        """
        super().__init__(*args, base_url=base_url, error=error, path=path, realtime_url=realtime_url, **kwargs)


class PushjetAuthFailedEvent(ServiceAuthFailedEvent):
    """The server (or the reverse proxy before it) refused the credentials (401/403); posted once,
    when the refusals start. The listener retries rarely and posts :class:`PushjetConnectedEvent`
    once they work again; ``pushjet.status`` shows ``credentials_rejected`` meanwhile."""

    def __init__(
        self,
        *args,
        base_url: str,
        error: str,
        status: int | None = None,
        path: str = "polling",
        realtime_url: str | None = None,
        **kwargs,
    ):
        """
        :param base_url: the Pushjet server's base URL.
        :param error: the refusal in one line, with the server's own sentence (no secrets).
        :param status: the HTTP status (401 or 403).
        :param path: ``polling`` (the REST API) or ``realtime`` (the WebSocket connector).
        :param realtime_url: the connector's URL (``None`` without one).
        """
        super().__init__(
            *args, base_url=base_url, error=error, status=status, path=path, realtime_url=realtime_url, **kwargs
        )
