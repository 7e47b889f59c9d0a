"""The ``mbed`` Platypush plugin: thin glue over :class:`MbedClient` and the notification channels."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from platypush.entities.managers.sensors import SensorEntityManager
from platypush.entities.managers.switches import DimmerEntityManager, SwitchEntityManager
from redis.exceptions import RedisError

from platypush.plugins import RunnablePlugin

from ..core.errors import InvalidArgumentError, ProtocolError
from ..core.journal import Entry, Rejected
from ..core.text import one_line
from ..core.untrusted import received
from ..glue.actions import action
from ..glue.delivery import Made
from ..glue.entities import FastEntities
from ..glue.plugin import ListeningPlugin
from .channel_actions import CHANNELS, ChannelActions
from .checks import check_rules
from .client import MbedClient
from .entities import EntitySync, Fleet, to_platypush
from .events import EVENT_CLASSES, MbedConnectedEvent, MbedDisconnectedEvent
from .ipso import EntityMap
from .messages import AsyncResponse, Notification, parse_message, refused_note
from .models import ResourceValue


class MbedPlugin(  # FastEntities: entities saved at once, only what changed (glue/entities.py)
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
        entities: Mapping[str, Mapping[str, Any]] | None = None,
        entities_max_reads: int = 100,
        **kwargs: Any,
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
        """
        kwargs.setdefault("poll_interval", 1)
        super().__init__(**kwargs)
        if channel not in CHANNELS + ("auto",):
            raise InvalidArgumentError(f"mbed: channel must be one of auto, {', '.join(CHANNELS)}, got {channel!r}")
        self._open_client(
            MbedClient,
            base_url,
            api_key,
            api=api,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries=retries,
            pull_timeout=float(pull_timeout),
            async_timeout=float(async_timeout),
        )
        callback = dict(bind=callback_bind, port=int(callback_port), public_url=callback_url)
        channel = self._open_channel(channel, {**callback, "max_body": int(callback_max_body)})
        self.events_posted = 0
        self._open_inbox("mbed", self._journaled_events, keep_posted=2000)  # every NotificationMessage
        self._availability = self._track_availability(
            f"mbed notification channel ({channel}) at", MbedConnectedEvent, MbedDisconnectedEvent, channel=channel
        )
        self._sync = self._entity_sync_for(entities, int(entities_max_reads)) if entities_enabled else None

    def __new__(cls, *args: Any, **kwargs: Any) -> MbedPlugin:
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

    def record(self, message: Any) -> int:
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

    def on_message(self, message: Any, journal_id: int | None = None) -> int:
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

    def _parsed(self, payload: Any) -> tuple[list[Notification], list[Rejected]]:
        """A journaled message's elements and refused elements (reasons without secrets)."""
        try:
            items, rejected = parse_message(payload)
        except ProtocolError as exc:
            raise ProtocolError(self._client.redact(exc)) from None
        redact = self._client.redact
        return items, [Rejected(r.element, redact(r.reason), redact(r.excerpt)) for r in rejected]

    def _journaled_events(self, entry: Entry) -> list[Any]:
        """The events (and refused elements) of a journaled message; raises :class:`ProtocolError`
        for a message that cannot be read (the journal drops it)."""
        items, rejected = self._parsed(entry.payload)
        return self._events(items, entry.id) + rejected

    def _events(self, items: list[Notification], journal_id: int) -> list[Any]:
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

    # -- helpers -----------------------------------------------------------------

    @staticmethod
    def _async_result(result: Any) -> dict[str, Any]:
        if result is None:
            return {"status": 204, "no_resp": True}
        if isinstance(result, str):
            return {"async_id": result}
        if isinstance(result, AsyncResponse):
            data: dict[str, Any] = {"status": result.status}
            _, value, encoding = result.decoded()
            if value:
                data.update(value=value, encoding=encoding, content_type=result.content_type)
            return data
        return {"status": 200}

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
    def get_limits(self) -> dict[str, Any]:
        """
        The account's daily quotas and counters (the Connector only).

        :return: e.g. ``{"transaction-quota": 10000, "transaction-count": 7845,
            "endpoint-quota": 100, "endpoint-count": 50}``
        """
        return self._client.get_limits()

    @action
    def get_endpoints(self, type: str | None = None) -> list[dict[str, Any]]:
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
    def get_resources(self, endpoint: str) -> list[dict[str, Any]]:
        """
        List an endpoint's resources (from the service's cache; never wakes the device).

        :param endpoint: the endpoint name.
        :return: e.g. ``[{"uri": "/3303/0/5700", "rt": "5700", "obs": true, "type": "text/plain"}]``
        """
        return self._client.get_resources(endpoint)

    # -- actions: resources ---------------------------------------------------

    @action
    def get_resource_value(
        self,
        endpoint: str,
        path: str,
        timeout: float | None = None,
        cache_only: bool = False,
        no_resp: bool = False,
        details: bool = False,
    ) -> Any:
        """
        Read a resource's value: from the service's cache when it is fresh,
        otherwise from the device (waiting for its answer).

        :param endpoint: the endpoint name, e.g. ``node-001``.
        :param path: the resource path, e.g. ``/3303/0/5700``.
        :param timeout: seconds to wait for the device (default: ``async_timeout``; at most 55).
        :param cache_only: only answer from the cache (an error when nothing is cached).
        :param no_resp: send a non-confirmable request; nothing comes back (returns ``null``).
        :param details: return an object with the content type and origin instead of the bare value.
        :return: the value, text for textual content types and base64 otherwise,
            e.g. ``"21.5"``; with ``details``: ``{"endpoint": "node-001",
            "path": "/3303/0/5700", "value": "21.5", "content_type": "text/plain",
            "encoding": "text", "max_age": 60, "from_cache": false}``
        """
        value: ResourceValue | None = self._client.get_resource_value(
            endpoint, path, timeout=timeout, cache_only=bool(cache_only), no_resp=bool(no_resp)
        )
        if value is None:
            return None
        return value.to_dict() if details else value.value

    @action
    def put_resource_value(
        self,
        endpoint: str,
        path: str,
        value: Any,
        content_type: str = "text/plain",
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
    ) -> dict[str, Any]:
        """
        Write a resource's value (sent raw with ``content_type``, never JSON-encoded).

        :param endpoint: the endpoint name.
        :param path: the resource path, e.g. ``/3311/0/5850``.
        :param value: the value (text or number).
        :param content_type: its content type (default: ``text/plain``).
        :param timeout: seconds to wait for the device (default: ``async_timeout``).
        :param no_resp: non-confirmable request, no answer.
        :param wait: wait for the device's answer (default); ``false`` returns the
            async id at once (the result comes as an ``MbedAsyncResponseEvent``).
        :return: ``{"status": 200}``, ``{"async_id": "..."}`` or ``{"status": 204, "no_resp": true}``
        """
        return self._async_result(
            self._client.put_resource_value(
                endpoint,
                path,
                value,
                content_type=content_type,
                timeout=timeout,
                no_resp=bool(no_resp),
                wait=bool(wait),
            )
        )

    @action
    def post_resource(
        self,
        endpoint: str,
        path: str,
        data: Any | None = None,
        content_type: str = "text/plain",
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
    ) -> dict[str, Any]:
        """
        Execute a resource (``POST``), passing ``data`` to the device's function.

        :param endpoint: the endpoint name.
        :param path: the resource path, e.g. ``/3311/0/5800``.
        :param data: what to pass to the function (optional).
        :param content_type: its content type (default: ``text/plain``).
        :param timeout: seconds to wait for the device.
        :param no_resp: non-confirmable request, no answer.
        :param wait: wait for the device's answer (default), or return the async id.
        :return: ``{"status": 200}`` (plus ``value`` if the device returned one), or ``{"async_id": "..."}``
        """
        return self._async_result(
            self._client.post_resource(
                endpoint, path, data, content_type=content_type, timeout=timeout, no_resp=bool(no_resp), wait=bool(wait)
            )
        )

    @action
    def delete_resource(
        self, endpoint: str, path: str, timeout: float | None = None, no_resp: bool = False, wait: bool = True
    ) -> dict[str, Any]:
        """
        Delete a resource (the device must handle it).

        :param endpoint: the endpoint name.
        :param path: the resource path.
        :param timeout: seconds to wait for the device.
        :param no_resp: non-confirmable request, no answer.
        :param wait: wait for the device's answer (default), or return the async id.
        :return: ``{"status": 200}`` or ``{"async_id": "..."}``
        """
        return self._async_result(
            self._client.delete_resource(endpoint, path, timeout=timeout, no_resp=bool(no_resp), wait=bool(wait))
        )

    @action
    def delete_endpoint(self, endpoint: str, timeout: float | None = None, wait: bool = True) -> dict[str, Any]:
        """
        Delete an endpoint (``DELETE /v2/endpoints/{endpoint}``, as the original library's ``deleteEndpoint``).

        :param endpoint: the endpoint name.
        :param timeout: seconds to wait for the answer.
        :param wait: wait for the answer (default), or return the async id.
        :return: ``{"status": 200}`` or ``{"async_id": "..."}``
        """
        return self._async_result(self._client.delete_endpoint(endpoint, timeout=timeout, wait=bool(wait)))

    # -- actions: subscriptions -------------------------------------------------

    @action
    def subscribe(
        self, endpoint: str, path: str, timeout: float | None = None, rules: Mapping[str, float] | None = None
    ) -> dict[str, Any]:
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
        result: dict[str, Any] = {"subscribed": self._client.subscribe(endpoint, path, timeout=timeout, rules=rules)}
        if rules is not None:
            result["rules"] = check_rules(rules)
        return result

    @action
    def set_notification_rules(
        self,
        endpoint: str,
        path: str,
        pmin: float | None = None,
        pmax: float | None = None,
        gt: float | None = None,
        lt: float | None = None,
        st: float | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """
        Set when a subscribed resource notifies (LwM2M write attributes; Pelion / Izuma only,
        the Connector API has none). Give at least one rule; the device applies them.

        :param endpoint: the endpoint (device id).
        :param path: the resource path, e.g. ``/3303/0/5700``.
        :param pmin: at least this many seconds between two notifications.
        :param pmax: a notification at least every this many seconds, even without a change.
        :param gt: notify when the value is above this.
        :param lt: notify when the value is below this (below ``gt``).
        :param st: notify when the value moved at least this much since the last notification.
        :param timeout: seconds to wait for the device to accept.
        :return: ``{"rules": {"pmin": 10, "pmax": 120}}``
        """
        rules = self._client.set_notification_rules(
            endpoint, path, pmin=pmin, pmax=pmax, gt=gt, lt=lt, st=st, timeout=timeout
        )
        return {"rules": rules}

    @action
    def unsubscribe(self, endpoint: str, path: str) -> dict[str, Any]:
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
    def delete_endpoint_subscriptions(self, endpoint: str) -> dict[str, Any]:
        """
        Remove every subscription of an endpoint.

        :param endpoint: the endpoint name.
        :return: ``{"unsubscribed": true}``
        """
        self._client.delete_endpoint_subscriptions(endpoint)
        return {"unsubscribed": True}

    @action
    def delete_all_subscriptions(self) -> dict[str, Any]:
        """
        Remove every subscription of the account (on Pelion: the pre-subscriptions).

        :return: ``{"unsubscribed": true}``
        """
        self._client.delete_all_subscriptions()
        return {"unsubscribed": True}

    @action
    def put_pre_subscriptions(self, rules: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
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
    def get_pre_subscriptions(self) -> list[dict[str, Any]]:
        """
        The pre-subscription rules.

        :return: e.g. ``[{"endpoint-name": "node*"}]``
        """
        return self._client.get_pre_subscriptions()

    @action
    def status(self) -> dict[str, Any]:
        """
        The plugin's state.

        :return: e.g. ``{"base_url": "...", "api": "connector", "channel": "long_poll",
            "running": true, "channel_error": null, "reachable": true, "events_posted": 12,
            "dropped": 1, "recent_drops": [{"id": 41, "element": "notifications[2]", "source":
            "long_poll", "reason": "max-age: expected a whole, finite number (got inf)"}],
            "journal": {"pending": 0, "posted": 3, "dropped": 1, "duplicates": 0}, "entities":
            {"endpoints": 5, "republished": 5, "listings": 5, "subscriptions": 13, "cache_reads": 13,
            "device_reads": 13, "errors": 0, "saved": 25, "skipped": 4}}``
            (``dropped``: the malformed elements and unreadable messages the service ever sent, each
            dropped with one log line; ``recent_drops``: the newest 5, ``element`` ``null`` for a
            whole message; ``journal`` counts NotificationMessages; ``duplicates``: deliveries beyond
            a message's first; ``channel_error``: why the channel ended on its own, e.g. another
            channel type that could not be removed; ``entities``: the shown endpoints, the requests
            made for them, the entities saved and skipped (unchanged), ``null`` when disabled;
            ``republished``: endpoints published again by this call, at most 100, the next ones next time)
        """
        return {
            "base_url": self._client.base_url,
            "api": "pelion" if self._client.pelion else "connector",
            "channel": self._channel_name,
            "running": self._channel is not None and self._channel.failure is None,
            "channel_error": self._channel.failure if self._channel is not None else None,
            "reachable": self._availability.up,
            "events_posted": self.events_posted,
            **self.journal.drops(),
            "journal": self.journal.counts(),
            "entities": self._publish_all(),
        }

    # -- entities ------------------------------------------------------------------

    def transform_entities(self, entities: Any, **_: Any) -> Any:
        """The fleet's endpoints as Platypush entities (``entities.to_platypush``).

        :param entities: :class:`platypush_ext.mbed.entities.Endpoint` objects.
        """
        return super().transform_entities(to_platypush(entities))

    def _publish_all(self) -> dict[str, int] | None:
        """Publish a bounded sample of the fleet again (``entities.scan`` calls ``status``); the counts."""
        return None if self._sync is None else self._sync.republish(self.publish_entities, self.entity_publisher)

    def _entity_sync_for(self, entities: Mapping[str, Mapping[str, Any]] | None, max_reads: int) -> EntitySync:
        fleet = Fleet(EntityMap(entities))
        ready = lambda: bool(self._availability.up)  # noqa: E731 - device answers come through the channel
        return EntitySync(self._client, fleet, self.publish_entities, ready, self.ENTITIES_CONCURRENCY, max_reads)

    def _entity_sync(self) -> EntitySync:
        if self._sync is None:
            raise InvalidArgumentError("entities are disabled (entities_enabled: false)")
        return self._sync

    @action
    def on(self, entity: str) -> dict[str, Any]:
        """
        Turn an on/off entity on (a light, a power switch, a digital output).

        :param entity: the entity id, ``<endpoint><path>``, e.g. ``node-001/3311/0/5850``.
        :return: ``{"entity": "node-001/3311/0/5850", "value": true}``
        """
        return self._entity_sync().write(entity, True)

    @action
    def off(self, entity: str) -> dict[str, Any]:
        """
        Turn an on/off entity off.

        :param entity: the entity id, e.g. ``node-001/3311/0/5850``.
        :return: ``{"entity": "node-001/3311/0/5850", "value": false}``
        """
        return self._entity_sync().write(entity, False)

    @action
    def toggle(self, entity: str) -> dict[str, Any]:
        """
        Switch an on/off entity to the opposite of its current state.

        :param entity: the entity id, e.g. ``node-001/3311/0/5850``.
        :return: ``{"entity": "node-001/3311/0/5850", "value": true}``
        """
        return self._entity_sync().write(entity, toggle=True)

    @action
    def set_value(self, entity: str, value: Any) -> dict[str, Any]:
        """
        Set a writable entity: a dimmer's level, a switch's state.

        :param entity: the entity id, e.g. ``node-001/3311/0/5851``.
        :param value: the new value, e.g. ``75`` or ``true``.
        :return: ``{"entity": "node-001/3311/0/5851", "value": 75.0}``
        """
        return self._entity_sync().write(entity, value)

    def set(self, entity: str, value: Any, **_: Any) -> Any:
        """What the dashboard's dimmers and switches call: :meth:`set_value`.

        :param entity: the entity id.
        :param value: the new value.
        """
        return self.set_value(entity, value)


__all__ = ["MbedPlugin"]
