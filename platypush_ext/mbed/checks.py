"""The checks of what a caller gives the mbed client (framework-free): endpoint names, resource paths,
content types, timeouts, notification rules, pre-subscription rules, callback URLs and values to write.
Each refuses a bad argument with a one-line :class:`~platypush_ext.core.errors.InvalidArgumentError`
before anything is sent; the parsers of the service's answers apply the same checks to what comes back.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from urllib.parse import quote

from ..core.errors import InvalidArgumentError
from ..core.untrusted import JSON, JSONObject

#: The notification rules of a resource (LwM2M write attributes): periods in seconds, thresholds.
RULES = ("pmin", "pmax", "gt", "lt", "st")


def check_api(api: JSON) -> str:
    """The API a client speaks: ``auto``, ``connector`` or ``pelion``.

    :param api: the configured API.
    """
    if api not in ("auto", "connector", "pelion"):
        raise InvalidArgumentError(f"api must be 'auto', 'connector' or 'pelion', got {api!r}")
    return str(api)


def check_endpoint(endpoint: JSON) -> str:
    """An endpoint name: a non-empty string."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise InvalidArgumentError(f"endpoint must be a non-empty endpoint name, got {endpoint!r}")
    return endpoint


def check_path(path: JSON) -> str:
    """A resource path such as ``/3303/0/5700`` (a missing leading ``/`` is added)."""
    if not isinstance(path, str) or not path.strip("/ "):
        raise InvalidArgumentError(f"path must be a resource path such as '/3303/0/5700', got {path!r}")
    if "?" in path or "#" in path:
        raise InvalidArgumentError(
            f"path must not contain '?' or '#': {path!r} (notification rules: set_notification_rules or subscribe's rules)"
        )
    return path if path.startswith("/") else "/" + path


_CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(?:\s*;[\x20-\x7e]*)?$")


def check_content_type(content_type: JSON) -> str:
    """A MIME type such as ``text/plain`` or ``application/json; charset=utf-8`` (it goes into a header)."""
    if not isinstance(content_type, str) or len(content_type) > 200 or not _CONTENT_TYPE_RE.fullmatch(content_type):
        raise InvalidArgumentError("content_type must be a MIME type such as 'text/plain' or 'application/json'")
    return content_type


def check_timeout(timeout: JSON, default: float) -> float:
    """A timeout in seconds, above 0 and at most 55 (Platypush answers an action within 60).

    :param timeout: the caller's timeout (``None``: ``default``).
    :param default: the timeout when none is given.
    """
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


#: The published bounds of a device request's ``retry`` and ``expiry-seconds`` (``POST /v2/device-requests``).
RETRY_BOUNDS, EXPIRY_BOUNDS = (0, 10), (60, 2_592_000)


def check_retry(retry: JSON) -> int | None:
    """A device request's ``retry`` (``None``: the service's default, 0, or 2 for a queue-mode device):
    a whole number from 0 to 10, the transmissions after the first.

    :param retry: the caller's value.
    """
    return _bounded("retry", retry, RETRY_BOUNDS, "retries after the first delivery attempt")


def check_expiry(expiry_seconds: JSON) -> int | None:
    """A device request's ``expiry-seconds`` (``None``: the service's default, 2 h, or 3 days for a
    queue-mode device): a whole number of seconds from 60 to 2,592,000 (30 days).

    :param expiry_seconds: the caller's value.
    """
    return _bounded("expiry_seconds", expiry_seconds, EXPIRY_BOUNDS, "seconds")


def _bounded(name: str, value: JSON, bounds: tuple[int, int], unit: str) -> int | None:
    if value is None:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,9}\s*", value):
        value, whole = int(value), True
    if isinstance(value, bool) or not whole or not bounds[0] <= value <= bounds[1]:
        shown = repr(value) if not isinstance(value, str) else repr(value[:40])
        raise InvalidArgumentError(
            f"{name} must be a whole number from {bounds[0]:,} to {bounds[1]:,} ({unit}; the service's bounds), got {shown}"
        )
    return int(value)


def check_block(category: JSON, description: JSON) -> dict[str, str]:
    """The body of ``POST /v3/devices/{id}/suspend`` or ``/resume``: a block ``category`` (a reference of
    ``/v3/device-block-categories/`` such as ``maintenance``: ``[a-z0-9_]``, at most 32) and an optional
    ``description`` (at most 2,000 characters).

    :param category: the block category.
    :param description: why (``None``: none).
    """
    if not isinstance(category, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", category):
        raise InvalidArgumentError(
            "category must be a block category such as 'maintenance' or 'lost_or_stolen' (a-z, 0-9, _; at most 32)"
        )
    body = {"category": category}
    if description is not None:
        if not isinstance(description, str) or len(description) > 2000:
            raise InvalidArgumentError("description must be text of at most 2,000 characters")
        body["description"] = description
    return body


def check_rules(rules: JSON) -> dict[str, float]:
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


def check_pre_subscriptions(rules: JSON) -> list[JSONObject]:
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
            if isinstance(paths, (list, tuple)) and not paths:
                raise InvalidArgumentError(
                    f"pre-subscription rule {index}: resource-path must not be empty "
                    "(leave it out to match every resource)"
                )
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


def check_callback(url: JSON, headers: JSON) -> None:
    """A callback URL (``http://`` or ``https://``) and its headers (names to string values), at most
    400 characters together as the service allows.

    :param url: where the service delivers notifications.
    :param headers: the headers it sends with them (``None``: none).
    """
    if not isinstance(url, str) or not re.match(r"^https?://[^/]+", url):
        raise InvalidArgumentError(f"url must be an http:// or https:// URL, got {url!r}")
    if headers is not None and (
        not isinstance(headers, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise InvalidArgumentError("headers must map header names to string values")
    if len(url) + sum(len(v) for v in (headers or {}).values()) > 400:
        raise InvalidArgumentError("the callback URL and header values must total at most 400 characters")


def value_bytes(value: JSON) -> bytes:
    """What to send for a value to write: bytes as they are, text as UTF-8, numbers as text, booleans as
    ``1`` / ``0`` (never JSON-encoded).

    :param value: text, a number, a boolean or bytes.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, (str, int, float)):
        return str(value).encode("utf-8")
    raise InvalidArgumentError(f"value must be text, a number or bytes, got {type(value).__name__}")


def endpoint_segment(endpoint: JSON) -> str:
    """A checked endpoint name as one segment of a URL path (quoted).

    :param endpoint: the endpoint name (:func:`check_endpoint`).
    """
    return quote(check_endpoint(endpoint), safe="")


def path_segments(path: str) -> str:
    """A resource path as URL path segments (quoted, its ``/`` kept).

    :param path: a checked resource path (:func:`check_path`).
    """
    return quote(path, safe="/")
