"""The plugin base of the bundle: what every plugin shares on Platypush's side.

* :class:`ServicePlugin` — the plugins' common settings, events and stop.
* :func:`state_path` — where a plugin keeps its local state (Platypush's workdir).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping, TypeVar

from platypush.config import Config

from ..core.http import ServiceClient, Timeouts
from ..core.listening import Availability
from . import webpanel

__all__ = ["ServicePlugin", "state_path"]

C = TypeVar("C", bound=ServiceClient)


def state_path(service: str, filename: str) -> str:
    """``<Platypush workdir>/platypush_ext/<service>/<filename>``."""
    return os.path.join(Config.get_workdir(), "platypush_ext", service, filename)


class ServicePlugin:
    """What every plugin of the bundle shares; a mixin before Platypush's plugin class
    (``class PushjetPlugin(ServicePlugin, RunnablePlugin)``).

    :meth:`_open_client` turns the common settings (``connect_timeout``,
    ``read_timeout``, ``retries``) into the client's :class:`Timeouts` and an
    adjusted copy of its ``DEFAULT_RETRY``, and lists the plugin in the web
    panel; :meth:`_track_availability` posts the connected/disconnected events;
    :meth:`stop` closes the client.
    """

    _client: Any
    logger: logging.Logger
    _bus: Any

    def _open_client(
        self,
        client_class: type[C],
        *args: Any,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
        retry: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> C:
        """Create the plugin's client (as ``self._client``) from the common settings.

        :param client_class: the service's client class.
        :param args: its positional arguments (base URL, credentials).
        :param connect_timeout: seconds to wait for a connection.
        :param read_timeout: seconds to wait for an answer.
        :param retries: retries of a transient failure.
        :param retry: other changes to the client's default retry policy.
        :param options: the client's other keyword arguments.
        """
        webpanel.register()  # listed in the web panel's Execute tab and Extensions
        policy = client_class.DEFAULT_RETRY.replace(**(retry or {})).with_retries(retries)
        timeouts = Timeouts(float(connect_timeout), float(read_timeout))
        self._client = client_class(*args, timeouts=timeouts, retry=policy, **options)
        return self._client

    def _track_availability(
        self, what: str, connected: Callable[..., Any], disconnected: Callable[..., Any], **fields: Any
    ) -> Availability:
        """An :class:`Availability` that posts ``connected`` / ``disconnected`` events.

        :param what: how logs name the service (the client's base URL is appended).
        :param connected: the connected event's class (given ``base_url`` and ``fields``).
        :param disconnected: the disconnected event's class (given ``error`` too).
        :param fields: further arguments of both events.
        """
        base_url = self._client.base_url
        return Availability(
            f"{what} {base_url}",
            self.logger,
            on_up=lambda: self._bus.post(connected(base_url=base_url, **fields)),
            on_down=lambda error: self._bus.post(disconnected(base_url=base_url, error=error, **fields)),
        )

    def stop(self) -> None:
        """Stop the plugin (Platypush's ``stop``), then close the client."""
        super().stop()  # type: ignore[misc]
        self._client.close()
