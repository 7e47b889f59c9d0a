"""The ``mbed`` Platypush plugin: thin glue over :class:`MbedClient` and the notification channels."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

from platypush.entities import Entity
from platypush.entities.managers.sensors import SensorEntityManager
from platypush.entities.managers.switches import DimmerEntityManager, SwitchEntityManager
from platypush.message.event import Event
from platypush.message.response import Response
from redis.exceptions import RedisError

from platypush.plugins import RunnablePlugin

from ..core.errors import InvalidArgumentError, ProtocolError
from ..core.journal import Entry, Rejected
from ..core.text import one_line
from ..core.untrusted import JSON, JSONObject, received
from ..glue.actions import action
from ..glue.delivery import Made
from ..glue.entities import FastEntities
from ..glue.plugin import ListeningPlugin
from .channel_actions import CHANNELS, ChannelActions
from .checks import check_rules
from .client import MbedClient
from .device_actions import DeviceActions
from .entities import Endpoint, EntitySync, Fleet, remove_from_platypush, to_platypush
from .events import EVENT_CLASSES, MbedAuthFailedEvent, MbedConnectedEvent, MbedDisconnectedEvent
from .ipso import EntityMap
from .messages import Notification, parse_message, refused_note
from .receiver import server_tls


class MbedPlugin(  # FastEntities: entities saved at once, only what changed (glue/entities.py)
    DeviceActions,
    FastEntities,
    ChannelActions,
    ListeningPlugin,
    RunnablePlugin,
    SwitchEntityManager,
    DimmerEntityManager,
    SensorEntityManager,
):
    """
    `mbed Device Connector <https://github.com/ARMmbed/Connector-mDS-REST-API>`_
    (and its successors Pelion / Izuma Device Management): read, write and
    execute device resources, manage subscriptions, and receive the account's
    notification channel as events — one
    :class:`platypush_ext.mbed.events.MbedNotificationEvent` per resource change,
    registration events, and async responses.

    Device requests are asynchronous on the service; the actions wait for the
    answer on the notification channel and return it as a plain value, so the
    listener must run (``channel`` other than ``none``).

    Example configuration:

    .. code-block:: yaml

        mbed:
          base_url: https://api.us-east-1.mbedcloud.com
          api_key: ak_...
          channel: websocket      # auto (websocket with Pelion / Izuma, else long_poll), long_poll, callback

    Every NotificationMessage (a pull's answer, a callback body — before it is
    acknowledged —, a WebSocket frame) is first written to a local journal (in
    Platypush's workdir); it counts as delivered only once a subscriber of
    Platypush's bus received its events, and is posted again otherwise (after a
    restart or a crash too: at-least-once). Each event carries a ``journal_id``
    (``"<message>.<element>"``) that is the same in a re-post (``docs/delivery.md``).

    The registered endpoints show on Platypush's Home panel as entities: a
    device per endpoint, its IPSO resources (temperature, humidity, battery,
    switches, dimmers…) as live sensors and controls (``on``, ``off``,
    ``toggle``, ``set_value``), kept live by the notification channel.
    """

    _client: MbedClient

    #: Requests in flight at once while the entities are synced.
    ENTITIES_CONCURRENCY = 4

    def __init__(
        self,
        base_url: str,
        api_key: str,
        channel: str = "auto",
        api: str = "auto",
        connect_timeout: float = 5,
        read_timeout: float = 15,
        pull_timeout: float = 40,
        async_timeout: float = 20,
        retries: int = 2,
        callback_bind: str = "127.0.0.1",
        callback_port: int = 0,
        callback_url: str | None = None,
        callback_max_body: int = 1 << 20,
        entities_enabled: bool = True,
        entities: Mapping[str, Mapping[str, JSON]] | None = None,
        entities_max_reads: int = 100,
        verify: bool | str = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        proxy: str | None = None,
        callback_tls_cert: str | None = None,
        callback_tls_key: str | None = None,
        device_request_retry: int | None = None,
        device_request_expiry_seconds: int | None = None,
        stale_after: float = 600,
        directory_interval: float = 300,
        **kwargs: JSON,
    ):
        """
        :param base_url: the service's base URL, e.g.
            ``https://api.us-east-1.mbedcloud.com`` (Pelion / Izuma) or a
            self-hosted Device Server; the Connector's historic
            ``https://api.connector.mbed.com`` is retired. Required.
        :param api_key: the account's access key (``ak_...`` on Pelion / Izuma).
        :param channel: how notifications are received: ``auto`` (default:
            ``websocket`` with Pelion / Izuma, ``long_poll`` otherwise), ``long_poll``
            (each poll is held ~30 s by the service; deprecated by Pelion),
            ``callback`` (a small HTTP receiver started by the plugin, see
            ``callback_*``), ``websocket`` (Pelion / Izuma) or ``none`` (no
            listener: asynchronous actions then time out).
        :param api: ``connector``, ``pelion`` or ``auto`` (``pelion`` for
            ``*.mbedcloud.com`` / ``*.izumanetworks.com``): with ``pelion``,
            device requests go through ``/v2/device-requests`` with our own ids.
        :param connect_timeout: seconds to wait for a connection (default: 5).
        :param read_timeout: seconds to wait for an answer (default: 15).
        :param pull_timeout: read timeout of one long poll (default: 40; above
            the service's 30-s hold).
        :param async_timeout: default seconds an action waits for a device's
            answer (default: 20, at most 55).
        :param retries: retries of idempotent requests on transient failures (default: 2).
        :param callback_bind: address the callback receiver listens on (default: ``127.0.0.1``).
        :param callback_port: its port (default: 0 = any free port).
        :param callback_url: the URL the service must call when it differs from
            ``http://<callback_bind>:<port>/mbed/callback`` (reverse proxy, NAT).
        :param callback_max_body: the largest callback body accepted, in bytes
            (default: 1 MiB; larger ones are answered ``413``).
        :param entities_enabled: show the endpoints on the Home panel as entities (default: true).
        :param entities: how to show resources the IPSO map does not know, or differently, e.g.
            ``{"/26241/0/1": {"type": "temperature", "unit": "°C"}}`` (``/26241/*/1``: every
            instance; ``type: none`` hides one); see ``docs/mbed.md``.
        :param entities_max_reads: device reads at start-up for values the service has not cached
            (default: 100; the others show with their first notification).
        :param verify: check the server's TLS certificate (``true``), not (``false``), or against this CA bundle.
        :param client_cert: a client certificate (PEM file) for mutual TLS (default: none).
        :param client_key: its private key (PEM file), when it is not in ``client_cert``.
        :param proxy: an HTTP(S) proxy URL, e.g. ``http://proxy:3128`` (default: the environment's).
        :param callback_tls_cert: a certificate (PEM file): the callback receiver speaks HTTPS (Pelion requires it).
        :param callback_tls_key: its private key (PEM file), when it is not in ``callback_tls_cert``.
        :param device_request_retry: Pelion / Izuma: the ``retry`` of every device request that
            gives none (0-10; default: the service's, 0, or 2 for a queue-mode device).
        :param device_request_expiry_seconds: Pelion / Izuma: how long the service keeps a device
            request for a device it cannot reach (60-2592000; default: the service's, 2 h, or 3 days
            for a queue-mode device). Both are refused in one line with the Connector API.
        :param stale_after: seconds after which a device that de-registered or expired (and did not
            come back) leaves the Home panel and the plugin's memory (default: 600).
        :param directory_interval: seconds between two reads of the device list, which shows
            suspensions and removes the devices gone from it (default: 300; 0: never).
        """
        super().__init__(**{"poll_interval": 1, **kwargs})
        if channel not in CHANNELS + ("auto",):
            raise InvalidArgumentError(f"mbed: channel must be one of auto, {', '.join(CHANNELS)}, got {channel!r}")
        self._set_transport("mbed", verify=verify, client_cert=client_cert, client_key=client_key, proxy=proxy)
        self._open_client(  # packed: the constructor stays within 50 lines
            MbedClient, base_url, api_key, api=api, connect_timeout=connect_timeout, read_timeout=read_timeout,
            retries=retries, pull_timeout=float(pull_timeout), async_timeout=float(async_timeout),
            device_retry=device_request_retry, device_expiry_seconds=device_request_expiry_seconds,
        )  # fmt: skip
        callback = dict(bind=callback_bind, port=int(callback_port), public_url=callback_url)
        callback["tls"] = server_tls(callback_tls_cert, callback_tls_key)
        channel = self._open_channel(channel, {**callback, "max_body": int(callback_max_body)})
        self.events_posted = 0
        self._open_inbox("mbed", self._journaled_events, keep_posted=2000)  # every NotificationMessage
        events = (MbedConnectedEvent, MbedDisconnectedEvent, MbedAuthFailedEvent)  # up, down, key refused
        self._availability = self._track_availability(f"mbed channel ({channel}) at", *events, channel=channel)
        churn = {"stale_after": float(stale_after), "directory_interval": float(directory_interval)}
        self._sync = self._entity_sync_for(entities, int(entities_max_reads), churn) if entities_enabled else None

    def __new__(cls, *args: JSON, **kwargs: JSON) -> MbedPlugin:
        # An entity manager registers itself in Platypush's Redis when it is created; without
        # Redis (a script reading the configuration) the plugin still works, off the dashboard.
        try:
            return super().__new__(cls, *args, **kwargs)
        except RedisError as exc:
            logging.getLogger("platypush_ext.mbed").warning("mbed: not in the entity registry: %s", one_line(exc))
            return object.__new__(cls)

    def __repr__(self) -> str:
        return f"MbedPlugin({self._client!r}, channel={self._channel_name!r})"

    @property
    def client(self) -> MbedClient:
        """The underlying framework-free client."""
        return self._client

    # -- notifications ---------------------------------------------------------

    def record(self, message: JSON) -> int:
        """Durably journal one NotificationMessage as it was received; returns its journal id.

        :param message: the message (bytes, JSON text, or a dict).
        """
        payload = received(message) if isinstance(message, (bytes, bytearray, str)) else message
        return self.inbox.receive(self._channel_name, [payload])[0]

    def record_refused(self, reason: str) -> int:
        """Journal a message that was refused before it could be kept (e.g. a callback body over
        ``callback_max_body``): it is dropped, logged and counted like a malformed one.

        :param reason: why, in one line.
        """
        return self.inbox.receive(self._channel_name, [refused_note(reason)])[0]

    def on_message(self, message: JSON, journal_id: int | None = None) -> int:
        """Turn one NotificationMessage into events and post them (with the journal's other
        pending messages); returns how many events it holds. The message is parsed as it was
        journaled: one that cannot be read is dropped whole, a malformed element alone (the
        journal logs each once and counts it, :meth:`status`); the others are posted.

        :param message: the message (bytes, JSON text or a dict), as received.
        :param journal_id: its journal id, when the channel already journaled it.
        """
        if journal_id is None:
            journal_id = self.record(message)
        built: Made
        items: list[Notification] = []
        try:
            items, rejected = self._parsed(message)
        except ProtocolError as exc:
            built = exc  # the journal drops the message, with this reason
        else:
            self._client.handle_items(items)  # answers the waiting actions
            if self._sync is not None:
                self._sync.handle(items)
            built = self._events(items, journal_id) + rejected
            self.events_posted += len(items)
        self.deliver_soon({journal_id: built})  # made already: not parsed again; never waits for the bus
        return len(items)

    def _parsed(self, payload: JSON) -> tuple[list[Notification], list[Rejected]]:
        """A journaled message's elements and refused elements (reasons without secrets)."""
        try:
            items, rejected = parse_message(payload)
        except ProtocolError as exc:
            raise ProtocolError(self._client.redact(exc)) from None
        redact = self._client.redact
        return items, [Rejected(r.element, redact(r.reason), redact(r.excerpt)) for r in rejected]

    def _journaled_events(self, entry: Entry) -> list[Event | Rejected]:
        """The events (and refused elements) of a journaled message; raises :class:`ProtocolError`
        for a message that cannot be read (the journal drops it)."""
        items, rejected = self._parsed(entry.payload)
        return self._events(items, entry.id) + rejected

    def _events(self, items: list[Notification], journal_id: int) -> list[Event]:
        return [
            EVENT_CLASSES[item.kind](**item.data, journal_id=f"{journal_id}.{index}")
            for index, item in enumerate(items)
        ]

    # -- the listener's steps (ListeningPlugin.main runs them) ----------------------

    def _start_listeners(self) -> None:
        """Sync the entities, start the notification channel (unless ``none`` or stopped)."""
        if self._sync is not None:
            self._sync.start()
        if self._channel_enabled:
            self._start_channel()
        else:
            self.logger.info("mbed: no notification channel (channel: none or stopped)")

    def _stop_listeners(self, timeout: float) -> None:
        """Release the channel: a held long poll's connection is shut down (the service keeps what
        comes next for the next poll), the callback receiver closes (the service retries), the
        WebSocket is closed. When the plugin stops, the entity sync stops too (for good).

        :param timeout: seconds to wait for the channel's thread.
        """
        self._stop_channel(timeout)
        if self._sync is not None and self.should_stop():
            self._sync.stop()

    # -- actions: service --------------------------------------------------------

    @action
    def get_connector_version(self) -> str:
        """
        The service's version text (``GET /``; the Connector only).

        :return: e.g. ``"DeviceServer v3.0.0-520\\nREST version = v2"``
        """
        return self._client.get_connector_version()

    @action
    def get_api_versions(self) -> list[str]:
        """
        The REST API versions the service accepts (the Connector only).

        :return: e.g. ``["v1", "v2"]``
        """
        return self._client.get_api_versions()

    @action
    def get_limits(self) -> JSONObject:
        """
        The account's daily quotas and counters (the Connector only).

        :return: e.g. ``{"transaction-quota": 10000, "transaction-count": 7845,
            "endpoint-quota": 100, "endpoint-count": 50}``
        """
        return self._client.get_limits()

    @action
    def get_endpoints(self, type: str | None = None) -> list[JSONObject]:
        """
        List the registered endpoints (devices). On Pelion / Izuma this reads every page
        of the device directory (``/v3/devices/``); ``name`` is then the platform's device
        id, which every other action takes as ``endpoint``, and ``label`` the device's own
        name (on the Connector both are the endpoint name).

        :param type: only endpoints of this type (``ept``), e.g. ``Light``.
        :return: e.g. ``[{"name": "015f3850a657000000000001001002ab", "label": "node-001",
            "type": "Light", "status": "ACTIVE", "q": false}]``
        """
        return self._client.get_endpoints(type=type)

    @action
    def get_resources(self, endpoint: str) -> list[JSONObject]:
        """
        List an endpoint's resources (from the service's cache; never wakes the device).

        :param endpoint: the endpoint name.
        :return: e.g. ``[{"uri": "/3303/0/5700", "rt": "5700", "obs": true, "type": "text/plain"}]``
        """
        return self._client.get_resources(endpoint)

    # -- actions: subscriptions -------------------------------------------------

    @action
    def subscribe(
        self, endpoint: str, path: str, timeout: float | None = None, rules: Mapping[str, float] | None = None
    ) -> JSONObject:
        """
        Subscribe to a resource: each change becomes an ``MbedNotificationEvent``.
        The resource must be observable.

        :param endpoint: the endpoint name.
        :param path: the resource path, e.g. ``/3303/0/5700``.
        :param timeout: seconds to wait for the device to accept.
        :param rules: notification rules set first (Pelion / Izuma), e.g.
            ``{"pmin": 10, "pmax": 120, "st": 0.5}``; see ``set_notification_rules``.
        :return: ``{"subscribed": true}`` (plus ``rules`` when given)
        """
        result: JSONObject = {"subscribed": self._client.subscribe(endpoint, path, timeout=timeout, rules=rules)}
        if rules is not None:
            result["rules"] = check_rules(rules)
        return result

    @action
    def unsubscribe(self, endpoint: str, path: str) -> JSONObject:
        """
        Remove the subscription to a resource.

        :param endpoint: the endpoint name.
        :param path: the resource path.
        :return: ``{"unsubscribed": true}``
        """
        self._client.unsubscribe(endpoint, path)
        return {"unsubscribed": True}

    @action
    def get_resource_subscription(self, endpoint: str, path: str) -> bool:
        """
        Whether a resource is subscribed.

        :param endpoint: the endpoint name.
        :param path: the resource path.
        :return: ``true`` or ``false``
        """
        return self._client.get_resource_subscription(endpoint, path)

    @action
    def get_endpoint_subscriptions(self, endpoint: str) -> list[str]:
        """
        The subscribed resources of an endpoint.

        :param endpoint: the endpoint name.
        :return: e.g. ``["/3303/0/5700"]`` (``[]`` when none)
        """
        return self._client.get_endpoint_subscriptions(endpoint)

    @action
    def delete_endpoint_subscriptions(self, endpoint: str) -> JSONObject:
        """
        Remove every subscription of an endpoint.

        :param endpoint: the endpoint name.
        :return: ``{"unsubscribed": true}``
        """
        self._client.delete_endpoint_subscriptions(endpoint)
        return {"unsubscribed": True}

    @action
    def delete_all_subscriptions(self) -> JSONObject:
        """
        Remove every subscription of the account (on Pelion: the pre-subscriptions).

        :return: ``{"unsubscribed": true}``
        """
        self._client.delete_all_subscriptions()
        return {"unsubscribed": True}

    @action
    def put_pre_subscriptions(self, rules: Sequence[Mapping[str, JSON]]) -> JSONObject:
        """
        Replace the pre-subscriptions: rules applied whenever a matching device
        registers. The service removes every existing subscription when they change.

        :param rules: e.g. ``[{"endpoint-name": "node*", "resource-path": ["/3303/*"]},
            {"endpoint-type": "Sensor"}]``; ``[]`` clears them. Validated before sending.
        :return: ``{"rules": <number of rules>}``
        """
        self._client.put_pre_subscriptions(rules)
        return {"rules": len(rules)}

    @action
    def get_pre_subscriptions(self) -> list[JSONObject]:
        """
        The pre-subscription rules.

        :return: e.g. ``[{"endpoint-name": "node*"}]``
        """
        return self._client.get_pre_subscriptions()

    @action
    def status(self) -> JSONObject:
        """
        The plugin's state.

        :return: e.g. ``{"base_url": "...", "api": "connector", "channel": "long_poll", "running": true,
            "channel_error": null, "reachable": true, "credentials_rejected": null, "events_posted": 12,
            "dropped": 1, "recent_drops": [{"id": 41, "element": "notifications[2]", "source":
            "long_poll", "reason": "max-age: expected a whole, finite number (got inf)"}],
            "journal": {"pending": 0, "posted": 3, "dropped": 1, "duplicates": 0}, "entities":
            {"endpoints": 5, "tracked": 5, "republished": 5, "listings": 5, "subscriptions": 13,
            "cache_reads": 13, "device_reads": 13, "errors": 0, "removed": 0, "saved": 25, "skipped": 4,
            "save_errors": 0}}``
            (``dropped``: the malformed elements and unreadable messages the service ever sent, each
            dropped with one log line; ``recent_drops``: the newest 5, ``element`` ``null`` for a
            whole message; ``journal`` counts NotificationMessages; ``duplicates``: deliveries beyond
            a message's first; ``channel_error``: why the channel ended on its own, e.g. another
            channel type that could not be removed; ``entities``: the shown endpoints, ``tracked``
            every endpoint held in memory, the requests made for them, ``removed`` the endpoints that left
            for good (``stale_after``), the entities saved and skipped (unchanged), ``null`` when disabled;
            ``republished``: endpoints published again by this call, at most 100, the next ones next time)
        """
        return {
            "base_url": self._client.base_url,
            "api": "pelion" if self._client.pelion else "connector",
            "channel": self._channel_name,
            "running": self._channel is not None and self._channel.failure is None,
            "channel_error": self._channel.failure if self._channel is not None else None,
            "reachable": self._availability.up,
            **self._credentials_status(),
            "events_posted": self.events_posted,
            **self.journal.drops(),
            "journal": self.journal.counts(),
            "entities": self._publish_all(),
        }

    # -- entities ------------------------------------------------------------------

    def transform_entities(self, entities: Collection[Endpoint], **_: object) -> Collection[Entity]:
        """The fleet's endpoints as Platypush entities (``entities.to_platypush``).

        :param entities: :class:`platypush_ext.mbed.entities.Endpoint` objects.
        """
        return super().transform_entities(to_platypush(entities))

    def _publish_all(self) -> dict[str, int] | None:
        """Publish a bounded sample of the fleet again (``entities.scan`` calls ``status``); the counts."""
        return None if self._sync is None else self._sync.republish(self.publish_entities, self.entity_publisher)

    def _entity_sync_for(
        self, entities: Mapping[str, Mapping[str, JSON]] | None, max_reads: int, churn: Mapping[str, float]
    ) -> EntitySync:
        fleet = Fleet(EntityMap(entities))
        ready = lambda: bool(self._availability.up)  # noqa: E731 - device answers come through the channel
        return EntitySync(
            self._client,
            fleet,
            self.publish_entities,
            ready,
            self.ENTITIES_CONCURRENCY,
            max_reads,
            remove=self._remove_entities,
            **churn,
        )

    def _remove_entities(self, endpoints: list[Endpoint]) -> None:
        """Endpoints that left for good: off the Home panel (a failure is one log line).

        :param endpoints: the endpoints.
        """
        try:
            remove_from_platypush(endpoints)
        except Exception as exc:  # noqa: BLE001 - no database (a script), or it is busy: the next start forgets them
            self.logger.warning(
                "mbed: could not remove %d endpoint(s) from the entities: %s", len(endpoints), one_line(exc)
            )

    def _entity_sync(self) -> EntitySync:
        if self._sync is None:
            raise InvalidArgumentError("entities are disabled (entities_enabled: false)")
        return self._sync

    @action
    def on(self, entity: str) -> JSONObject:
        """
        Turn an on/off entity on (a light, a power switch, a digital output).

        :param entity: the entity id, ``<endpoint><path>``, e.g. ``node-001/3311/0/5850``.
        :return: ``{"entity": "node-001/3311/0/5850", "value": true}``
        """
        return self._entity_sync().write(entity, True)

    @action
    def off(self, entity: str) -> JSONObject:
        """
        Turn an on/off entity off.

        :param entity: the entity id, e.g. ``node-001/3311/0/5850``.
        :return: ``{"entity": "node-001/3311/0/5850", "value": false}``
        """
        return self._entity_sync().write(entity, False)

    @action
    def toggle(self, entity: str) -> JSONObject:
        """
        Switch an on/off entity to the opposite of its current state.

        :param entity: the entity id, e.g. ``node-001/3311/0/5850``.
        :return: ``{"entity": "node-001/3311/0/5850", "value": true}``
        """
        return self._entity_sync().write(entity, toggle=True)

    @action
    def set_value(self, entity: str, value: JSON) -> JSONObject:
        """
        Set a writable entity: a dimmer's level, a switch's state.

        :param entity: the entity id, e.g. ``node-001/3311/0/5851``.
        :param value: the new value, e.g. ``75`` or ``true``.
        :return: ``{"entity": "node-001/3311/0/5851", "value": 75.0}``
        """
        return self._entity_sync().write(entity, value)

    def set(self, entity: str, value: JSON, **_: object) -> Response:
        """What the dashboard's dimmers and switches call: :meth:`set_value`.

        :param entity: the entity id.
        :param value: the new value.
        """
        return self.set_value(entity, value)


__all__ = ["MbedPlugin"]
