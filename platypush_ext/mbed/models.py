"""What the mbed service answers, as the client returns it (framework-free): a resource's value
(:class:`ResourceValue`), and the parsers of every other answer — endpoints, Pelion / Izuma devices,
resources, subscriptions, pre-subscriptions, the callback, the WebSocket channel, versions and limits.

What a server sends is untrusted input: every field goes through
:mod:`platypush_ext.core.untrusted`'s checks, and bad data is a one-line
:class:`~platypush_ext.core.errors.ProtocolError` naming the field. Identifiers must pass the checks an
action applies to them as arguments (:mod:`platypush_ext.mbed.checks`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import requests

from ..core import untrusted
from ..core.errors import InvalidArgumentError
from ..core.untrusted import JSON, JSONObject
from .checks import check_content_type, check_endpoint, check_path, check_pre_subscriptions
from .messages import decode_payload

#: The channel kinds of the plugin by Pelion's ``delivery_mechanism``.
MECHANISMS = {"LONG_POLLING": "long_poll", "CALLBACK": "callback", "WEB_SOCKET": "websocket"}


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

    def to_dict(self) -> JSONObject:
        """The value's fields, its raw bytes aside."""
        data = asdict(self)
        data.pop("raw")
        return data


#: What an endpoint name (or Pelion device id) from the service must be: what actions take.
ENDPOINT = "an endpoint name (a non-empty string)"
#: The most bytes of a resource value read from the service's cache: 64 KiB, as a value that comes
#: through the notification channel (its base64 payload is at most 87,384 characters).
MAX_VALUE_BYTES = 64 * 1024
#: The most devices of one directory page (Pelion's ``limit`` is at most 1000).
MAX_PAGE = 1000
#: The limits ``GET /v2/limits`` reports (others are left out).
LIMITS = ("transaction-quota", "transaction-count", "endpoint-quota", "endpoint-count")


def async_response_id(body: JSON) -> str:
    """The id of a ``202 {"async-response-id": ...}`` answer."""
    body = untrusted.mapping(body, "the answer")
    name = "async-response-id"
    async_id = untrusted.text(untrusted.field(body, name), name, limit=1024, empty=False)
    if not async_id.isprintable():  # it is matched with the device's answer: no control characters
        raise untrusted.refused(name, "expected printable characters", async_id)
    return async_id


def cached_value(endpoint: str, path: str, response: requests.Response) -> ResourceValue:
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


def version_text(content: bytes) -> str:
    """The text of ``GET /``."""
    return untrusted.text(_utf8(content), "the answer", limit=MAX_VERSION_TEXT)


def versions(body: JSON) -> list[str]:
    """``GET /rest-versions``: ``["v1", "v2"]``."""
    items = untrusted.array(body, "the answer", limit=100)
    return [untrusted.text(v, f"[{i}]", limit=64, empty=False) for i, v in enumerate(items)]


def limits(body: JSON) -> dict[str, int]:
    """``GET /v2/limits``: the quotas and counters (whole numbers)."""
    body = untrusted.mapping(body, "the answer")
    return {key: untrusted.integer(body[key], key, minimum=0) for key in LIMITS if key in body}


def endpoint_list(body: JSON) -> list[JSONObject]:
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
                "suspended": False,  # the Connector cannot suspend a device
            }
        )
    return found


def device_page(body: JSON) -> tuple[list[JSONObject], bool]:
    """A Pelion ``DevicePage``: its devices (the fields :func:`endpoint_of` reads) and ``has_more``."""
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise untrusted.refused("the answer", "expected a DevicePage with a data array", body)
    page = body
    data = untrusted.array(page["data"], "data", limit=MAX_PAGE)
    devices = []
    for index, device in enumerate(data):
        where = f"data[{index}]"
        device = untrusted.mapping(device, where)
        checked: dict[str, str | bool | None] = {
            "id": untrusted.identifier(
                untrusted.field(device, "id", f"{where}.id"), f"{where}.id", check_endpoint, ENDPOINT
            )
        }
        for key in ("state", "endpoint_type", "name", "endpoint_name", "lifecycle_status"):
            checked[key] = untrusted.optional_text(device.get(key), f"{where}.{key}")
        for key in ("operator_suspended", "system_suspended"):  # the 2019-11 file's lifecycle fields
            if device.get(key) is not None:
                checked[key] = untrusted.boolean(device[key], f"{where}.{key}", strings=False)
        devices.append(checked)
    return devices, untrusted.boolean(page.get("has_more", False), "has_more")


def endpoint_of(device: Mapping[str, JSON]) -> JSONObject:
    """A Pelion ``DeviceData`` (checked by :func:`device_page`) as an entry of :meth:`~platypush_ext.mbed.client.MbedClient.get_endpoints`."""
    state = device.get("state") or ""
    return {
        "name": device["id"],
        "type": device.get("endpoint_type") or "",
        "status": "ACTIVE" if state == "registered" else state.upper(),
        "q": False,  # the directory does not say; registration events carry q
        "label": device.get("name") or device.get("endpoint_name") or device["id"],
        "suspended": suspended(device),
    }


def suspended(device: Mapping[str, JSON]) -> bool:
    """Whether a ``DeviceData`` is suspended (by the operator or the system: ``lifecycle_status: blocked``).

    :param device: the device, as :func:`device_page` checked it.
    """
    flags = (device.get("operator_suspended"), device.get("system_suspended"))
    return any(flag is True for flag in flags) or device.get("lifecycle_status") == "blocked"


def resource_list(body: JSON) -> list[JSONObject]:
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


def uri_list(prefix: str, content: bytes) -> list[str]:
    """A ``text/uri-list`` of subscriptions: the resource paths (``prefix`` taken off each line)."""
    lines = untrusted.array([line.strip() for line in _utf8(content).splitlines() if line.strip()], "the answer")
    return [untrusted.text(line, f"line {i + 1}").removeprefix(prefix) for i, line in enumerate(lines)]


def pre_subscriptions(body: JSON) -> list[JSONObject]:
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


def callback(body: JSON) -> JSONObject:
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


def websocket_status(body: JSON) -> JSONObject:
    """The WebSocket channel's status (Pelion): ``{"queue_size", "status"}``."""
    body = untrusted.mapping(body, "the answer")
    return {
        "queue_size": untrusted.integer(body.get("queue_size", body.get("queueSize", 0)), "queue_size", minimum=0),
        "status": untrusted.text(body.get("status", ""), "status", limit=64),
    }


def delivery_mechanism(body: JSON) -> str | None:
    """``GET /v2/notification/channel`` (Pelion): its ``delivery_mechanism``."""
    body = untrusted.mapping(body, "the answer")
    return untrusted.optional_text(body.get("delivery_mechanism"), "delivery_mechanism", limit=64)
