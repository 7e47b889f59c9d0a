"""Events of the ``pushjet`` plugin."""

from __future__ import annotations

from typing import Optional

from platypush.message.event import Event

from ..events import ServiceConnectedEvent, ServiceDisconnectedEvent


class PushjetMessageEvent(Event):
    """A Pushjet message arrived for one of the configured devices.

    Delivery is at-least-once: after a crash a message may be posted twice,
    with the same ``journal_id``.
    """

    def __init__(
        self,
        *args,
        message: str,
        title: Optional[str] = None,
        link: Optional[str] = None,
        importance: int = 3,
        sent_at: Optional[int] = None,
        service: Optional[str] = None,
        service_name: Optional[str] = None,
        service_icon: Optional[str] = None,
        device: Optional[str] = None,
        journal_id: Optional[int] = None,
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
    """The Pushjet server is reachable (first successful poll, or back after an outage)."""


class PushjetDisconnectedEvent(ServiceDisconnectedEvent):
    """The Pushjet server became unavailable; the listener keeps retrying with backoff."""
