"""The ``pushjet`` Platypush plugin: thin glue over :class:`PushjetClient`."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Mapping, Sequence

from platypush.entities.managers.sensors import SensorEntityManager

from platypush.plugins import RunnablePlugin

from ..core import untrusted
from ..core.errors import InvalidArgumentError, ProtocolError
from ..core.journal import Entry
from ..core.listening import Backoff, Listener
from ..core.untrusted import JSON, JSONObject
from ..glue.actions import action
from ..glue.health import HealthManager
from ..glue.plugin import ListeningPlugin, state_path
from . import health
from .client import (
    PUBLIC_KEY_RE,
    SECRET_KEY_RE,
    Message,
    PushjetClient,
    Service,
    check_alias,
    check_name,
    check_public_key,
    check_secret_key,
    check_uuid,
)
from .events import PushjetAuthFailedEvent, PushjetConnectedEvent, PushjetDisconnectedEvent, PushjetMessageEvent
from .realtime import (
    POLLING,
    REALTIME,
    CrossPathFilter,
    RealtimeChannel,
    check_realtime_url,
    message_of_frame,
)

ServiceConfig = str | Mapping[str, str]


def _messages_of(answer: JSON) -> list[JSON]:
    """The message objects of a ``GET /message`` answer (each parsed later, on its own).

    :param answer: the decoded answer.
    :raises ProtocolError: it is not ``{"messages": [...]}``.
    """
    answer = untrusted.mapping(answer, "GET /message")
    return untrusted.array(untrusted.field(answer, "messages", "GET /message: messages"), "GET /message: messages")


def _shown(service: object) -> str:
    """``service`` quoted for an error message, unless it is shaped like a secret key (never echoed)."""
    if isinstance(service, str) and SECRET_KEY_RE.match(service):
        return "<a value that looks like a secret key: pass it as secret_key, or a configured service name>"
    return repr(service)


class PushjetPlugin(HealthManager, ListeningPlugin, RunnablePlugin, SensorEntityManager):
    """
    `Pushjet <https://github.com/Pushjet/Pushjet-Server-Api>`_ push notifications:
    create and manage services, send messages, subscribe devices, and receive
    the messages of the configured devices as
    :class:`platypush_ext.pushjet.events.PushjetMessageEvent` events.

    Example configuration:

    .. code-block:: yaml

        pushjet:
          base_url: https://pushjet.example.org/api/
          devices:
            - 0f1e2d3c-4b5a-4697-8899-aabbccddeeff
          services:
            alerts:
              secret: 0123456789abcdef0123456789abcdef
          poll_interval: 10
          realtime_url: wss://pushjet.example.org/ws   # optional: messages in milliseconds

    Fetching messages is destructive on the server, so every fetched message is
    first written to a local journal (in Platypush's workdir) and its event is
    posted from there; it counts as delivered only once a subscriber of
    Platypush's bus received it (at-least-once: nothing is lost if Platypush
    stops or crashes at the wrong moment; a re-post carries the same ``journal_id``;
    ``docs/delivery.md``).

    With ``realtime_url``, the messages are pushed by the server's WebSocket
    connector the moment they are sent; the listener polls only while the
    connector is unreachable, and switches back to it by itself. A message that
    arrives both pushed and polled posts one event.
    """

    _client: PushjetClient

    #: The listener never polls faster than this (seconds).
    MIN_POLL_INTERVAL = 4.0
    #: First retry delay after a failed poll (doubles up to 60 s, with jitter).
    BACKOFF_BASE = 1.0
    #: A connector connection silent this long gets a ping (seconds).
    PING_INTERVAL = 30.0
    #: ... and is given up when nothing arrived this long after the ping.
    PING_TIMEOUT = 10.0
    #: The longest wait between two attempts to reach the connector (seconds).
    REALTIME_BACKOFF_CAP = 30.0
    #: A connection to the connector that stayed up this long (or brought a message) resets the
    #: backoff and ends an outage; one accepted and dropped does neither (seconds).
    REALTIME_SETTLE = 30.0
    #: While every device is on the connector, the poller sleeps this long at most (woken when one drops).
    IDLE_WAIT = 300.0

    def __init__(
        self,
        base_url: str,
        devices: str | Sequence[str] | None = None,
        services: Mapping[str, ServiceConfig] | None = None,
        poll_interval: float = 10,
        realtime_url: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 15,
        retries: int = 2,
        verify: bool | str = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        proxy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: JSON,
    ):
        """
        :param base_url: base URL of the Pushjet API server, e.g.
            ``https://pushjet.example.org/api/`` (the old public host
            ``https://api.pushjet.io/`` is gone; this is required).
        :param devices: UUID of the device (or list of UUIDs) whose messages are
            received as events; the first one is also the default ``device`` of
            the actions. Generate one with ``python -c 'import uuid; print(uuid.uuid4())'``.
        :param services: named services whose secret keys are kept here rather
            than sent in each request, as ``{name: {secret: <secret key>}}``
            (or ``{name: <secret key>}``). Actions take ``service=<name>``.
        :param poll_interval: seconds between two polls of new messages
            (default: 10, at least 4); with ``realtime_url``, only while the
            connector is unreachable.
        :param realtime_url: the server's WebSocket connector, e.g.
            ``wss://pushjet.example.org/ws`` or ``ws://127.0.0.1:8181`` (default:
            none, polling only). It is a separate process from the API at
            ``base_url`` (``Pushjet-Connectors``, fed by the same API server),
            usually published by the reverse proxy next to the API.
        :param connect_timeout: seconds to wait for a connection (default: 5).
        :param read_timeout: seconds to wait for an answer (default: 15).
        :param retries: how many times an idempotent request is retried on a
            transient failure (default: 2).
        :param verify: check the server's TLS certificate (``true``), not (``false``), or against this CA bundle.
        :param client_cert: a client certificate (PEM file) for mutual TLS (default: none).
        :param client_key: its private key (PEM file), when it is not in ``client_cert``.
        :param proxy: an HTTP(S) proxy URL, e.g. ``http://proxy:3128`` (default: the environment's).
        :param username: HTTP basic auth of the API and of the connector (a reverse proxy's), with ``password``.
        :param password: its password (never logged).
        :param headers: extra headers of every request and of the connector's handshake.
        """
        interval = max(float(poll_interval or self.MIN_POLL_INTERVAL), self.MIN_POLL_INTERVAL)
        super().__init__(poll_interval=interval, **kwargs)
        if interval != float(poll_interval or 0):
            self.logger.warning("pushjet: poll_interval raised to %.0f s (the minimum)", interval)
        tls = {"verify": verify, "client_cert": client_cert, "client_key": client_key, "proxy": proxy}
        self._set_transport("pushjet", **tls, username=username, password=password, headers=headers)
        self._open_client(
            PushjetClient, base_url, connect_timeout=connect_timeout, read_timeout=read_timeout, retries=retries
        )
        if isinstance(devices, str):
            devices = [devices]
        self._devices = [check_uuid(device) for device in devices or []]
        self._public_keys: dict[str, str] = {}  # service name -> public key (looked up lazily)
        self._store_path = state_path("pushjet", "services.json")
        self._secrets = self._known_secrets(services or {})  # service name -> secret key
        self._open_inbox("pushjet", self._events)  # what is fetched or pushed: journaled, then posted
        events = (PushjetConnectedEvent, PushjetDisconnectedEvent, PushjetAuthFailedEvent)
        self._availability = self._track_availability("Pushjet server", *events, path=POLLING)
        self._realtime_url = url = None if realtime_url is None else check_realtime_url(realtime_url)
        if url:
            self.transport.ws_options()  # a proxy the connector cannot go through is refused here
        self._realtime = self._track_availability(
            f"Pushjet connector {url} of", *events, path=REALTIME, realtime_url=url
        )
        self._channels: dict[str, RealtimeChannel] = {}  # device -> its connection to the connector
        self._channel_threads: dict[str, threading.Thread] = {}  # device -> the thread running it
        self._channels_lock = threading.Lock()
        self._paths = CrossPathFilter()  # pushed and polled: one event
        self._paths_lock = threading.Lock()
        self._wakeup = threading.Event()  # set when a device falls back to polling, and on stop

    # -- helpers -------------------------------------------------------------

    def _known_secrets(self, services: Mapping[str, ServiceConfig]) -> dict[str, str]:
        """The secrets of the services created here and of the configured ones (masked by the client)."""
        secrets = self._load_store()
        for name, config in services.items():
            secret = config if isinstance(config, str) else (config or {}).get("secret")
            try:
                secrets[str(name)] = check_secret_key(secret)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"pushjet: services.{name}: {exc}") from None
        for secret in secrets.values():
            self._client.add_secret(secret)
        return secrets

    def _load_store(self) -> dict[str, str]:
        """Secrets of the services created through this plugin."""
        try:
            with open(self._store_path, encoding="utf-8") as f:
                data = json.load(f)
            return {str(k): str(v) for k, v in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError):
            self.logger.warning("pushjet: ignoring unreadable %s", self._store_path)
            return {}

    def _save_store(self, name: str, secret: str | None) -> None:
        store = self._load_store()
        if secret is None:
            store.pop(name, None)
        else:
            store[name] = secret
        os.makedirs(os.path.dirname(self._store_path), exist_ok=True)
        tmp = self._store_path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            json.dump(store, f)
        os.replace(tmp, self._store_path)

    def _device(self, device: str | None) -> str:
        if device is not None:
            return check_uuid(device)
        if not self._devices:
            raise InvalidArgumentError("no device given, and none is configured (pushjet.devices)")
        return self._devices[0]

    def _secret(self, service: str | None, secret_key: str | None) -> str:
        if secret_key is not None:
            secret = check_secret_key(secret_key)
            self._client.add_secret(secret)
            return secret
        if service is None:
            raise InvalidArgumentError(
                "this action needs the service's secret: pass service=<name of a configured service> or secret_key"
            )
        if service in self._secrets:
            return self._secrets[service]
        known = ", ".join(sorted(self._secrets)) or "none"
        hint = " (a public key grants no write access)" if PUBLIC_KEY_RE.match(str(service)) else ""
        raise InvalidArgumentError(
            f"no secret known for service {_shown(service)}{hint}; configured services: {known}; or pass secret_key"
        )

    def _public_key(self, service: str) -> str:
        if service in self._secrets:
            if service not in self._public_keys:
                found = self._client.get_service(secret_key=self._secrets[service])
                self._public_keys[service] = found.public_key
            return self._public_keys[service]
        if not isinstance(service, str) or not PUBLIC_KEY_RE.match(service):
            known = ", ".join(sorted(self._secrets)) or "none"
            raise InvalidArgumentError(
                f"{_shown(service)} is neither a service public key nor a configured service name (known: {known})"
            )
        return check_public_key(service)

    def _service_dict(self, service: Service, alias: str | None = None) -> JSONObject:
        data = service.to_dict()
        names = [n for n, pk in self._public_keys.items() if pk == service.public_key]
        if alias or names:
            data["alias"] = alias or names[0]
        return data

    # -- services ------------------------------------------------------------

    @action
    def create_service(
        self, name: str, icon_url: str | None = None, alias: str | None = None, include_secret: bool = False
    ) -> JSONObject:
        """
        Create a Pushjet service. Its secret key is kept by the plugin (in
        Platypush's workdir), so later actions can use ``service=<alias>``.

        :param name: display name of the service.
        :param icon_url: URL of the service's icon (optional).
        :param alias: name under which the secret is kept (default: ``name``;
            at most 100 printable characters).
        :param include_secret: also return the secret key (default: false; the
            answer may be logged, so only ask for it when you must share it).
        :return: the service, e.g.

            .. code-block:: json

                {"public_key": "4be3-eda97a-0d7faeab05a0-89403-ad4751c49",
                 "name": "Alerts", "icon_url": null, "created": 1795303005,
                 "alias": "alerts"}
        """
        alias = check_alias(alias if alias is not None else check_name(name).strip())  # before the service exists
        service = self._client.create_service(name, icon_url)
        assert service.secret_key
        self._secrets[alias] = service.secret_key
        self._public_keys[alias] = service.public_key
        self._save_store(alias, service.secret_key)
        data = self._service_dict(service, alias)
        if include_secret:
            data["secret_key"] = service.secret_key
        return data

    @action
    def get_service(
        self, secret_key: str | None = None, public_key: str | None = None, service: str | None = None
    ) -> JSONObject:
        """
        Get a service's current name, icon and creation time.

        :param secret_key: the service's secret key.
        :param public_key: or its public key.
        :param service: or a configured service name (or a public key).
        :return: the service, e.g. ``{"public_key": "...", "name": "Alerts",
            "icon_url": "https://example.org/icon.png", "created": 1795303005}``.
        """
        if public_key is not None:
            found = self._client.get_service(public_key=public_key)
        elif secret_key is not None:
            found = self._client.get_service(secret_key=self._secret(None, secret_key))
        elif service is not None:
            if service in self._secrets:
                found = self._client.get_service(secret_key=self._secrets[service])
                self._public_keys[service] = found.public_key
            else:
                found = self._client.get_service(public_key=self._public_key(service))
        else:
            raise InvalidArgumentError("give secret_key, public_key or service")
        return self._service_dict(found)

    @action
    def edit_service(
        self,
        name: str | None = None,
        icon_url: str | None = None,
        service: str | None = None,
        secret_key: str | None = None,
    ) -> JSONObject:
        """
        Rename a service and/or change its icon.

        :param name: the new name.
        :param icon_url: the new icon URL; an empty string removes the icon.
        :param service: a configured service name (or pass ``secret_key``).
        :param secret_key: the service's secret key.
        :return: the service as it is now.
        """
        secret = self._secret(service, secret_key)
        self._client.edit_service(secret, name=name, icon_url=icon_url)
        return self._service_dict(self._client.get_service(secret_key=secret))

    @action
    def delete_service(self, service: str | None = None, secret_key: str | None = None) -> JSONObject:
        """
        Delete a service with its subscriptions and messages. Irreversible.

        :param service: a configured service name (or pass ``secret_key``).
        :param secret_key: the service's secret key.
        :return: ``{"deleted": true}``
        """
        secret = self._secret(service, secret_key)
        self._client.delete_service(secret)
        for name in [n for n, s in self._secrets.items() if s == secret]:
            self._public_keys.pop(name, None)
            if name in self._load_store():
                self._save_store(name, None)
                del self._secrets[name]
        return {"deleted": True}

    @action
    def send(
        self,
        message: str,
        title: str | None = None,
        link: str | None = None,
        importance: int | None = None,
        service: str | None = None,
        secret_key: str | None = None,
    ) -> JSONObject:
        """
        Send a message to a service's subscribers.

        :param message: the text.
        :param title: a title (optional).
        :param link: a URL attached to the message (optional).
        :param importance: from 1 (least) to 5 (most important); the server's
            default is 3.
        :param service: a configured service name (or pass ``secret_key``).
        :param secret_key: the service's secret key.
        :return: ``{"sent": true}``
        """
        self._client.send(self._secret(service, secret_key), message, title=title, link=link, importance=importance)
        return {"sent": True}

    # -- devices -------------------------------------------------------------

    @action
    def subscribe(self, service: str, device: str | None = None) -> JSONObject:
        """
        Subscribe a device to a service.

        :param service: the service's public key, or a configured service name.
        :param device: the device UUID (default: the first configured device).
        :return: the service subscribed to.
        """
        device_uuid = self._device(device)
        return self._service_dict(self._client.subscribe(device_uuid, self._public_key(service)))

    @action
    def unsubscribe(self, service: str, device: str | None = None) -> JSONObject:
        """
        Unsubscribe a device from a service.

        :param service: the service's public key, or a configured service name.
        :param device: the device UUID (default: the first configured device).
        :return: ``{"unsubscribed": true}``
        """
        device_uuid = self._device(device)
        self._client.unsubscribe(device_uuid, self._public_key(service))
        return {"unsubscribed": True}

    @action
    def get_subscriptions(self, device: str | None = None) -> list[JSONObject]:
        """
        List a device's subscriptions.

        :param device: the device UUID (default: the first configured device).
        :return: e.g.

            .. code-block:: json

                [{"service": {"public_key": "...", "name": "Alerts", "icon_url": null,
                              "created": 1795303005},
                  "device_uuid": "...", "time_subscribed": 1795303005,
                  "last_checked": 1795303010}]
        """
        return [s.to_dict() for s in self._client.get_subscriptions(self._device(device))]

    @action
    def get_messages(self, device: str | None = None) -> list[JSONObject]:
        """
        Fetch a device's new messages. The server marks them read, so each
        message is returned once; it is also posted as a
        :class:`platypush_ext.pushjet.events.PushjetMessageEvent`, as the
        listener would. A malformed message is left out (dropped with one log
        line and counted in ``status``).

        :param device: the device UUID (default: the first configured device).
        :return: e.g.

            .. code-block:: json

                [{"message": "Door opened", "title": "Home", "link": null,
                  "importance": 4, "time_sent": 1795303005,
                  "service": {"public_key": "...", "name": "Alerts",
                              "icon_url": null, "created": 1795303000}}]
        """
        return [m.to_dict() for m in self._fetch(self._device(device))]

    @action
    def mark_read(self, device: str | None = None) -> JSONObject:
        """
        Mark every message of a device read without fetching it.

        :param device: the device UUID (default: the first configured device).
        :return: ``{"marked_read": true}``
        """
        self._client.mark_read(self._device(device))
        return {"marked_read": True}

    @action
    def status(self) -> JSONObject:
        """
        The plugin's state.

        :return: e.g. ``{"base_url": "...", "devices": ["..."], "services": ["alerts"],
            "reachable": true, "credentials_rejected": null, "path": "realtime", "realtime": {"url": "wss://...",
            "connected": ["..."], "merged": 0}, "dropped": 1, "recent_drops": [{"id": 7,
            "element": null, "source": "<device uuid>", "reason": "level: out of range [1, 5]
            (got 9)"}], "journal": {"pending": 0, "posted": 12, "dropped": 1, "duplicates": 0}}``.
            ``path``: how messages arrive now, ``realtime`` when every device is on the
            connector, else ``polling``; ``realtime`` is ``null`` without a ``realtime_url``
            (``merged``: messages that arrived both pushed and polled, posted once);
            ``dropped``: the malformed messages the server ever sent, each dropped with one
            log line; ``recent_drops``: the newest 5; ``duplicates``: deliveries beyond a
            message's first, e.g. re-posted after a crash.
        """
        self._scan_health()  # entities.scan calls status
        connected = [d for d, _, path in self._device_states() if path == REALTIME]
        realtime = {"url": self._realtime_url, "connected": connected, "merged": self._paths.duplicates}
        return {
            "base_url": self._client.base_url,
            "devices": list(self._devices),
            "services": sorted(self._secrets),
            "reachable": self._availability.up,
            **self._credentials_status(),
            "path": REALTIME if self._devices and len(connected) == len(self._devices) else POLLING,
            "realtime": realtime if self._realtime_url else None,
            **self.inbox.status(),
        }

    def _device_states(self) -> list[health.DeviceState]:
        """Each device: connected (on the connector, or the last poll answered), and its path."""
        pushed = {d for d in self._devices if d in self._channels and self._channels[d].up}
        return [
            (d, True if d in pushed else self._availability.up, REALTIME if d in pushed else POLLING)
            for d in self._devices
        ]

    # -- listener ------------------------------------------------------------

    def _fetch(self, device: str) -> list[Message]:
        """Fetch, journal, then post the device's new messages; returns those that could be read.

        Each message object of the answer is journaled on its own (one that cannot be read is dropped
        alone, with one log line); an answer that cannot be read at all (not UTF-8, not JSON, nested
        too deeply: the fetch was destructive anyway) is journaled as received, then dropped."""
        with self.inbox.lock:  # one fetch-journal-post at a time (the listener, actions, the connector)
            body = self._client.http.request("GET", "message", params={"uuid": check_uuid(device)}, idempotent=False)
            try:
                answer = untrusted.loads(body.content, "GET /message")
            except ProtocolError:
                payloads: list[JSON] = [untrusted.received(body.content)]
            else:
                payloads = self._admit(POLLING, device, _messages_of(answer))
            self.inbox.receive(device, payloads)
            messages = []
            for payload in payloads:
                try:
                    messages.append(Message.from_json(payload))
                except ProtocolError:
                    pass  # dropped (and logged once) by post_pending
            self.post_pending()
        return messages

    def _events(self, entry: Entry) -> list[PushjetMessageEvent]:
        """The event of a journaled message: a message object, or a connector frame (text) as received.
        Raises :class:`ProtocolError` (without secrets) for one that cannot be read: the journal drops it."""
        try:
            payload = entry.payload
            message = message_of_frame(payload) if isinstance(payload, str) else Message.from_json(payload)
        except ProtocolError as exc:
            raise ProtocolError(self._client.redact(exc)) from None
        return [
            PushjetMessageEvent(
                message=message.message,
                title=message.title,
                link=message.link,
                importance=message.importance,
                sent_at=message.time_sent,
                service=message.service.public_key,
                service_name=message.service.name,
                service_icon=message.service.icon_url,
                device=entry.source,
                journal_id=entry.id,
            )
        ]

    def _pushed(self, device: str, frame: str, payload: JSON) -> None:
        """Journal, then post a message frame of the connector as received (unless its message arrived
        polled already); a frame that cannot be read is journaled too, then dropped.

        :param device: the device it came for.
        :param frame: the frame's text (:func:`~platypush_ext.core.untrusted.received`).
        :param payload: its message object, ``None`` when it cannot be read.
        """
        if payload is None or self._admit(REALTIME, device, [payload]):
            self.inbox.receive(device, [frame])
        self.deliver_soon()  # never waits for the bus: the next frame is read at once

    def _admit(self, path: str, device: str, payloads: list[JSON]) -> list[JSON]:
        """The payloads not already received by the other path (the connector and the poller
        run in threads of their own)."""
        with self._paths_lock:
            return self._paths.admit(path, device, payloads)

    def poll_once(self) -> None:
        """Fetch every configured device's new messages once (raises on failure)."""
        for device in self._devices:
            self._fetch(device)

    # -- the listener's steps (ListeningPlugin.main runs them) ------------------

    def _idle(self) -> str | None:
        return None if self._devices else "no devices configured"

    def _start_listeners(self) -> None:
        """Show the devices on the Home panel; connect each to the connector (with a ``realtime_url``)."""
        states = self._device_states  # on the Home panel (pushjet/health.py)
        self._watch_health("pushjet", lambda: health.device_entities(states()), self._should_stop)
        if self._realtime_url:
            for device in self._devices:
                self._start_channel(device)

    def _listen(self) -> None:
        """Poll until stopped (only the devices that are not on the connector)."""
        Listener(
            self._poll,
            self._should_stop,
            backoff=Backoff(base=self.BACKOFF_BASE, cap=60.0),
            on_down=self._availability.failed,
            auth_backoff=self._auth_backoff(),
        ).run()

    def _stop_listeners(self, timeout: float) -> None:
        """Wake the poller, close every connection to the connector (at once: the connector sees
        them gone before it pushes more) and wait (at most ``timeout`` s) for their threads.

        :param timeout: seconds.
        """
        self._wakeup.set()
        with self._channels_lock:  # closed channels stay listed (not up) until replaced
            channels, threads = list(self._channels.values()), list(self._channel_threads.values())
        for channel in channels:
            channel.close()
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _poll(self) -> float:
        """Poll the devices that are not on the connector; sleep while none is. While the server refuses
        the credentials, every device is polled: the next try tells whether they work again, also once
        every device is back on the connector (the paths' journal merges what both bring)."""
        refused = self._availability.rejected_since is not None
        devices = [d for d in self._devices if refused or not (d in self._channels and self._channels[d].up)]
        if not devices:
            self._wakeup.wait(self.IDLE_WAIT)
            self._wakeup.clear()
            return 0.0
        for device in devices:
            self._fetch(device)
        self._availability.ok()
        return self.poll_interval

    def _start_channel(self, device: str) -> threading.Thread:
        """Connect ``device`` to the connector in a thread of its own (reconnecting with backoff);
        the running one if there is one: never two connections per device."""
        with self._channels_lock:
            running = self._channel_threads.get(device)
            if running is not None and running.is_alive() and not self._channels[device].stopping.is_set():
                return running
            listener: Listener | None = None

            def deliver(frame: str, payload: JSON) -> None:
                assert listener is not None
                listener.delivered()  # a connection that brings messages proved itself
                self._pushed(device, frame, payload)

            channel = RealtimeChannel(
                self._realtime_url or "",
                device,
                deliver,
                lambda: listener.connected() if listener else None,
                connect_timeout=self._client.http.timeouts.connect,
                ping_interval=self.PING_INTERVAL,
                ping_timeout=self.PING_TIMEOUT,
                options=self.transport.ws_options(),
            )
            listener = Listener(
                channel.step,
                channel.stopping,
                backoff=Backoff(base=self.BACKOFF_BASE, cap=self.REALTIME_BACKOFF_CAP),
                on_up=self._realtime.ok,
                on_down=self._realtime_down,
                on_unexpected=self._realtime_broken,
                settle=self.REALTIME_SETTLE,
                auth_backoff=self._auth_backoff(),
            )
            thread = threading.Thread(target=listener.run, name=f"pushjet-realtime-{device[:8]}", daemon=True)
            self._channels[device], self._channel_threads[device] = channel, thread
            thread.start()
            return thread

    def _realtime_down(self, error: Exception) -> None:
        """A device lost the connector: poll it at once (and until the connector is back)."""
        self._wakeup.set()
        if self._health is not None:
            self._health.poke()
        self._realtime.failed(error)

    def _realtime_broken(self, error: Exception) -> None:
        """An unexpected failure in a device's connection (e.g. the journal could not be written):
        logged; the connection goes on."""
        self.logger.error("pushjet: a pushed message was not journaled: %r (the connection goes on)", error)
