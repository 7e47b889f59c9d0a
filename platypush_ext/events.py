"""Events shared by the plugins of the bundle.

Each plugin with a listener posts its own subclasses (``PushjetConnectedEvent``,
``MbedDisconnectedEvent``, …), so a hook can react to one service or, with
these base classes as ``type``, to any of them. (The base of the events made of
journal entries, and the delivery plumbing, are :mod:`platypush_ext.glue.delivery`'s.)
"""

from __future__ import annotations

from typing import Any

from platypush.message.event import Event


class ServiceConnectedEvent(Event):
    """A service is reachable: the listener's first success, or its first after an outage."""

    def __init__(self, *args: Any, base_url: str, **kwargs: Any):
        """
        :param base_url: the service's base URL.
        """
        super().__init__(*args, base_url=base_url, **kwargs)


class ServiceDisconnectedEvent(Event):
    """A service became unavailable; its listener keeps retrying with backoff."""

    def __init__(self, *args: Any, base_url: str, error: str, **kwargs: Any):
        """
        :param base_url: the service's base URL.
        :param error: what went wrong (never a secret).
        """
        super().__init__(*args, base_url=base_url, error=error, **kwargs)
