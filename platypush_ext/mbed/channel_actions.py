"""The mbed plugin's notification channel (a mixin of :class:`~platypush_ext.mbed.plugin.MbedPlugin`):
the one it consumes — made from the configuration (``channel``, ``callback_*``), started by the
listener once Platypush's bus listens, replaced by ``switch_channel`` — what device calls wait
for while it starts, and the actions on it.

Every NotificationMessage a channel receives goes to the plugin's ``record`` (journaled, as
received) and ``on_message`` (its events posted): the plugin's :class:`~platypush_ext.glue.delivery.Inbox`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from ..core.backoff import AuthBackoff, Backoff
from ..core.errors import InvalidArgumentError
from ..core.journal import Journal
from ..core.listening import Availability
from ..core.untrusted import JSON, JSONObject
from ..glue.actions import action
from .channels import CallbackChannel, Channel, ChannelOptions, LongPollChannel, WebSocketChannel
from .client import MbedClient

#: The values of the ``channel`` setting (besides ``auto``).
CHANNELS = ("long_poll", "callback", "websocket", "none")
#: A channel that the service holds (``none`` is no channel).
SERVICE_CHANNELS = CHANNELS[:3]


class _ChannelGate:
    """What device calls wait for (``MbedClient.channel_gate``): the plugin's own channel, which
    ``main()`` starts once Platypush's bus listens and ``switch_channel`` may replace."""

    def __init__(self, plugin: ChannelActions):
        self.plugin = plugin

    def wait_ready(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the channel to exist on the service; whether it does.

        :param timeout: seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            channel = self.plugin._channel
            if channel is not None:
                return channel.wait_ready(max(0.0, deadline - time.monotonic()))
            left = deadline - time.monotonic()
            if left <= 0 or self.why_down() is not None:
                return False
            self.plugin._should_stop.wait(min(left, 0.05))  # main() starts it once the bus listens

    def why_down(self) -> str | None:
        """Why the plugin's channel does not run (one line), or ``None`` while it runs or starts."""
        plugin = self.plugin
        if plugin._channel_name == "none":
            return "the plugin consumes no notification channel (channel: none)"
        if not plugin._channel_enabled:
            return "the notification channel was stopped (mbed.stop_channel): start it with mbed.start_channel"
        if plugin.should_stop():
            return "Platypush is stopping"
        channel = plugin._channel
        if channel is not None:
            return channel.why_down()
        if getattr(plugin, "_thread", None) is None:
            return "the plugin's listener was not started (Platypush starts it)"
        return None


class ChannelActions:
    """The plugin's notification channel and its actions (:meth:`_open_channel` in ``__init__``)."""

    _client: MbedClient
    _availability: Availability
    _auth_backoff: Callable[[], AuthBackoff]
    _should_stop: threading.Event
    journal: Journal
    should_stop: Callable[[], bool]
    record: Callable[[JSON], int]
    record_refused: Callable[[str], int]
    on_message: Callable[..., int]

    # callback: JSON, the configuration's settings (and the ssl.SSLContext made of its certificate files)
    def _open_channel(self, channel: str, callback: Mapping[str, JSON]) -> str:
        """Set up the channel (not started: the listener starts it); returns its type.

        :param channel: the ``channel`` setting (``auto``: ``websocket`` with Pelion / Izuma, else ``long_poll``).
        :param callback: the callback receiver's settings (``bind``, ``port``, ``public_url``, ``max_body``).
        """
        channel = ("websocket" if self._client.pelion else "long_poll") if channel == "auto" else channel
        self._channel_name, self._client.external_channel = channel, channel != "none"
        self._client.channel_gate = _ChannelGate(self)  # device calls wait for the channel while it starts
        self._callback = dict(callback)
        self._channel: Channel | None = None
        self._channel_lock, self._channel_enabled = threading.Lock(), channel != "none"
        return channel

    def _journaled(self, journal_id: int) -> JSON:
        """The journaled NotificationMessage of an id (the callback receiver queues ids, not bodies);
        ``None`` when it was dealt with meanwhile: pruned, or dropped (the journal keeps only the start
        of a dropped message) by a post of the pending messages that came first."""
        try:
            entry = self.journal.get(journal_id)
        except ValueError:  # dropped: its payload was cut; it was logged and counted then
            return None
        return entry.payload if entry is not None else None

    def _make_channel(self) -> Channel:
        common: ChannelOptions = {
            "on_up": self._availability.ok,
            "on_down": self._availability.failed,
            "backoff": Backoff(base=1.0, cap=60.0),
            "auth_backoff": self._auth_backoff(),
            "record": self.record,
        }
        if self._channel_name == "callback":
            return CallbackChannel(
                self._client,
                self.on_message,
                load=self._journaled,
                record_refused=self.record_refused,
                **self._callback,
                **common,
            )
        if self._channel_name == "websocket":
            return WebSocketChannel(self._client, self.on_message, **common)
        return LongPollChannel(self._client, self.on_message, no_wait_first=True, **common)

    def _start_channel(self) -> bool:
        with self._channel_lock:
            if self._channel is not None or self._channel_name == "none":
                return False
            self._channel = self._make_channel()
            self._channel.start_thread()
            return True

    def _stop_channel(self, timeout: float = 1.0) -> bool:
        with self._channel_lock:
            channel, self._channel = self._channel, None
        if channel is None:
            return False
        channel.stop(timeout)
        return True

    @action
    def put_callback(self, url: str, headers: Mapping[str, str] | None = None) -> JSONObject:
        """
        Register a callback URL of your own (replacing the plugin's channel on the
        service; header values are treated as secrets). Prefer ``channel: callback``.

        :param url: where the service must ``PUT`` notifications.
        :param headers: headers it must send with each delivery.
        :return: ``{"registered": true}``
        """
        self._client.put_callback(url, headers)
        return {"registered": True}

    @action
    def get_callback(self) -> JSONObject | None:
        """
        The registered callback (header values masked).

        :return: e.g. ``{"url": "http://...", "headers": {"X-Platypush-Mbed-Secret": "***"}}``, or ``null``
        """
        callback = self._client.get_callback()
        if callback and isinstance(callback.get("headers"), Mapping):
            callback["headers"] = {k: "***" for k in callback["headers"]}
        return callback

    @action
    def delete_callback(self) -> JSONObject:
        """
        Remove the callback URL (the Connector also removes every subscription).

        :return: ``{"deleted": true}`` (``false`` when none was set)
        """
        return {"deleted": self._client.delete_callback()}

    @action
    def start_channel(self) -> JSONObject:
        """
        Start consuming the notification channel (it starts with Platypush unless
        ``channel: none``).

        :return: ``{"started": true}`` (``false`` when it already runs)
        """
        if self._channel_name == "none":
            raise InvalidArgumentError("channel is 'none' in the configuration: set long_poll, callback or websocket")
        self._channel_enabled = True
        self._client.external_channel = True
        return {"started": self._start_channel()}

    @action
    def switch_channel(self, channel: str) -> JSONObject:
        """
        Receive notifications through another channel type from now on (until a restart,
        which uses the configuration's): the running channel stops, its registration is
        removed from the service (Pelion / Izuma allow one type at a time), the new one starts.

        :param channel: ``long_poll``, ``callback`` or ``websocket``.
        :return: ``{"channel": "callback", "previous": "websocket", "removed": true}``
        """
        if channel not in SERVICE_CHANNELS:
            raise InvalidArgumentError(f"channel must be one of {', '.join(SERVICE_CHANNELS)}, got {channel!r}")
        previous = self._channel_name
        self._stop_channel(timeout=2.0)
        removed = previous != channel and previous in SERVICE_CHANNELS and self._client.delete_channel(previous)
        self._channel_name, self._channel_enabled = channel, True
        self._client.external_channel = True
        self._start_channel()
        return {"channel": channel, "previous": previous, "removed": bool(removed)}

    @action
    def stop_channel(self) -> JSONObject:
        """
        Stop consuming the notification channel (asynchronous actions then time out).

        :return: ``{"stopped": true}`` (``false`` when it was not running)
        """
        self._channel_enabled = False
        self._client.external_channel = False
        return {"stopped": self._stop_channel()}
