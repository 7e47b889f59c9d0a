"""Parsing what the mbed service sends on its notification channel (framework-free): the
NotificationMessage of a long poll, a callback or a WebSocket frame, its elements, async responses
and base64 payloads."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..http import ProtocolError

#: The kinds of elements of a NotificationMessage, as the original library's handler names.
EVENT_KINDS = (
    "notifications",
    "registrations",
    "reg-updates",
    "de-registrations",
    "registrations-expired",
    "async-responses",
)

TEXT_TYPES = ("text/", "application/json", "application/link-format", "application/xml")


def decode_payload(payload: str | None, content_type: str | None) -> tuple[bytes, str, str]:
    """Decode a base64 ``payload``: ``(raw bytes, value, encoding)``.

    ``value`` is UTF-8 text for textual content types (and unknown ones that
    decode as UTF-8), otherwise the base64 text itself; ``encoding`` says which
    (``"text"`` or ``"base64"``). Raises :class:`ProtocolError` on bad base64.
    """
    if payload is None or payload == "":
        return b"", "", "text"
    if not isinstance(payload, str):
        raise ProtocolError(f"payload is not a base64 string ({type(payload).__name__})")
    try:
        raw = base64.b64decode(payload.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ProtocolError("payload is not valid base64") from None
    ctype = (content_type or "").lower()
    if not ctype or ctype.startswith(TEXT_TYPES):
        try:
            return raw, raw.decode("utf-8"), "text"
        except UnicodeDecodeError:
            pass
    return raw, payload, "base64"


def _as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _as_int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class AsyncResponse:
    """One element of ``async-responses``."""

    async_id: str
    status: int
    payload: str | None = None
    content_type: str = ""
    max_age: int | None = None
    error: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> AsyncResponse:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ProtocolError(f"async response without an id: {str(data)[:100]!r}")
        status = _as_int(data.get("status"))
        if status is None:
            raise ProtocolError(f"async response {data['id']!r} without a valid status")
        payload = data.get("payload")
        if payload is not None and not isinstance(payload, str):
            raise ProtocolError(f"async response {data['id']!r}: payload is not a string")
        return cls(
            async_id=data["id"],
            status=status,
            payload=payload,
            content_type=str(data.get("ct") or ""),
            max_age=_as_int(data.get("max-age")),
            error=data.get("error") or None,
        )

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.error

    def decoded(self) -> tuple[bytes, str, str]:
        return decode_payload(self.payload, self.content_type)


@dataclass(frozen=True)
class Notification:
    """One parsed element of a NotificationMessage.

    ``kind`` is one of :data:`EVENT_KINDS`; ``data`` holds the element's fields,
    normalised (decoded ``value`` for notifications and async responses, booleans
    for ``q``/``obs``, integers for ``max-age``).
    """

    kind: str
    data: dict[str, Any]


def parse_message(message: Any) -> tuple[list[Notification], list[str]]:
    """Parse a NotificationMessage (dict, JSON text or bytes).

    :return: ``(items, problems)``: every well-formed element, and a readable
        description of each malformed one (skipped; the rest still flows).
    :raises ProtocolError: when the message itself is not a JSON object.
    """
    if isinstance(message, (bytes, bytearray)):
        message = message.decode("utf-8", "replace")
    if isinstance(message, str):
        if not message.strip():
            return [], []
        try:
            message = json.loads(message)
        except ValueError:
            raise ProtocolError(f"notification message is not JSON: {message[:80]!r}") from None
    if not isinstance(message, Mapping):
        raise ProtocolError(f"notification message is not a JSON object: {str(message)[:80]!r}")
    items: list[Notification] = []
    problems: list[str] = []
    for kind, elements in message.items():
        if kind not in EVENT_KINDS:
            problems.append(f"unknown notification kind {kind!r}")
            continue
        if not isinstance(elements, list):
            problems.append(f"{kind}: not an array")
            continue
        for index, element in enumerate(elements):
            try:
                items.append(Notification(kind, _parse_element(kind, element)))
            except (ProtocolError, TypeError, ValueError, KeyError) as exc:
                problems.append(f"{kind}[{index}]: {exc}")
    return items, problems


def _parse_element(kind: str, element: Any) -> dict[str, Any]:
    """The event fields of one element of a NotificationMessage of ``kind``."""
    if kind in ("de-registrations", "registrations-expired"):
        if isinstance(element, Mapping) and isinstance(element.get("ep"), str):
            element = element["ep"]
        if not isinstance(element, str) or not element:
            raise ProtocolError(f"expected an endpoint name, got {str(element)[:60]!r}")
        return {"endpoint": element}
    if kind == "async-responses":
        response = AsyncResponse.from_json(element)
        _, value, encoding = response.decoded()
        return {
            "async_id": response.async_id,
            "status": response.status,
            "value": value,
            "encoding": encoding,
            "content_type": response.content_type,
            "max_age": response.max_age,
            "error": response.error,
        }
    if not isinstance(element, Mapping) or not isinstance(element.get("ep"), str):
        raise ProtocolError(f"element without an endpoint name: {str(element)[:80]!r}")
    return _notification(element) if kind == "notifications" else _registration(element)


def _notification(element: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a ``notifications`` element (a resource's new value)."""
    path = element.get("path")
    if not isinstance(path, str):
        raise ProtocolError(f"notification of {element['ep']!r} without a path")
    ctype = str(element.get("ct") or "")
    _raw, value, encoding = decode_payload(element.get("payload"), ctype)
    data = {
        "endpoint": element["ep"],
        "path": path,
        "value": value,
        "encoding": encoding,
        "content_type": ctype,
        "max_age": _as_int(element.get("max-age")),
    }
    if element.get("timestamp") is not None:
        data["value_timestamp"] = element.get("timestamp")
    return data


def _registration(element: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a ``registrations`` or ``reg-updates`` element."""
    resources = element.get("resources") or []
    if not isinstance(resources, list):
        raise ProtocolError(f"registration of {element['ep']!r}: resources is not an array")
    return {
        "endpoint": element["ep"],
        "endpoint_type": str(element.get("ept") or ""),
        "queue_mode": _as_bool(element.get("q", False)),
        "original_endpoint": element.get("original-ep"),
        "resources": [
            {
                "path": str(r.get("path", "")),
                "rt": str(r.get("rt", r.get("rf", "")) or ""),
                "ct": str(r.get("ct", "") or ""),
                "obs": _as_bool(r.get("obs", False)),
                "if": str(r.get("if", "") or ""),
            }
            for r in resources
            if isinstance(r, Mapping)
        ],
    }


# -- specimens --------------------------------------------------------------------------------------

#: One valid element of each kind of :data:`EVENT_KINDS`, and what each of its fields is: the
#: hostile-data table (``tests/hostile_data.py``) walks these fields (nested ones too) to make its bad
#: payloads, so that a new kind is covered once it has a specimen here. ``fields`` maps a field to its
#: role — ``identifier`` (names something: non-blank, no control or format character, the checks an
#: action applies to it as an argument), ``token`` (a short name: no control or format character),
#: ``text`` (free text: any valid Unicode), ``base64``, ``count`` (a whole number ≥ 0, also as a string
#: of digits), ``status`` (a whole number, also as a string of digits), ``flag`` (true/false, also as
#: ``"true"``/``"false"``), ``stamp`` (a finite number or a token), ``level`` (a whole number from 1 to 5)
#: — with ``?`` when it may be missing
#: or ``null``; or to ``{"role": "array?", "items": {...}}`` / ``{"role": "object", "fields": {...}}``
#: for nested ones. A ``fields`` that is a role (not a mapping) is the element's own (a string element).
SPECIMENS: dict[str, dict[str, Any]] = {
    "notifications": {
        "element": {
            "ep": "node-001",
            "path": "/3303/0/5700",
            "ct": "text/plain",
            "payload": "MjEuNQ==",
            "max-age": 60,
            "timestamp": 1700000000,
        },
        "fields": {
            "ep": "identifier",
            "path": "identifier",
            "ct": "token?",
            "payload": "base64?",
            "max-age": "count?",
            "timestamp": "stamp?",
        },
    },
    "registrations": {
        "element": {
            "ep": "node-001",
            "ept": "Light",
            "q": False,
            "original-ep": "my-light",
            "resources": [{"path": "/3311/0/5850", "if": "", "rt": "5850", "ct": "text/plain", "obs": True}],
        },
        "fields": {
            "ep": "identifier",
            "ept": "token?",
            "q": "flag?",
            "original-ep": "identifier?",
            "resources": {
                "role": "array?",
                "items": {"path": "identifier", "if": "token?", "rt": "token?", "ct": "token?", "obs": "flag?"},
            },
        },
    },
    "de-registrations": {"element": "node-001", "fields": "identifier"},
    "registrations-expired": {"element": "node-001", "fields": "identifier"},
    "async-responses": {
        "element": {
            "id": "1073741825#node-001@sandbox.mbed/3/0/1",
            "status": 200,
            "payload": "TWJlZA==",
            "ct": "text/plain",
            "max-age": 60,
            "error": "",
        },
        "fields": {
            "id": "identifier",
            "status": "status",
            "payload": "base64?",
            "ct": "token?",
            "max-age": "count?",
            "error": "text?",
        },
    },
}
SPECIMENS["reg-updates"] = SPECIMENS["registrations"]
