"""A typed, framework-free client of the mbed Device Connector REST API v2
(and of its successors Pelion / Izuma Device Management), ``protocols/mbed.md``.

It covers every method of the original ``mbed_connector_api`` 1.0.4 with
snake_case names, but asynchronous answers become plain return values: a call
that the service answers with ``202 {"async-response-id"}`` waits (with a
timeout) until the matching ``async-responses`` element arrives on the
notification channel, then returns the decoded value or raises. Something must
consume the channel and feed it to :meth:`MbedClient.handle_notification`:
:meth:`MbedClient.start_long_polling` does it in a thread; the ``mbed``
Platypush plugin does it in its listener::

    client = MbedClient("https://api.connector.mbed.com", api_key)
    client.start_long_polling()
    print(client.get_resource_value("node-001", "/3303/0/5700").value)   # "21.5"
    client.put_resource_value("node-001", "/3311/0/5850", "1")
    client.stop_long_polling()

Async responses that arrive *before* their ``202`` was processed are kept in a small buffer (bounded in
size and age), so that race loses nothing. With a Pelion / Izuma base URL (or ``api="pelion"``) device
requests go through ``POST /v2/device-requests/{device-id}?async-id=<our id>``, which has no race.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence

import websocket

from ..core.errors import InvalidArgumentError, NotFoundError, ServiceConnectionError
from ..core.http import HttpClient, ServiceClient, Timeouts
from ..core.retry import RetryPolicy
from ..core.untrusted import JSON, JSONObject
from ..core.wsclient import MAX_MESSAGE, BoundedWebSocket, connect, handshake_failure
from . import models
from .calls import Answer, ChannelGate, DeviceCalls, ResourceRequest
from .channels import LongPollChannel
from .checks import (
    RULES,
    check_api,
    check_block,
    check_callback,
    check_content_type,
    check_endpoint,
    check_expiry,
    check_path,
    check_pre_subscriptions,
    check_retry,
    check_rules,
    check_timeout,
    endpoint_segment,
    path_segments,
    rules_query,
    value_bytes,
)
from .dialects import Dialect, Pelion, dialect_for, read_devices
from .errors import error_details
from .messages import EVENT_KINDS, AsyncResponse, Notification, parse_message
from .models import MECHANISMS, ResourceValue
from .registry import AsyncRegistry

logger = logging.getLogger("platypush_ext.mbed")

Handler = Callable[[JSONObject], object]


class MbedClient(ServiceClient):
    """Client of one mbed Device Connector (or Pelion / Izuma) account.

    :param base_url: e.g. ``https://api.connector.mbed.com`` (retired),
        ``https://api.us-east-1.mbedcloud.com`` or a local sandbox.
    :param api_key: the access key (sent as ``Authorization: Bearer``).
    :param api: ``"connector"``, ``"pelion"`` or ``"auto"`` (Pelion for
        ``*.mbedcloud.com`` / ``*.izumanetworks.com`` hosts).
    :param timeouts: connect/read timeouts of ordinary requests.
    :param pull_timeout: read timeout of one long poll (the service holds it ~30 s).
    :param async_timeout: default seconds to wait for an async response.
    :param retry: retry policy of idempotent requests.
    :param http: an :class:`~platypush_ext.core.http.HttpClient` to use instead of building one.
    :param device_retry: Pelion / Izuma: the ``retry`` of every device request that gives none
        (0-10; ``None``: the service's default).
    :param device_expiry_seconds: Pelion / Izuma: its ``expiry-seconds`` (60-2,592,000; ``None``:
        the service's default, 2 h, or 3 days for a queue-mode device).
    """

    DEFAULT_TIMEOUTS = Timeouts(5.0, 15.0)
    DEFAULT_RETRY = RetryPolicy(attempts=3, budget=20.0)

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        api: str = "auto",
        timeouts: Timeouts | None = None,
        pull_timeout: float = 40.0,
        async_timeout: float = 20.0,
        retry: RetryPolicy | None = None,
        http: HttpClient | None = None,
        device_retry: int | None = None,
        device_expiry_seconds: int | None = None,
    ):
        if not isinstance(api_key, str) or len(api_key) < 4:
            raise InvalidArgumentError("api_key must be the account's access key (a string)")
        check_api(api)
        self._connect(
            base_url,
            http,
            timeouts,
            retry,
            error_details,
            secrets=[api_key],
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        )
        #: the API's dialect: :class:`~platypush_ext.mbed.dialects.Connector` or ``Pelion``
        self.dialect: Dialect = dialect_for(api, self.base_url)
        #: the default ``retry`` and ``expiry-seconds`` of device requests (``None``: the service's)
        self.queue_defaults = (check_retry(device_retry), check_expiry(device_expiry_seconds))
        if self.queue_defaults != (None, None):
            self.dialect.refuse("queue_options")
        self._api_key = api_key
        self.pull_timeouts = Timeouts(self.http.timeouts.connect, pull_timeout)
        self.async_timeout = check_timeout(async_timeout, 20.0)
        self.registry = AsyncRegistry()
        self.calls = DeviceCalls(self.http, self.registry, gate=self._gate, consumed=self.channel_running)
        self._handlers: dict[str, Handler] = {}
        self._poller: LongPollChannel | None = None
        #: set by whoever consumes the channel and calls :meth:`handle_notification` (the plugin)
        self.external_channel = False
        #: the consumer's channel, as device calls wait for it (the plugin's; the own poller's otherwise)
        self.channel_gate: ChannelGate | None = None

    @property
    def pelion(self) -> bool:
        """Whether the client speaks Pelion / Izuma (``api: pelion``), not the Connector API."""
        return isinstance(self.dialect, Pelion)

    def __repr__(self) -> str:
        return f"MbedClient({self.http.redactor.url(self.base_url)!r}, api={self.dialect.name})"

    def close(self) -> None:
        self.stop_long_polling()
        super().close()

    # -- plumbing ----------------------------------------------------------

    def channel_running(self) -> bool:
        """Whether this client's own long-polling thread runs (the plugin feeds it otherwise)."""
        return self._poller is not None or self.external_channel

    def _gate(self) -> ChannelGate | None:
        return self.channel_gate if self.channel_gate is not None else self._poller

    def _device_call(
        self,
        method: str,
        endpoint: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "text/plain",
        no_resp: bool = False,
        cache_only: bool = False,
        timeout: float | None = None,
        wait: bool = True,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> AsyncResponse | ResourceValue | str | None:
        """One resource request, its arguments checked, as the dialect sends it; returns the async
        response, a cached value, the async id (``wait=False``) or ``None`` (``noResp``)."""
        started = time.monotonic()
        check_endpoint(endpoint)
        path, limit = check_path(path), check_timeout(timeout, self.async_timeout)
        retry, expiry_seconds = self.queue_options(retry, expiry_seconds, queued=not (no_resp or cache_only))
        if body is not None:
            content_type = check_content_type(content_type)
        request = ResourceRequest(
            method,
            endpoint,
            path,
            f"{method} {endpoint}{path}",
            limit,
            started,
            body=body,
            content_type=content_type,
            no_resp=no_resp,
            cache_only=cache_only,
            wait=wait,
            retry=retry,
            expiry_seconds=expiry_seconds,
        )
        return self.dialect.resource_call(self.calls, request)

    def queue_options(self, retry: JSON, expiry_seconds: JSON, queued: bool = True) -> tuple[int | None, int | None]:
        """The ``retry`` and ``expiry-seconds`` of one device request: the caller's (checked against the
        published bounds), else the client's defaults. Given ones are refused on the Connector and
        with ``no_resp`` / ``cache_only`` (``queued=False``: such a request is never queued).

        :param retry: the caller's ``retry`` (``None``: the default).
        :param expiry_seconds: the caller's ``expiry_seconds`` (``None``: the default).
        :param queued: whether the request goes through the service's queue.
        """
        given = (check_retry(retry), check_expiry(expiry_seconds))
        if given != (None, None):
            self.dialect.refuse("queue_options")
            if not queued:
                raise InvalidArgumentError(
                    "retry and expiry_seconds apply to queued device requests, not with no_resp or cache_only"
                )
        if not queued:
            return None, None
        return (
            given[0] if given[0] is not None else self.queue_defaults[0],
            given[1] if given[1] is not None else self.queue_defaults[1],
        )

    # -- versions, limits, endpoints --------------------------------------

    def get_connector_version(self) -> str:
        """``GET /``: the service's version text, e.g. ``"DeviceServer v3.0.0-520\\nREST version = v2"`` (Connector)."""
        self.dialect.refuse("get_connector_version")
        response = self.http.request("GET", "")
        return self.http.parsed(response.content, models.version_text, self.http.endpoint("GET", self.base_url), 200)

    def get_api_versions(self) -> list[str]:
        """``GET /rest-versions``: e.g. ``["v1", "v2"]`` (Connector)."""
        self.dialect.refuse("get_api_versions")
        return self.http.request_json("GET", "rest-versions", parse=models.versions)

    def get_limits(self) -> dict[str, int]:
        """``GET /v2/limits``: the account's quotas and counters (Connector)."""
        self.dialect.refuse("get_limits")
        return self.http.request_json("GET", "v2/limits", parse=models.limits)

    def get_endpoints(self, type: str | None = None, all_states: bool = False) -> list[JSONObject]:
        """The registered endpoints: ``[{"name", "type", "status", "q", "label"}]`` in both APIs.

        ``name`` is what every other call takes as ``endpoint`` (Pelion / Izuma: the 32-hex
        device id); ``label`` is the device's own name (equal to ``name`` on the Connector);
        ``q`` is always a boolean. Connector: ``GET /v2/endpoints[?type=]``. Pelion / Izuma:
        the device directory ``GET /v3/devices/``, every page (see :meth:`get_devices`).

        :param type: only endpoints of this type (``ept``).
        :param all_states: Pelion / Izuma: also devices that are not registered (``status``
            is then the directory's ``state`` in capitals, e.g. ``"DEREGISTERED"``).
        """
        return self.dialect.endpoints(self.http, type, all_states)

    def get_devices(
        self,
        type: str | None = None,
        state: str | None = "registered",
        page_size: int = 100,
        max_pages: int = 100,
        suspended: bool | None = None,
    ) -> list[JSONObject]:
        """``GET /v3/devices/`` (Pelion / Izuma device directory), following ``after``/``has_more``
        over at most ``max_pages`` pages: the ``DeviceData`` objects as the service sends them.

        :param type: ``endpoint_type__eq``.
        :param state: ``state__eq`` (``None``: every state).
        :param page_size: ``limit`` of one page (2-1000).
        :param max_pages: the most pages read; more gives a :class:`ProtocolError` (a looping ``after``).
        :param suspended: only suspended devices (``True``: ``lifecycle_status__eq=blocked``) or only
            the others (``False``); ``None``: both.
        """
        lifecycle = None if suspended is None else ("blocked" if suspended else "enabled")
        return read_devices(self.http, type, state, page_size, max_pages, lifecycle)

    def suspend_device(self, endpoint: str, category: str = "maintenance", description: str | None = None) -> None:
        """``POST /v3/devices/{id}/suspend`` (Pelion / Izuma): the device cannot connect until resumed;
        requests to it fail meanwhile (``429 DEVICE_BLOCKED``).

        :param endpoint: the device id.
        :param category: the block category (``/v3/device-block-categories/``), e.g. ``maintenance``.
        :param description: why (at most 2,000 characters).
        """
        self._lifecycle("suspend", endpoint, category, description)

    def resume_device(self, endpoint: str, category: str = "maintenance", description: str | None = None) -> None:
        """``POST /v3/devices/{id}/resume`` (Pelion / Izuma): return a suspended device to service; the
        arguments as :meth:`suspend_device`'s (``category``: the one it was suspended with)."""
        self._lifecycle("resume", endpoint, category, description)

    def _lifecycle(self, operation: str, endpoint: str, category: str, description: str | None) -> None:
        self.dialect.refuse(f"{operation}_device")
        body = check_block(category, description)
        self.http.request("POST", f"v3/devices/{endpoint_segment(endpoint)}/{operation}", json_body=body)

    def get_resources(self, endpoint: str) -> list[JSONObject]:
        """``GET /v2/endpoints/{ep}``: ``[{"uri", "rt", "obs", "type"}]`` (``obs`` always a boolean)."""
        return self.http.request_json("GET", f"v2/endpoints/{endpoint_segment(endpoint)}", parse=models.resource_list)

    # -- resources -----------------------------------------------------------

    def get_resource_value(
        self,
        endpoint: str,
        path: str,
        timeout: float | None = None,
        cache_only: bool = False,
        no_resp: bool = False,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> ResourceValue | None:
        """Read a resource: the cached value (``200``) or the device's answer. ``retry`` and
        ``expiry_seconds`` (Pelion / Izuma) bound how the service queues the request for a device
        it cannot reach now (see :meth:`queue_options`); so do those of the other device requests.

        :return: the value, or ``None`` with ``no_resp`` (nothing comes back).
        :raises DeviceTimeoutError: the device did not answer within ``timeout``.
        :raises DeviceError: the device answered an error status.
        """
        result = self._device_call(
            "GET",
            endpoint,
            path,
            no_resp=no_resp,
            cache_only=cache_only,
            timeout=timeout,
            retry=retry,
            expiry_seconds=expiry_seconds,
        )
        if result is None or isinstance(result, ResourceValue):
            return result
        assert isinstance(result, AsyncResponse)
        raw, value, encoding = result.decoded()
        return ResourceValue(
            endpoint, check_path(path), value, result.content_type, encoding, result.max_age, False, raw
        )

    def put_resource_value(
        self,
        endpoint: str,
        path: str,
        value: JSON,
        content_type: str = "text/plain",
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> AsyncResponse | ResourceValue | str | None:
        """Write a resource: the raw value with ``content_type`` (never JSON-encoded).

        :return: the async response (``wait``), the async id (``wait=False``) or ``None`` (``no_resp``).
        """
        body = value_bytes(value)
        self.dialect.check_write(body)
        return self._device_call(
            "PUT",
            endpoint,
            path,
            body=body,
            content_type=content_type,
            no_resp=no_resp,
            timeout=timeout,
            wait=wait,
            retry=retry,
            expiry_seconds=expiry_seconds,
        )

    def post_resource(
        self,
        endpoint: str,
        path: str,
        data: JSON = None,
        content_type: str = "text/plain",
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> AsyncResponse | ResourceValue | str | None:
        """Execute a resource, passing ``data`` (optional) to the device's function."""
        body = value_bytes(data) if data is not None else b""
        return self._device_call(
            "POST",
            endpoint,
            path,
            body=body,
            content_type=content_type,
            no_resp=no_resp,
            timeout=timeout,
            wait=wait,
            retry=retry,
            expiry_seconds=expiry_seconds,
        )

    def delete_resource(
        self,
        endpoint: str,
        path: str,
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> AsyncResponse | ResourceValue | str | None:
        """Delete a resource (the device must handle it)."""
        return self._device_call(
            "DELETE",
            endpoint,
            path,
            no_resp=no_resp,
            timeout=timeout,
            wait=wait,
            retry=retry,
            expiry_seconds=expiry_seconds,
        )

    def delete_endpoint(self, endpoint: str, timeout: float | None = None, wait: bool = True) -> Answer:
        """``DELETE /v2/endpoints/{ep}`` (the original ``deleteEndpoint``; not in the Connector docs).

        Refused with ``api: pelion``: that API has no deregistration; ``DELETE /v3/devices/{id}/``
        removes the device from the directory (its credentials with it), which is not the same."""
        self.dialect.refuse("delete_endpoint")
        started, limit = time.monotonic(), check_timeout(timeout, self.async_timeout)
        send = functools.partial(self.http.request, "DELETE", f"v2/endpoints/{endpoint_segment(endpoint)}")
        response = self.calls.with_channel(send, limit, started)
        return self.calls.answer(response, f"DELETE {endpoint}", limit, started, wait)

    # -- subscriptions -------------------------------------------------------

    def subscribe(
        self,
        endpoint: str,
        path: str,
        timeout: float | None = None,
        wait: bool = True,
        rules: Mapping[str, float] | None = None,
    ) -> bool:
        """``PUT /v2/subscriptions/{ep}/{path}``: subscribe to a resource's changes (original
        ``putResourceSubscription``); returns once the device accepted (``200``, or the async answer).
        With ``rules``, :meth:`set_notification_rules` first (validated before anything is sent)."""
        path = check_path(path)
        checked = check_rules(rules) if rules is not None else None
        what = f"subscribe {endpoint}{path}"
        started, limit = time.monotonic(), check_timeout(timeout, self.async_timeout)
        if checked is not None:
            pmin, pmax, gt, lt, st = (checked.get(k) for k in RULES)
            self.set_notification_rules(endpoint, path, pmin, pmax, gt, lt, st, timeout=limit)
            limit = max(0.1, limit - (time.monotonic() - started))
            started = time.monotonic()
        url = f"v2/subscriptions/{endpoint_segment(endpoint)}{path_segments(path)}"
        response = self.calls.with_channel(functools.partial(self.http.request, "PUT", url), limit, started)
        self.calls.answer(response, what, limit, started, wait)
        return True

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
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> dict[str, float]:
        """Set a resource's notification rules (Pelion / Izuma: a device request ``PUT`` whose
        ``uri`` carries them, e.g. ``/3303/0/5700?pmax=120``); returns the rules once the
        device accepted them. The Connector API documents no notification rules: refused there.

        :param pmin: at least this many seconds between two notifications.
        :param pmax: a notification at least every this many seconds, even without a change.
        :param gt: notify when the value is above this.
        :param lt: notify when the value is below this.
        :param st: notify when the value moved at least this much since the last notification.
        """
        rules = check_rules({"pmin": pmin, "pmax": pmax, "gt": gt, "lt": lt, "st": st})
        path, limit = check_path(path), check_timeout(timeout, self.async_timeout)
        self.dialect.refuse("set_notification_rules")
        retry, expiry_seconds = self.queue_options(retry, expiry_seconds)
        uri = f"{path}?{rules_query(rules)}"
        request = ResourceRequest(
            "PUT",
            endpoint,
            uri,
            f"rules {endpoint}{uri}",
            limit,
            time.monotonic(),
            retry=retry,
            expiry_seconds=expiry_seconds,
        )
        self.dialect.resource_call(self.calls, request)
        return rules

    def get_resource_subscription(self, endpoint: str, path: str) -> bool:
        """``GET /v2/subscriptions/{ep}/{path}``: whether the resource is subscribed."""
        try:
            self.http.request("GET", f"v2/subscriptions/{endpoint_segment(endpoint)}{path_segments(check_path(path))}")
        except NotFoundError:
            return False
        return True

    def get_endpoint_subscriptions(self, endpoint: str) -> list[str]:
        """``GET /v2/subscriptions/{ep}``: the subscribed resource paths (``[]`` on 404, as the Node client)."""
        ep = endpoint_segment(endpoint)
        try:
            content = self.http.request("GET", f"v2/subscriptions/{ep}").content
        except NotFoundError:
            return []
        endpoint = self.http.endpoint("GET", self.http.url(f"v2/subscriptions/{ep}"))
        return self.http.parsed(content, functools.partial(models.uri_list, f"/subscriptions/{ep}"), endpoint, 200)

    def unsubscribe(self, endpoint: str, path: str) -> None:
        """``DELETE /v2/subscriptions/{ep}/{path}`` (original ``deleteResourceSubscription``)."""
        self.http.request("DELETE", f"v2/subscriptions/{endpoint_segment(endpoint)}{path_segments(check_path(path))}")

    def delete_endpoint_subscriptions(self, endpoint: str) -> None:
        """``DELETE /v2/subscriptions/{ep}``."""
        self.http.request("DELETE", f"v2/subscriptions/{endpoint_segment(endpoint)}")

    def delete_all_subscriptions(self) -> None:
        """``DELETE /v2/subscriptions``: every subscription of the account (on Pelion: the pre-subscriptions)."""
        self.http.request("DELETE", "v2/subscriptions")

    def put_pre_subscriptions(self, rules: Sequence[Mapping[str, JSON]]) -> None:
        """``PUT /v2/subscriptions``: replace the pre-subscriptions (``[]`` clears them;
        existing subscriptions are removed by the service)."""
        self.http.request("PUT", "v2/subscriptions", json_body=check_pre_subscriptions(rules))

    def get_pre_subscriptions(self) -> list[JSONObject]:
        """``GET /v2/subscriptions``: the pre-subscription rules."""
        return self.http.request_json("GET", "v2/subscriptions", parse=models.pre_subscriptions)

    # -- notification channel ------------------------------------------------

    def put_callback(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        """``PUT /v2/notification/callback``: deliver notifications to ``url`` with ``headers``
        (the service sends a test ``PUT`` first). Header values are treated as secrets."""
        check_callback(url, headers)
        for value in (headers or {}).values():
            self.add_secret(value)
        body: JSONObject = {"url": url}
        if headers:
            body["headers"] = dict(headers)
        self.http.request("PUT", "v2/notification/callback", json_body=body)

    def get_callback(self) -> JSONObject | None:
        """``GET /v2/notification/callback``: ``{"url", "headers"}``, or ``None`` when none is set."""
        try:
            return self.http.request_json("GET", "v2/notification/callback", parse=models.callback)
        except NotFoundError:
            return None

    def delete_callback(self) -> bool:
        """``DELETE /v2/notification/callback``; returns whether one was set."""
        try:
            self.http.request("DELETE", "v2/notification/callback")
        except NotFoundError:
            return False
        return True

    def pull(self, no_wait: bool = False, http: HttpClient | None = None) -> bytes | None:
        """One long poll ``GET /v2/notification/pull``: the NotificationMessage's body as received
        (bytes, parsed by :func:`~platypush_ext.mbed.messages.parse_message` or
        :meth:`handle_notification`), or ``None`` (``204`` or an empty body).

        Not replayed once sent (a pull consumes the events it returns). ``no_wait`` (the
        Connector's ``noWait=true``) is not sent to Pelion / Izuma, whose API does not have it.
        ``http``: the connection to poll on (the channel's own, which it can shut down at stop).
        """
        response = (http or self.http).request(
            "GET",
            "v2/notification/pull",
            params=self.dialect.pull_params(no_wait),
            idempotent=False,
            timeouts=self.pull_timeouts,
        )
        if response.status_code == 204 or not response.content.strip():
            return None
        return response.content

    def register_websocket(self) -> JSONObject:
        """``PUT /v2/notification/websocket`` (Pelion / Izuma): create the WebSocket channel."""
        return self.http.request_json("PUT", "v2/notification/websocket", parse=models.websocket_status)

    def get_websocket(self) -> JSONObject | None:
        """``GET /v2/notification/websocket``: the channel status, or ``None``."""
        try:
            return self.http.request_json("GET", "v2/notification/websocket", parse=models.websocket_status)
        except NotFoundError:
            return None

    def delete_websocket(self) -> bool:
        """``DELETE /v2/notification/websocket``; returns whether it existed."""
        try:
            self.http.request("DELETE", "v2/notification/websocket")
        except NotFoundError:
            return False
        return True

    def connect_websocket(self, timeout: float = 10.0, max_message: int = MAX_MESSAGE) -> BoundedWebSocket:
        """Open ``/v2/notification/websocket-connect`` (a bounded ``websocket-client`` connection:
        :mod:`platypush_ext.core.wsclient`; a message over ``max_message`` bytes drops it)."""
        url = self.http.url("v2/notification/websocket-connect").replace("http", "ws", 1)
        options = self.http.transport.ws_options([f"Authorization: Bearer {self._api_key}"])
        try:
            return connect(url, timeout, max_message=max_message, **options)
        except (websocket.WebSocketException, OSError) as exc:
            failure = handshake_failure(exc, url, "GET /v2/notification/websocket-connect")
            if failure is not None:  # the certificate or the key was refused: not an outage
                raise failure from None
            text = self.redact(f"{type(exc).__name__}: {exc}")
            raise ServiceConnectionError(f"GET /v2/notification/websocket-connect: {text}") from None

    def get_channel(self) -> str | None:
        """``GET /v2/notification/channel`` (Pelion): ``CALLBACK``, ``LONG_POLLING``, ``WEB_SOCKET`` or ``None``."""
        try:
            return self.http.request_json("GET", "v2/notification/channel", parse=models.delivery_mechanism)
        except NotFoundError:
            return None

    def delete_channel(self, kind: str) -> bool:
        """Remove the account's channel of ``kind`` (``long_poll``: ``DELETE /v2/notification/pull``,
        ``callback``, ``websocket``); returns whether there was one."""
        if kind == "callback":
            return self.delete_callback()
        if kind == "websocket":
            return self.delete_websocket()
        if kind != "long_poll":
            raise InvalidArgumentError(f"unknown channel kind {kind!r}; use long_poll, callback or websocket")
        return b"ALREADY_DELETED" not in self.http.request("DELETE", "v2/notification/pull").content

    def remove_other_channel(self, kind: str) -> str | None:
        """Pelion / Izuma (one channel type at a time): remove the registered channel when it is
        not of ``kind``; returns the kind removed, or ``None`` when there was nothing to remove."""
        other = MECHANISMS.get(self.get_channel() or "")
        if other is None or other == kind:
            return None
        self.delete_channel(other)
        return other

    # -- handling notifications ---------------------------------------------

    def set_handler(self, kind: str, handler: Handler | None) -> None:
        """Call ``handler(data)`` for each element of ``kind`` (one of :data:`EVENT_KINDS`);
        ``None`` removes it. (Platypush users write hooks on the plugin's events instead.)"""
        if kind not in EVENT_KINDS:
            raise InvalidArgumentError(f"unknown notification kind {kind!r}; use one of {', '.join(EVENT_KINDS)}")
        if handler is None:
            self._handlers.pop(kind, None)
        else:
            self._handlers[kind] = handler

    def handle_notification(self, message: JSON) -> list[Notification]:
        """Process one NotificationMessage (long-poll body, callback body or WebSocket frame):
        resolve waiting async calls, call the handlers, and return the parsed elements.
        A malformed element is logged (one line) and skipped; the others still flow.

        :param message: the message (bytes, text or dict).
        :raises ProtocolError: the message cannot be read at all (not JSON, not an object…).
        """
        items, rejected = parse_message(message)
        for refused in rejected:
            logger.warning(
                "mbed: skipping %s of a notification message: %s", refused.element, self.redact(refused.reason)
            )
        self.handle_items(items)
        return items

    def handle_items(self, items: Sequence[Notification]) -> None:
        """Answer the actions waiting for the async responses among ``items`` (parsed elements) and call
        the handlers (:meth:`set_handler`); a failing handler is logged, the others still run.

        :param items: the parsed elements of one message.
        """
        for item in items:
            if item.response is not None:
                self.registry.deliver(item.response)
            handler = self._handlers.get(item.kind)
            if handler is not None:
                try:
                    handler(item.data)
                except Exception as exc:  # noqa: BLE001 - a user's handler: one line, the others run
                    logger.error(
                        "mbed: the %s handler failed: %s", item.kind, self.redact(f"{type(exc).__name__}: {exc}")
                    )

    handler = handle_notification  # the original library's name, for callback web applications

    def start_long_polling(self, no_wait: bool = False) -> None:
        """Consume the long-poll channel in a daemon thread (restartable, with backoff)."""
        if self._poller is not None:
            return
        self._poller = LongPollChannel(self, on_message=self.handle_notification, no_wait_first=no_wait)
        self._poller.start_thread()

    def stop_long_polling(self, timeout: float = 1.0) -> None:
        """Stop the long-polling thread (it exits when its current poll returns)."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop(timeout)
