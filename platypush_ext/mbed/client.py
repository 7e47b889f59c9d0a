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

Async responses that arrive *before* their ``202`` was processed are kept in a
small buffer (bounded in size and age), so that race loses nothing. With a
Pelion / Izuma base URL (or ``api="pelion"``) device requests go through
``POST /v2/device-requests/{device-id}?async-id=<our id>``, which has no race.
"""

from __future__ import annotations

import base64
import collections
import decimal
import functools
import itertools
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import requests

from ..core import untrusted
from ..core.errors import (
    BadRequestError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    ProtocolError,
    ServiceError,
    ServiceTimeoutError,
)
from ..core.http import ErrorDetails, HttpClient, ServiceClient, Timeouts, parse_json
from ..core.http import server_message as http_server_message
from ..core.retry import RetryPolicy
from ..core.text import one_line
from .messages import (  # noqa: F401 - the notification parsing's former home: these names stay importable here
    EVENT_KINDS,
    TEXT_TYPES,
    AsyncResponse,
    Notification,
    decode_payload,
    parse_message,
)

logger = logging.getLogger("platypush_ext.mbed")

#: Readable meanings of the statuses of resource and subscription calls (Connector docs).
STATUS_MEANINGS = {
    205: "no cached value is available (cacheOnly=true)",
    400: "bad request",
    404: "the endpoint or resource was not found",
    409: "conflict: the endpoint is in queue mode and cannot answer synchronously, or noResp is not supported",
    410: "gone: the endpoint is not registered",
    412: "precondition failed (is there a notification channel? is the resource observable?)",
    413: "request entity too large or precondition failed",
    415: "the endpoint does not support this media type",
    429: "busy: another request for this endpoint is in progress, or its queue is full",
    502: "the connection to the endpoint cannot be established",
    503: "the endpoint is currently unavailable",
    504: "the endpoint did not answer in time",
}

PELION_HOSTS = ("mbedcloud.com", "izumanetworks.com", "pelion.com")


# -- errors -------------------------------------------------------------------


class MbedError(ServiceError):
    """An error answered by the mbed service or by a device."""


class NoChannelError(MbedError, BadRequestError):
    """No notification channel exists (``412 No notification channel``)."""


class EndpointGoneError(MbedError, NotFoundError):
    """The endpoint is not registered (``410``) or the resource is unknown (``404``)."""


class NoCacheError(MbedError, NotFoundError):
    """``cacheOnly=true`` and the service has no cached value (``205``)."""


class QueueModeError(MbedError, ConflictError):
    """The endpoint is in queue mode (``409``)."""


class DeviceError(MbedError):
    """The device answered an asynchronous request with an error status.

    :ivar status: the async response's status; ``code`` holds its ``error`` text.
    """


class DeviceTimeoutError(MbedError, ServiceTimeoutError):
    """No asynchronous answer arrived in time."""


class NotInThisApiError(MbedError, InvalidArgumentError):
    """The configured API (``connector`` or ``pelion``) has no such operation; nothing was sent."""


class ChannelConflictError(MbedError, BadRequestError):
    """Another notification channel type is registered and could not be removed (Pelion / Izuma)."""


#: The channel kinds of the plugin by Pelion's ``delivery_mechanism``.
MECHANISMS = {"LONG_POLLING": "long_poll", "CALLBACK": "callback", "WEB_SOCKET": "websocket"}
#: The notification rules of a resource (LwM2M write attributes): periods in seconds, thresholds.
RULES = ("pmin", "pmax", "gt", "lt", "st")


#: The paths of device requests, whose statuses mean what :data:`STATUS_MEANINGS` says.
DEVICE_PATHS = ("/v2/endpoints/", "/v2/subscriptions/", "/device-requests/")


def _mbed_error(status: int, endpoint: str, payload: Any) -> ErrorDetails | None:
    """The classes and meanings of device answers (plain text on the Connector, JSON on Pelion)."""
    server_message = http_server_message(payload) or ""
    if status == 412 and "channel" in server_message.lower():
        return ErrorDetails(NoChannelError, "start the notification channel: long poll, callback or WebSocket")
    if not any(p in endpoint for p in DEVICE_PATHS):
        return None
    if status in (404, 410) or server_message in ("DEVICE_NOT_FOUND", "RESOURCE_NOT_FOUND"):
        cls: type[ServiceError] | None = EndpointGoneError
    else:
        cls = QueueModeError if status == 409 else None
    return ErrorDetails(cls, STATUS_MEANINGS.get(status))


# -- models -------------------------------------------------------------------


def _as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


@dataclass(frozen=True)
class ResourceValue:
    """A resource's value, decoded."""

    endpoint: str
    path: str
    value: str
    content_type: str
    encoding: str = "text"
    max_age: int | None = None
    from_cache: bool = False
    raw: bytes = field(default=b"", repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("raw")
        return data


# -- async correlation ----------------------------------------------------------


class AsyncRegistry:
    """Correlates ``async-response-id``s with their responses.

    :param buffer_size: how many unmatched responses are kept (oldest dropped).
    :param buffer_age: seconds an unmatched response is kept (the Connector's
        delivery window is 15 minutes).
    """

    def __init__(self, buffer_size: int = 10000, buffer_age: float = 900.0):
        self._cond = threading.Condition()
        self._waiting: dict[str, AsyncResponse | None] = {}
        self._unmatched: collections.OrderedDict[str, tuple[float, AsyncResponse]] = collections.OrderedDict()
        self.buffer_size, self.buffer_age = buffer_size, buffer_age

    def expect(self, async_id: str) -> None:
        """Announce that a caller will wait for ``async_id`` (picks a response that came early)."""
        with self._cond:
            early = self._unmatched.pop(async_id, None)
            self._waiting[async_id] = early[1] if early else None

    def deliver(self, response: AsyncResponse) -> bool:
        """Hand over a response; returns whether a caller was waiting for it."""
        with self._cond:
            if response.async_id in self._waiting:
                self._waiting[response.async_id] = response
                self._cond.notify_all()
                return True
            now = time.monotonic()
            self._unmatched[response.async_id] = (now, response)
            while self._unmatched and (
                len(self._unmatched) > self.buffer_size
                or next(iter(self._unmatched.values()))[0] < now - self.buffer_age
            ):
                self._unmatched.popitem(last=False)
            return False

    def wait(self, async_id: str, timeout: float) -> AsyncResponse | None:
        """The response of ``async_id`` (``None`` after ``timeout`` s); forgets the id."""
        deadline = time.monotonic() + timeout
        with self._cond:
            try:
                while self._waiting.get(async_id) is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._cond.wait(left)
                return self._waiting[async_id]
            finally:
                self._waiting.pop(async_id, None)

    def unmatched(self) -> int:
        with self._cond:
            return len(self._unmatched)

    def waiting(self) -> int:
        """How many ids callers are waiting for."""
        with self._cond:
            return len(self._waiting)


# -- validation -----------------------------------------------------------------


def check_endpoint(endpoint: Any) -> str:
    """An endpoint name: a non-empty string."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise InvalidArgumentError(f"endpoint must be a non-empty endpoint name, got {endpoint!r}")
    return endpoint


def check_path(path: Any) -> str:
    """A resource path such as ``/3303/0/5700`` (a missing leading ``/`` is added)."""
    if not isinstance(path, str) or not path.strip("/ "):
        raise InvalidArgumentError(f"path must be a resource path such as '/3303/0/5700', got {path!r}")
    if "?" in path or "#" in path:
        raise InvalidArgumentError(
            f"path must not contain '?' or '#': {path!r} (notification rules: set_notification_rules or subscribe's rules)"
        )
    return path if path.startswith("/") else "/" + path


_CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(?:\s*;[\x20-\x7e]*)?$")


def check_content_type(content_type: Any) -> str:
    """A MIME type such as ``text/plain`` or ``application/json; charset=utf-8`` (it goes into a header)."""
    if not isinstance(content_type, str) or len(content_type) > 200 or not _CONTENT_TYPE_RE.fullmatch(content_type):
        raise InvalidArgumentError("content_type must be a MIME type such as 'text/plain' or 'application/json'")
    return content_type


def check_timeout(timeout: Any, default: float) -> float:
    if timeout is None:
        return default
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"timeout must be a number of seconds, got {timeout!r}") from None
    if not 0 < value <= 55:
        raise InvalidArgumentError(
            f"timeout must be between 0 and 55 seconds (Platypush answers within 60), got {value:g}"
        )
    return value


def check_rules(rules: Any) -> dict[str, float]:
    """Notification rules ``{"pmin", "pmax", "gt", "lt", "st"}`` (numbers; ``None`` values are left out):
    ``pmin`` ≤ ``pmax`` non-negative seconds, ``st`` positive, ``lt`` below ``gt``; at least one."""
    if not isinstance(rules, Mapping):
        raise InvalidArgumentError('rules must be an object such as {"pmin": 10, "pmax": 120, "st": 0.5}')
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        raise InvalidArgumentError(f"unknown notification rule(s) {unknown}; use {', '.join(RULES)}")
    checked: dict[str, float] = {}
    for key, value in rules.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 1e15:
            raise InvalidArgumentError(f"notification rule {key} must be a number, got {value!r}")
        checked[key] = value
    if not checked:
        raise InvalidArgumentError(f"give at least one notification rule ({', '.join(RULES)})")
    if any(checked.get(k, 0) < 0 for k in ("pmin", "pmax")) or checked.get("st", 1) <= 0:
        raise InvalidArgumentError("pmin and pmax must be seconds (not negative), st a positive step")
    if checked.get("pmin", 0) > checked.get("pmax", float("inf")):
        raise InvalidArgumentError("pmin must not exceed pmax")
    if "gt" in checked and "lt" in checked and checked["lt"] >= checked["gt"]:
        raise InvalidArgumentError("lt must be below gt")
    return checked


def rules_query(rules: Mapping[str, float]) -> str:
    """``pmin=10&pmax=120&gt=101325.5`` in :data:`RULES` order, each value as :func:`rule_text` writes it."""
    return "&".join(f"{k}={rule_text(rules[k])}" for k in RULES if k in rules)


def rule_text(value: float) -> str:
    """A rule's value as a URI carries it (``/5/0/1?lt=10&gt=60&pmax=120``): a whole number without a
    decimal point, any other as the shortest decimal that reads back as the same number, never with
    an exponent (``101325.5``, ``1234567.5``, ``0.00001``; ``:g`` rounded them to 6 digits)."""
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return format(decimal.Decimal(repr(value)), "f")


def check_pre_subscriptions(rules: Any) -> list[dict[str, Any]]:
    """Validate pre-subscription rules (the original library sent invalid ones anyway)."""
    if not isinstance(rules, (list, tuple)):
        raise InvalidArgumentError(
            'pre-subscriptions must be a list of rules, e.g. [{"endpoint-name": "node*", "resource-path": ["/3303/*"]}]'
        )
    checked = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            raise InvalidArgumentError(f"pre-subscription rule {index} is not an object: {rule!r}")
        unknown = set(rule) - {"endpoint-name", "endpoint-type", "resource-path"}
        if unknown:
            raise InvalidArgumentError(
                f"pre-subscription rule {index}: unknown field(s) {sorted(unknown)} "
                "(allowed: endpoint-name, endpoint-type, resource-path)"
            )
        for key in ("endpoint-name", "endpoint-type"):
            value = rule.get(key)
            if key in rule and (not isinstance(value, str) or not value or len(value) > 64):
                raise InvalidArgumentError(f"pre-subscription rule {index}: {key} must be a string of 1-64 characters")
        if "endpoint-name" in rule and "*" in rule["endpoint-name"][:-1]:
            raise InvalidArgumentError(
                f"pre-subscription rule {index}: '*' is only allowed at the end of endpoint-name"
            )
        paths = rule.get("resource-path")
        if paths is not None:
            if isinstance(paths, str):
                paths = [paths]
            if not isinstance(paths, (list, tuple)) or not all(
                isinstance(p, str) and p.startswith("/") and 0 < len(p) <= 128 and "*" not in p[:-1] for p in paths
            ):
                raise InvalidArgumentError(
                    f"pre-subscription rule {index}: resource-path must be a list of paths "
                    "starting with '/' ('*' allowed only at the end)"
                )
            rule = {**rule, "resource-path": list(paths)}
        checked.append(dict(rule))
    return checked


# -- answers of the service (untrusted: every field checked, ProtocolError) ---------------

#: What an endpoint name (or Pelion device id) from the service must be: what actions take.
ENDPOINT = "an endpoint name (a non-empty string)"
#: The most bytes of a resource value read from the service's cache: 64 KiB, as a value that comes
#: through the notification channel (its base64 payload is at most 87,384 characters).
MAX_VALUE_BYTES = 64 * 1024
#: The most devices of one directory page (Pelion's ``limit`` is at most 1000).
MAX_PAGE = 1000
#: The limits ``GET /v2/limits`` reports (others are left out).
LIMITS = ("transaction-quota", "transaction-count", "endpoint-quota", "endpoint-count")


def _async_response_id(body: Any) -> str:
    """The id of a ``202 {"async-response-id": ...}`` answer."""
    body = untrusted.mapping(body, "the answer")
    name = "async-response-id"
    async_id = untrusted.text(untrusted.field(body, name), name, limit=1024, empty=False)
    if not async_id.isprintable():  # it is matched with the device's answer: no control characters
        raise untrusted.refused(name, "expected printable characters", async_id)
    return async_id


def _cached_value(endpoint: str, path: str, response: requests.Response) -> ResourceValue:
    """A resource value the service answered from its cache (``200``; the body is the value)."""
    ctype = response.headers.get("Content-Type", "").split(";")[0].strip()
    if ctype:
        untrusted.identifier(ctype, "Content-Type", check_content_type, "a MIME type such as text/plain")
    raw = response.content
    if len(raw) > MAX_VALUE_BYTES:
        raise untrusted.refused("the value", f"more than {MAX_VALUE_BYTES:,} bytes ({len(raw):,})")
    _, value, encoding = decode_payload(base64.standard_b64encode(raw).decode(), ctype)
    return ResourceValue(endpoint, path, value, ctype, encoding, None, True, raw)


def _utf8(content: bytes) -> str:
    """A text answer (UTF-8)."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise untrusted.refused("the answer", f"not UTF-8 text (byte {exc.start})") from None


#: The longest version text of ``GET /`` (e.g. ``DeviceServer v3.0.0-520\nREST version = v2``).
MAX_VERSION_TEXT = 1024


def _version_text(content: bytes) -> str:
    """The text of ``GET /``."""
    return untrusted.text(_utf8(content), "the answer", limit=MAX_VERSION_TEXT)


def _versions(body: Any) -> list[str]:
    """``GET /rest-versions``: ``["v1", "v2"]``."""
    items = untrusted.array(body, "the answer", limit=100)
    return [untrusted.text(v, f"[{i}]", limit=64, empty=False) for i, v in enumerate(items)]


def _limits(body: Any) -> dict[str, int]:
    """``GET /v2/limits``: the quotas and counters (whole numbers)."""
    body = untrusted.mapping(body, "the answer")
    return {key: untrusted.integer(body[key], key, minimum=0) for key in LIMITS if key in body}


def _endpoints(body: Any) -> list[dict[str, Any]]:
    """``GET /v2/endpoints``: ``[{"name", "type", "status", "q", "label"}]``."""
    items = untrusted.array(body, "the answer")
    found = []
    for index, item in enumerate(items):
        where = f"[{index}]"
        item = untrusted.mapping(item, where)
        name = untrusted.identifier(
            untrusted.field(item, "name", f"{where}.name"), f"{where}.name", check_endpoint, ENDPOINT
        )
        found.append(
            {
                "name": name,
                "type": untrusted.text(item.get("type", ""), f"{where}.type"),
                "status": untrusted.text(item.get("status", ""), f"{where}.status"),
                "q": untrusted.boolean(item.get("q", False), f"{where}.q"),
                "label": name,
            }
        )
    return found


def _device_page(body: Any) -> tuple[list[dict[str, Any]], bool]:
    """A Pelion ``DevicePage``: its devices (the fields :func:`_endpoint_of` reads) and ``has_more``."""
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise untrusted.refused("the answer", "expected a DevicePage with a data array", body)
    page = body
    data = untrusted.array(page["data"], "data", limit=MAX_PAGE)
    devices = []
    for index, device in enumerate(data):
        where = f"data[{index}]"
        device = untrusted.mapping(device, where)
        checked = {
            "id": untrusted.identifier(
                untrusted.field(device, "id", f"{where}.id"), f"{where}.id", check_endpoint, ENDPOINT
            )
        }
        for key in ("state", "endpoint_type", "name", "endpoint_name"):
            checked[key] = untrusted.optional_text(device.get(key), f"{where}.{key}")
        devices.append(checked)
    return devices, untrusted.boolean(page.get("has_more", False), "has_more")


def _endpoint_of(device: Mapping[str, Any]) -> dict[str, Any]:
    """A Pelion ``DeviceData`` (checked by :func:`_device_page`) as an entry of :meth:`MbedClient.get_endpoints`."""
    state = device.get("state") or ""
    return {
        "name": device["id"],
        "type": device.get("endpoint_type") or "",
        "status": "ACTIVE" if state == "registered" else state.upper(),
        "q": False,  # the directory does not say; registration events carry q
        "label": device.get("name") or device.get("endpoint_name") or device["id"],
    }


def _resources(body: Any) -> list[dict[str, Any]]:
    """``GET /v2/endpoints/{ep}``: ``[{"uri", "rt", "obs", "type"}]``."""
    items = untrusted.array(body, "the answer")
    found = []
    for index, item in enumerate(items):
        where = f"[{index}]"
        item = untrusted.mapping(item, where)
        uri = untrusted.field(item, "uri", f"{where}.uri")
        found.append(
            {
                "uri": untrusted.identifier(uri, f"{where}.uri", check_path, "a resource path such as /3303/0/5700"),
                "rt": untrusted.text(item.get("rt", ""), f"{where}.rt"),
                "obs": untrusted.boolean(item.get("obs", False), f"{where}.obs"),
                "type": untrusted.text(item.get("type", ""), f"{where}.type"),
            }
        )
    return found


def _uri_list(prefix: str, content: bytes) -> list[str]:
    """A ``text/uri-list`` of subscriptions: the resource paths (``prefix`` taken off each line)."""
    lines = untrusted.array([line.strip() for line in _utf8(content).splitlines() if line.strip()], "the answer")
    return [untrusted.text(line, f"line {i + 1}").removeprefix(prefix) for i, line in enumerate(lines)]


def _pre_subscriptions(body: Any) -> list[dict[str, Any]]:
    """``GET /v2/subscriptions``: the rules, as ``put_pre_subscriptions`` takes them."""
    rules = untrusted.array(body, "the answer")
    for index, rule in enumerate(rules):
        for key, value in untrusted.mapping(rule, f"[{index}]").items():
            paths = value if key == "resource-path" and isinstance(value, list) else [value]
            for path in untrusted.array(paths, f"[{index}].{key}", limit=1000):
                untrusted.text(path, f"[{index}].{key}", limit=128)
    try:
        return check_pre_subscriptions(rules)
    except InvalidArgumentError as exc:
        raise untrusted.refused("the answer", f"not pre-subscription rules: {exc}") from None


def _callback(body: Any) -> dict[str, Any]:
    """``GET /v2/notification/callback``: ``{"url", "headers"}`` (header values are secrets: never quoted)."""
    body = untrusted.mapping(body, "the answer")
    headers = untrusted.mapping(body.get("headers") or {}, "headers")
    if len(headers) > 100:
        raise untrusted.refused("headers", f"more than 100 headers ({len(headers):,})")
    return {
        "url": untrusted.url(untrusted.field(body, "url"), "url"),
        "headers": {
            untrusted.text(k, "headers", limit=256, empty=False): untrusted.text(v, "a header value", quote=False)
            for k, v in headers.items()
        },
    }


def _websocket(body: Any) -> dict[str, Any]:
    """The WebSocket channel's status (Pelion): ``{"queue_size", "status"}``."""
    body = untrusted.mapping(body, "the answer")
    return {
        "queue_size": untrusted.integer(body.get("queue_size", 0), "queue_size", minimum=0),
        "status": untrusted.text(body.get("status", ""), "status", limit=64),
    }


def _mechanism(body: Any) -> str | None:
    """``GET /v2/notification/channel`` (Pelion): its ``delivery_mechanism``."""
    body = untrusted.mapping(body, "the answer")
    return untrusted.optional_text(body.get("delivery_mechanism"), "delivery_mechanism", limit=64)


def _quote_path(path: str) -> str:
    return quote(path, safe="/")


# -- the client -----------------------------------------------------------------

Handler = Callable[[dict[str, Any]], Any]


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
    ):
        if not isinstance(api_key, str) or len(api_key) < 4:
            raise InvalidArgumentError("api_key must be the account's access key (a string)")
        if api not in ("auto", "connector", "pelion"):
            raise InvalidArgumentError(f"api must be 'auto', 'connector' or 'pelion', got {api!r}")
        self._connect(
            base_url,
            http,
            timeouts,
            retry,
            _mbed_error,
            secrets=[api_key],
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        )
        host = urlsplit(self.base_url).hostname or ""
        self.pelion = api == "pelion" or (api == "auto" and host.endswith(PELION_HOSTS))
        self._api_key = api_key
        self.pull_timeouts = Timeouts(self.http.timeouts.connect, pull_timeout)
        self.async_timeout = check_timeout(async_timeout, 20.0)
        self.registry = AsyncRegistry()
        self._handlers: dict[str, Handler] = {}
        self._poller: Any | None = None
        #: set by whoever consumes the channel and calls :meth:`handle_notification` (the plugin)
        self.external_channel = False
        #: the consumer's channel, as device calls wait for it: ``wait_ready(timeout) -> bool`` and
        #: ``why_down() -> str | None`` (the plugin's; the own poller's otherwise)
        self.channel_gate: Any | None = None

    def __repr__(self) -> str:
        return f"MbedClient({self.http.redactor.url(self.base_url)!r}, api={'pelion' if self.pelion else 'connector'})"

    def close(self) -> None:
        self.stop_long_polling()
        super().close()

    # -- plumbing ----------------------------------------------------------

    def _ep(self, endpoint: str) -> str:
        return quote(check_endpoint(endpoint), safe="")

    def _parse(self, response: requests.Response, method: str, path: str) -> Any:
        return parse_json(response, self.http.endpoint(method, self.http.url(path)), self.http.redactor)

    def _async_id(self, response: requests.Response) -> str:
        """The ``async-response-id`` of a ``202`` answer."""
        endpoint = self.http.endpoint(response.request.method or "", response.url)
        body = parse_json(response, endpoint, self.http.redactor)
        return self.http.parsed(body, _async_response_id, endpoint, response.status_code)

    def _await(self, async_id: str, what: str, timeout: float | None, started: float | None = None) -> AsyncResponse:
        """Wait for the async response. With ``started`` (``time.monotonic()`` when the call began),
        ``timeout`` bounds the whole call, the request included, so that an action that
        asked for at most 55 s answers within Platypush's 60 s however slow the request was."""
        limit = self.async_timeout if timeout is None else timeout
        left = limit if started is None else max(0.0, limit - (time.monotonic() - started))
        response = self.registry.wait(async_id, left)
        if response is None:
            hint = "" if self.channel_running() else " (is the notification channel being consumed?)"
            raise DeviceTimeoutError(f"{what}: no answer from the device within {limit:g} s{hint}", endpoint=what)
        if not response.ok:
            meaning = STATUS_MEANINGS.get(response.status, "")
            text = f"{what}: the device answered {response.status}"
            if response.error:
                text += f" {response.error}"
            if meaning:
                text += f" ({meaning})"
            raise DeviceError(
                self.redact(text),
                status=response.status,
                endpoint=what,
                server_message=response.error,
                code=response.error,
            )
        return response

    def channel_running(self) -> bool:
        """Whether this client's own long-polling thread runs (the plugin feeds it otherwise)."""
        return self._poller is not None or self.external_channel

    #: Pauses between two tries of a request answered ``412 No notification channel`` while the channel starts.
    NO_CHANNEL_PAUSES = (0.1, 0.2, 0.4, 0.8, 1.0)

    def _gate(self) -> Any | None:
        return self.channel_gate if self.channel_gate is not None else self._poller

    def _with_channel(self, send: Callable[[], requests.Response], limit: float, started: float) -> requests.Response:
        """``send()`` a request that needs the notification channel. While the consumer's channel is
        starting, it is waited for (within ``limit`` seconds from ``started``), and a ``412 No notification
        channel`` is tried again; a ``412`` while the channel is really down says why, in one line."""
        gate = self._gate()
        if gate is not None and gate.why_down() is None:
            gate.wait_ready(max(0.0, limit - (time.monotonic() - started)))
        for attempt in itertools.count():
            try:
                return send()
            except NoChannelError as exc:
                if gate is None:  # nobody here consumes a channel: the service's answer says it all
                    raise
                pause = self.NO_CHANNEL_PAUSES[min(attempt, len(self.NO_CHANNEL_PAUSES) - 1)]
                why = gate.why_down()
                if why is None and limit - (time.monotonic() - started) <= pause:
                    why = f"the notification channel was not ready within {limit:g} s"
                if why is not None:
                    raise NoChannelError(
                        one_line(f"{exc}; {why}"),
                        status=exc.status,
                        endpoint=exc.endpoint,
                        server_message=exc.server_message,
                        code=exc.code,
                    ) from None
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count() never ends

    def _follow(self, async_id: str, what: str, limit: float, started: float, wait: bool) -> AsyncResponse | str:
        """After a ``202``: the device's answer (``wait``), else the async id, forgotten here
        (nobody waits: the answer arrives as an event; keeping it leaked one entry per call)."""
        self.registry.expect(async_id)  # picks an answer that came before the 202
        if not wait:
            self.registry.wait(async_id, 0)
            return async_id
        return self._await(async_id, what, limit, started)

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
    ) -> AsyncResponse | ResourceValue | str | None:
        """One resource request; returns the async response, a cached value, the
        async id (``wait=False``) or ``None`` (``noResp``)."""
        started = time.monotonic()
        ep, path = self._ep(endpoint), check_path(path)
        limit = check_timeout(timeout, self.async_timeout)
        if body is not None:
            content_type = check_content_type(content_type)
        what = f"{method} {endpoint}{path}"
        if self.pelion and not (no_resp or cache_only):
            return self._pelion_call(method, ep, path, body, content_type, what, limit, started, wait)
        params = {name: "true" for name, on in (("noResp", no_resp), ("cacheOnly", cache_only)) if on}
        headers = {"Content-Type": content_type} if body is not None else None
        send = functools.partial(
            self.http.request,
            method,
            f"v2/endpoints/{ep}{_quote_path(path)}",
            params=params or None,
            data=body,
            headers=headers,
            idempotent=method in ("GET", "PUT"),
        )
        response = self._with_channel(send, limit, started)  # a 412 is answered before anything is done
        if response.status_code == 200 and method == "GET":
            what_ = self.http.endpoint(method, self.http.url(f"v2/endpoints/{ep}{_quote_path(path)}"))
            return self.http.parsed(response, functools.partial(_cached_value, endpoint, path), what_, 200)
        if response.status_code == 205:
            raise NoCacheError(f"{what}: HTTP 205 ({STATUS_MEANINGS[205]})", status=205, endpoint=what)
        if response.status_code != 202:
            return None  # 204 (noResp), or 200/201 without an async id: done
        return self._follow(self._async_id(response), what, limit, started, wait)

    def _pelion_call(
        self,
        method: str,
        ep: str,
        path: str,
        body: bytes | None,
        content_type: str,
        what: str,
        limit: float,
        started: float,
        wait: bool,
    ) -> AsyncResponse | str:
        """``POST /v2/device-requests/{ep}?async-id=<our id>`` (Pelion / Izuma): no 202 race."""
        async_id = uuid.uuid4().hex
        request = {"method": method, "uri": path}
        if body:
            request["payload-b64"] = base64.standard_b64encode(body).decode("ascii")
            request["content-type"] = content_type
        if wait:  # before the request: the answer may come back before it returns
            self.registry.expect(async_id)
        send = functools.partial(
            self.http.request,
            "POST",
            f"v2/device-requests/{ep}",
            params={"async-id": async_id},
            json_body=request,
            idempotent=method == "GET",
        )
        try:
            self._with_channel(send, limit, started) if wait else send()
        except BaseException:
            self.registry.wait(async_id, 0)
            raise
        if not wait:  # nobody waits: the answer arrives as an event (registering it leaked one entry per call)
            return async_id
        return self._await(async_id, what, limit, started)

    # -- versions, limits, endpoints --------------------------------------

    def _connector_only(self, what: str, instead: str) -> None:
        """Refuse, in one line, an operation that the Pelion / Izuma API does not have."""
        if self.pelion:
            raise NotInThisApiError(f"{what} does not exist in the Pelion / Izuma API (api: pelion); {instead}")

    def get_connector_version(self) -> str:
        """``GET /``: the service's version text, e.g. ``"DeviceServer v3.0.0-520\\nREST version = v2"`` (Connector)."""
        self._connector_only("GET / (the service version)", "it has no version endpoint")
        response = self.http.request("GET", "")
        return self.http.parsed(response.content, _version_text, self.http.endpoint("GET", self.base_url), 200)

    def get_api_versions(self) -> list[str]:
        """``GET /rest-versions``: e.g. ``["v1", "v2"]`` (Connector)."""
        self._connector_only("GET /rest-versions", "its paths are versioned (/v2, /v3)")
        return self.http.request_json("GET", "rest-versions", parse=_versions)

    def get_limits(self) -> dict[str, Any]:
        """``GET /v2/limits``: the account's quotas and counters (Connector)."""
        self._connector_only("GET /v2/limits", "usage figures are in the portal or /v3/metrics, quotas in the contract")
        return self.http.request_json("GET", "v2/limits", parse=_limits)

    def get_endpoints(self, type: str | None = None, all_states: bool = False) -> list[dict[str, Any]]:
        """The registered endpoints: ``[{"name", "type", "status", "q", "label"}]`` in both APIs.

        ``name`` is what every other call takes as ``endpoint`` (Pelion / Izuma: the 32-hex
        device id); ``label`` is the device's own name (equal to ``name`` on the Connector);
        ``q`` is always a boolean. Connector: ``GET /v2/endpoints[?type=]``. Pelion / Izuma:
        the device directory ``GET /v3/devices/``, every page (see :meth:`get_devices`).

        :param type: only endpoints of this type (``ept``).
        :param all_states: Pelion / Izuma: also devices that are not registered (``status``
            is then the directory's ``state`` in capitals, e.g. ``"DEREGISTERED"``).
        """
        if self.pelion:
            devices = self.get_devices(type=type, state=None if all_states else "registered")
            return [_endpoint_of(d) for d in devices]
        return self.http.request_json("GET", "v2/endpoints", params={"type": type} if type else None, parse=_endpoints)

    def get_devices(
        self, type: str | None = None, state: str | None = "registered", page_size: int = 100, max_pages: int = 100
    ) -> list[dict[str, Any]]:
        """``GET /v3/devices/`` (Pelion / Izuma device directory), following ``after``/``has_more``
        over at most ``max_pages`` pages: the ``DeviceData`` objects as the service sends them.

        :param type: ``endpoint_type__eq``.
        :param state: ``state__eq`` (``None``: every state).
        :param page_size: ``limit`` of one page (2-1000).
        :param max_pages: the most pages read; more gives a :class:`ProtocolError` (a looping ``after``).
        """
        params: dict[str, Any] = {"limit": min(1000, max(2, int(page_size))), "order": "ASC"}
        params.update({k: v for k, v in (("endpoint_type__eq", type), ("state__eq", state)) if v})
        devices: list[dict[str, Any]] = []
        for _ in range(max_pages):
            data, has_more = self.http.request_json("GET", "v3/devices/", params=params, parse=_device_page)
            devices += data
            if not has_more or not data:
                return devices
            if data[-1]["id"] == params.get("after"):
                raise ProtocolError("GET /v3/devices/: the next page starts where the last one did; giving up")
            params["after"] = data[-1]["id"]
        raise ProtocolError(f"GET /v3/devices/: still more after {max_pages} pages of {params['limit']}; giving up")

    def get_resources(self, endpoint: str) -> list[dict[str, Any]]:
        """``GET /v2/endpoints/{ep}``: ``[{"uri", "rt", "obs", "type"}]`` (``obs`` always a boolean)."""
        return self.http.request_json("GET", f"v2/endpoints/{self._ep(endpoint)}", parse=_resources)

    # -- resources -----------------------------------------------------------

    def get_resource_value(
        self, endpoint: str, path: str, timeout: float | None = None, cache_only: bool = False, no_resp: bool = False
    ) -> ResourceValue | None:
        """Read a resource: the cached value (``200``) or the device's answer.

        :return: the value, or ``None`` with ``no_resp`` (nothing comes back).
        :raises DeviceTimeoutError: the device did not answer within ``timeout``.
        :raises DeviceError: the device answered an error status.
        """
        result = self._device_call("GET", endpoint, path, no_resp=no_resp, cache_only=cache_only, timeout=timeout)
        if result is None or isinstance(result, ResourceValue):
            return result
        assert isinstance(result, AsyncResponse)
        raw, value, encoding = result.decoded()
        return ResourceValue(
            endpoint, check_path(path), value, result.content_type, encoding, result.max_age, False, raw
        )

    @staticmethod
    def _body(value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if isinstance(value, bool):
            return b"1" if value else b"0"
        if isinstance(value, (str, int, float)):
            return str(value).encode("utf-8")
        raise InvalidArgumentError(f"value must be text, a number or bytes, got {type(value).__name__}")

    def put_resource_value(
        self,
        endpoint: str,
        path: str,
        value: Any,
        content_type: str = "text/plain",
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
    ) -> Any:
        """Write a resource: the raw value with ``content_type`` (never JSON-encoded).

        :return: the async response (``wait``), the async id (``wait=False``) or ``None`` (``no_resp``).
        """
        body = self._body(value)
        if self.pelion and not body:
            raise InvalidArgumentError("value must not be empty (the Pelion / Izuma API requires a value to write)")
        return self._device_call(
            "PUT",
            endpoint,
            path,
            body=body,
            content_type=content_type,
            no_resp=no_resp,
            timeout=timeout,
            wait=wait,
        )

    def post_resource(
        self,
        endpoint: str,
        path: str,
        data: Any = None,
        content_type: str = "text/plain",
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
    ) -> Any:
        """Execute a resource, passing ``data`` (optional) to the device's function."""
        body = self._body(data) if data is not None else b""
        return self._device_call(
            "POST", endpoint, path, body=body, content_type=content_type, no_resp=no_resp, timeout=timeout, wait=wait
        )

    def delete_resource(
        self, endpoint: str, path: str, timeout: float | None = None, no_resp: bool = False, wait: bool = True
    ) -> Any:
        """Delete a resource (the device must handle it)."""
        return self._device_call("DELETE", endpoint, path, no_resp=no_resp, timeout=timeout, wait=wait)

    def delete_endpoint(self, endpoint: str, timeout: float | None = None, wait: bool = True) -> Any:
        """``DELETE /v2/endpoints/{ep}`` (the original ``deleteEndpoint``; not in the Connector docs).

        Refused with ``api: pelion``: that API has no deregistration; ``DELETE /v3/devices/{id}/``
        removes the device from the directory (its credentials with it), which is not the same."""
        self._connector_only(
            "DELETE /v2/endpoints/{device-id} (deregistration)",
            "removing a device from the directory (DELETE /v3/devices/{id}/) is not done by this action",
        )
        what = f"DELETE {endpoint}"
        started, limit = time.monotonic(), check_timeout(timeout, self.async_timeout)
        response = self._with_channel(
            functools.partial(self.http.request, "DELETE", f"v2/endpoints/{self._ep(endpoint)}"), limit, started
        )
        if response.status_code != 202:
            return None
        return self._follow(self._async_id(response), what, limit, started, wait)

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
            self.set_notification_rules(endpoint, path, timeout=limit, **checked)
            limit = max(0.1, limit - (time.monotonic() - started))
            started = time.monotonic()
        send = functools.partial(self.http.request, "PUT", f"v2/subscriptions/{self._ep(endpoint)}{_quote_path(path)}")
        response = self._with_channel(send, limit, started)
        if response.status_code == 202:
            self._follow(self._async_id(response), what, limit, started, wait)
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
        if not self.pelion:
            raise NotInThisApiError("notification rules are not part of the Connector API (use api: pelion)")
        uri = f"{path}?{rules_query(rules)}"
        self._pelion_call(
            "PUT", self._ep(endpoint), uri, None, "", f"rules {endpoint}{uri}", limit, time.monotonic(), True
        )
        return rules

    def get_resource_subscription(self, endpoint: str, path: str) -> bool:
        """``GET /v2/subscriptions/{ep}/{path}``: whether the resource is subscribed."""
        try:
            self.http.request("GET", f"v2/subscriptions/{self._ep(endpoint)}{_quote_path(check_path(path))}")
        except NotFoundError:
            return False
        return True

    def get_endpoint_subscriptions(self, endpoint: str) -> list[str]:
        """``GET /v2/subscriptions/{ep}``: the subscribed resource paths (``[]`` on 404, as the Node client)."""
        ep = self._ep(endpoint)
        try:
            content = self.http.request("GET", f"v2/subscriptions/{ep}").content
        except NotFoundError:
            return []
        endpoint = self.http.endpoint("GET", self.http.url(f"v2/subscriptions/{ep}"))
        return self.http.parsed(content, functools.partial(_uri_list, f"/subscriptions/{ep}"), endpoint, 200)

    def unsubscribe(self, endpoint: str, path: str) -> None:
        """``DELETE /v2/subscriptions/{ep}/{path}`` (original ``deleteResourceSubscription``)."""
        self.http.request("DELETE", f"v2/subscriptions/{self._ep(endpoint)}{_quote_path(check_path(path))}")

    def delete_endpoint_subscriptions(self, endpoint: str) -> None:
        """``DELETE /v2/subscriptions/{ep}``."""
        self.http.request("DELETE", f"v2/subscriptions/{self._ep(endpoint)}")

    def delete_all_subscriptions(self) -> None:
        """``DELETE /v2/subscriptions``: every subscription of the account (on Pelion: the pre-subscriptions)."""
        self.http.request("DELETE", "v2/subscriptions")

    def put_pre_subscriptions(self, rules: Sequence[Mapping[str, Any]]) -> None:
        """``PUT /v2/subscriptions``: replace the pre-subscriptions (``[]`` clears them;
        existing subscriptions are removed by the service)."""
        self.http.request("PUT", "v2/subscriptions", json_body=check_pre_subscriptions(rules))

    def get_pre_subscriptions(self) -> list[dict[str, Any]]:
        """``GET /v2/subscriptions``: the pre-subscription rules."""
        return self.http.request_json("GET", "v2/subscriptions", parse=_pre_subscriptions)

    # -- notification channel ------------------------------------------------

    def put_callback(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        """``PUT /v2/notification/callback``: deliver notifications to ``url`` with ``headers``
        (the service sends a test ``PUT`` first). Header values are treated as secrets."""
        if not isinstance(url, str) or not re.match(r"^https?://[^/]+", url):
            raise InvalidArgumentError(f"url must be an http:// or https:// URL, got {url!r}")
        if headers is not None and (
            not isinstance(headers, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise InvalidArgumentError("headers must map header names to string values")
        if len(url) + sum(len(v) for v in (headers or {}).values()) > 400:
            raise InvalidArgumentError("the callback URL and header values must total at most 400 characters")
        for value in (headers or {}).values():
            self.add_secret(value)
        body: dict[str, Any] = {"url": url}
        if headers:
            body["headers"] = dict(headers)
        self.http.request("PUT", "v2/notification/callback", json_body=body)

    def get_callback(self) -> dict[str, Any] | None:
        """``GET /v2/notification/callback``: ``{"url", "headers"}``, or ``None`` when none is set."""
        try:
            return self.http.request_json("GET", "v2/notification/callback", parse=_callback)
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
            params={"noWait": "true"} if no_wait and not self.pelion else None,
            idempotent=False,
            timeouts=self.pull_timeouts,
        )
        if response.status_code == 204 or not response.content.strip():
            return None
        return response.content

    def register_websocket(self) -> dict[str, Any]:
        """``PUT /v2/notification/websocket`` (Pelion / Izuma): create the WebSocket channel."""
        return self.http.request_json("PUT", "v2/notification/websocket", parse=_websocket)

    def get_websocket(self) -> dict[str, Any] | None:
        """``GET /v2/notification/websocket``: the channel status, or ``None``."""
        try:
            return self.http.request_json("GET", "v2/notification/websocket", parse=_websocket)
        except NotFoundError:
            return None

    def delete_websocket(self) -> bool:
        """``DELETE /v2/notification/websocket``; returns whether it existed."""
        try:
            self.http.request("DELETE", "v2/notification/websocket")
        except NotFoundError:
            return False
        return True

    def connect_websocket(self, timeout: float = 10.0, max_message: int = 16 << 20) -> Any:
        """Open ``/v2/notification/websocket-connect`` (a bounded ``websocket-client`` connection:
        :mod:`platypush_ext.core.wsclient`; a message over ``max_message`` bytes drops it)."""
        import websocket

        from ..core.wsclient import connect

        url = self.http.url("v2/notification/websocket-connect").replace("http", "ws", 1)
        try:
            header = [f"Authorization: Bearer {self._api_key}"]
            return connect(url, timeout, max_message=max_message, header=header)
        except (websocket.WebSocketException, OSError) as exc:
            from ..core.errors import ServiceConnectionError

            text = self.redact(f"{type(exc).__name__}: {exc}")
            raise ServiceConnectionError(f"GET /v2/notification/websocket-connect: {text}") from None

    def get_channel(self) -> str | None:
        """``GET /v2/notification/channel`` (Pelion): ``CALLBACK``, ``LONG_POLLING``, ``WEB_SOCKET`` or ``None``."""
        try:
            return self.http.request_json("GET", "v2/notification/channel", parse=_mechanism)
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

    def handle_notification(self, message: Any) -> list[Notification]:
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
        from .channels import LongPollChannel

        if self._poller is not None:
            return
        self._poller = LongPollChannel(self, on_message=self.handle_notification, no_wait_first=no_wait)
        self._poller.start_thread()

    def stop_long_polling(self, timeout: float = 1.0) -> None:
        """Stop the long-polling thread (it exits when its current poll returns)."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop(timeout)
