"""Parsing what the mbed service sends on its notification channel (framework-free): the
NotificationMessage of a long poll, a callback or a WebSocket frame, its elements, async responses
and base64 payloads.

What a server sends is untrusted input: every field goes through :mod:`platypush_ext.core.untrusted`'s
checks, nothing is passed on unchecked, and any bad data is a one-line :class:`ProtocolError` naming
the field. A message that cannot be read (not UTF-8, not JSON, nested too deeply, not an object) is
refused whole; otherwise each element is parsed on its own, and a bad one is refused alone
(:func:`parse_message` returns a :class:`~platypush_ext.core.journal.Rejected` for it) while the others
flow. Identifiers (endpoint names, resource paths, async ids) must pass the checks an action applies
to them as arguments and hold no control or format character; free texts (a text value, an error
message) may hold any valid Unicode up to :data:`~platypush_ext.core.untrusted.MAX_TEXT` characters.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..core import untrusted
from ..core.errors import InvalidArgumentError, ProtocolError
from ..core.journal import Rejected
from ..core.text import one_line
from ..core.untrusted import JSON, JSONObject
from .checks import check_endpoint, check_path

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
#: The longest base64 payload: that of a value of :data:`~platypush_ext.core.untrusted.MAX_TEXT` bytes.
MAX_PAYLOAD = 4 * -(-untrusted.MAX_TEXT // 3)
#: The longest short name (a content type, an endpoint or resource type, a timestamp as text).
MAX_TOKEN = 1024
#: How much of a refused element is kept for inspection (:class:`~platypush_ext.core.journal.Rejected`).
EXCERPT = 200
#: Control and format characters (line breaks, NUL, bidirectional overrides, zero-width…).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
#: The key of a journal entry that stands for a message refused before it was kept (:func:`refused_note`).
REFUSED = "(refused)"


# -- field checks --------------------------------------------------------------------------------


def _printable(value: JSON, name: str, limit: int) -> str:
    """A string of at most ``limit`` characters without control or format characters."""
    text = untrusted.text(value, name, limit=limit)
    bad = _UNPRINTABLE.search(text)
    if bad:
        raise untrusted.refused(name, f"a control or format character (U+{ord(bad.group()):04X})", value)
    return text


def _token(value: JSON, name: str) -> str:
    """An optional short name (``""`` when missing or ``null``)."""
    return "" if value is None else _printable(value, name, MAX_TOKEN)


def _name(value: JSON, name: str) -> str:
    """A required short name (an async id): printable, not blank."""
    text = _printable(value, name, MAX_TOKEN)
    if not text.strip():
        raise untrusted.refused(name, "empty", value)
    return text


def _identifier(value: JSON, name: str, check: Callable[[str], str]) -> str:
    """A name that an action takes as an argument: printable, and passes ``check`` (e.g. ``check_endpoint``)."""
    text = _printable(value, name, untrusted.MAX_TEXT)
    try:
        return str(check(text))
    except InvalidArgumentError as exc:
        raise untrusted.refused(name, one_line(exc, 150)) from None


def _endpoint(value: JSON, name: str) -> str:
    return _identifier(value, name, check_endpoint)


def _path(value: JSON, name: str) -> str:
    return _identifier(value, name, check_path)


def _count(value: JSON, name: str) -> int | None:
    """An optional whole number ≥ 0 (also as a string of digits, as Pelion sends ``max-age``)."""
    if value is None or value == "":
        return None
    return untrusted.integer(value, name, minimum=0, strings=True)


def _flag(value: JSON, name: str) -> bool:
    """An optional boolean (also ``"true"`` / ``"false"``), false when missing."""
    return False if value is None else untrusted.boolean(value, name)


def _stamp(value: JSON, name: str) -> int | float | str | None:
    """An optional timestamp: a finite number, or a short name (its format is not documented)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _printable(value, name, MAX_TOKEN)
    return untrusted.number(value, name)


def decode_payload(
    payload: JSON, content_type: str | None, name: str = "payload", limit: int | None = None
) -> tuple[bytes, str, str]:
    """Decode a base64 ``payload``: ``(raw bytes, value, encoding)``.

    ``value`` is UTF-8 text for textual content types (and unknown ones that
    decode as UTF-8), otherwise the base64 text itself; ``encoding`` says which
    (``"text"`` or ``"base64"``).

    :param payload: the base64 text (``None`` or ``""``: empty).
    :param content_type: its content type.
    :param name: the field's name in errors.
    :param limit: the most characters (the parsers of the channel: :data:`MAX_PAYLOAD`; ``None``: any).
    :raises ProtocolError: not a string, longer than ``limit``, or not valid base64.
    """
    if payload is None or payload == "":
        return b"", "", "text"
    text = untrusted.text(payload, name, limit=sys.maxsize if limit is None else limit)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise untrusted.refused(name, "not valid base64", payload) from None
    ctype = (content_type or "").lower()
    if not ctype or ctype.startswith(TEXT_TYPES):
        try:
            return raw, raw.decode("utf-8"), "text"
        except UnicodeDecodeError:
            pass
    return raw, text, "base64"


# -- models ----------------------------------------------------------------------------------------


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
    def from_json(cls, data: JSON) -> AsyncResponse:
        """Read an element of ``async-responses``, every field checked.

        :param data: the element.
        :raises ProtocolError: naming the bad field.
        """
        data = untrusted.mapping(data, "the element")
        content_type = _token(data.get("ct"), "ct")
        payload = data.get("payload")
        decode_payload(payload, content_type, limit=MAX_PAYLOAD)  # refused now, not when an action reads it
        return cls(
            async_id=_name(untrusted.field(data, "id"), "id"),
            status=untrusted.integer(untrusted.field(data, "status"), "status", minimum=0, maximum=999, strings=True),
            payload=payload or None,
            content_type=content_type,
            max_age=_count(data.get("max-age"), "max-age"),
            error=untrusted.optional_text(data.get("error"), "error"),
        )

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.error

    def decoded(self) -> tuple[bytes, str, str]:
        return decode_payload(self.payload, self.content_type)


@dataclass(frozen=True)
class Notification:
    """One parsed element of a NotificationMessage.

    ``kind`` is one of :data:`EVENT_KINDS`; ``data`` holds the element's fields, checked and
    normalised (its event's arguments: decoded ``value`` for notifications and async responses,
    booleans for ``q``/``obs``, integers for ``max-age``); ``response``: an async response's model.
    """

    kind: str
    data: JSONObject
    response: AsyncResponse | None = field(default=None, compare=False, repr=False)


# -- messages --------------------------------------------------------------------------------------


def refused_note(reason: str) -> dict[str, str]:
    """What a journal keeps of a message refused before it was kept (e.g. a callback body over the
    receiver's limit): :func:`parse_message` refuses it with ``reason``.

    :param reason: why, in one line.
    """
    return {REFUSED: one_line(reason)}


def parse_message(message: JSON) -> tuple[list[Notification], list[Rejected]]:
    """Parse a NotificationMessage (dict, JSON text or bytes), each element on its own.

    :return: ``(items, rejected)``: every well-formed element, and a
        :class:`~platypush_ext.core.journal.Rejected` for each malformed one (``notifications[2]``:
        why; skipped, the rest still flows). Keys that are not :data:`EVENT_KINDS` are ignored.
    :raises ProtocolError: when the message itself cannot be read: not UTF-8, not JSON, nested too
        deeply, not a JSON object (then nothing of it can be had).
    """
    if isinstance(message, (bytes, bytearray, str)):
        if not message.strip():
            return [], []
        message = (
            untrusted.loads_received(message, "the message")
            if isinstance(message, str)
            else untrusted.loads(message, "the message")
        )
    data = untrusted.mapping(message, "the message")
    if set(data) == {REFUSED}:
        raise ProtocolError(one_line(data[REFUSED]))
    items: list[Notification] = []
    rejected: list[Rejected] = []
    for kind, elements in data.items():
        if kind not in EVENT_KINDS:
            continue  # a kind of a later version: nothing to make of it
        if not isinstance(elements, list):
            rejected.append(
                Rejected(kind, str(untrusted.refused(kind, "expected a JSON array", elements)), _excerpt(elements))
            )
            continue
        for index, element in enumerate(elements):
            try:
                items.append(parse_element(kind, element))
            except ProtocolError as exc:
                rejected.append(Rejected(f"{kind}[{index}]", str(exc), _excerpt(element)))
            except Exception as exc:  # noqa: BLE001 - a bug of ours must not drop the other elements
                reason = one_line(f"{type(exc).__name__}: {exc}")
                rejected.append(Rejected(f"{kind}[{index}]", reason, _excerpt(element)))
    return items, rejected


def _excerpt(value: JSON) -> str:
    """The start of ``value``'s JSON text (at most :data:`EXCERPT` characters, however large it is)."""
    try:
        text = ""
        for chunk in json.JSONEncoder().iterencode(value):
            text += chunk[: EXCERPT - len(text)]
            if len(text) >= EXCERPT:
                break
        return text
    except Exception:  # noqa: BLE001 - whatever it is, it is only shown
        return ""


def parse_element(kind: str, element: JSON) -> Notification:
    """One element of a NotificationMessage of ``kind``, every field checked.

    :param kind: one of :data:`EVENT_KINDS`.
    :param element: the element.
    :raises ProtocolError: naming the bad field.
    """
    if kind in ("de-registrations", "registrations-expired"):
        if isinstance(element, Mapping):  # also seen as {"ep": name}
            element = untrusted.field(element, "ep")
        return Notification(kind, {"endpoint": _endpoint(element, "the endpoint name")})
    if kind == "async-responses":
        response = AsyncResponse.from_json(element)
        _, value, encoding = response.decoded()
        data = {
            "async_id": response.async_id,
            "status": response.status,
            "value": value,
            "encoding": encoding,
            "content_type": response.content_type,
            "max_age": response.max_age,
            "error": response.error,
        }
        return Notification(kind, data, response)
    element = untrusted.mapping(element, "the element")
    return Notification(kind, _notification(element) if kind == "notifications" else _registration(element))


def _notification(element: Mapping[str, JSON]) -> JSONObject:
    """The fields of a ``notifications`` element (a resource's new value)."""
    ctype = _token(element.get("ct"), "ct")
    _raw, value, encoding = decode_payload(element.get("payload"), ctype, limit=MAX_PAYLOAD)
    data: JSONObject = {
        "endpoint": _endpoint(untrusted.field(element, "ep"), "ep"),
        "path": _path(untrusted.field(element, "path"), "path"),
        "value": value,
        "encoding": encoding,
        "content_type": ctype,
        "max_age": _count(element.get("max-age"), "max-age"),
    }
    stamp = _stamp(element.get("timestamp"), "timestamp")
    if stamp is not None:
        data["value_timestamp"] = stamp
    return data


def _registration(element: Mapping[str, JSON]) -> JSONObject:
    """The fields of a ``registrations`` or ``reg-updates`` element."""
    resources = element.get("resources")
    original = element.get("original-ep")
    return {
        "endpoint": _endpoint(untrusted.field(element, "ep"), "ep"),
        "endpoint_type": _token(element.get("ept"), "ept"),
        "queue_mode": _flag(element.get("q"), "q"),
        "original_endpoint": None if original in (None, "") else _endpoint(original, "original-ep"),
        "resources": [
            _resource(item, f"resources[{i}]")
            for i, item in enumerate(untrusted.array([] if resources is None else resources, "resources"))
        ],
    }


def _resource(item: JSON, name: str) -> JSONObject:
    """One resource of a registration."""
    item = untrusted.mapping(item, name)
    return {
        "path": _path(untrusted.field(item, "path", f"{name}.path"), f"{name}.path"),
        "rt": _token(item.get("rt", item.get("rf")), f"{name}.rt"),
        "ct": _token(item.get("ct"), f"{name}.ct"),
        "obs": _flag(item.get("obs"), f"{name}.obs"),
        "if": _token(item.get("if"), f"{name}.if"),
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
SPECIMENS: dict[str, JSONObject] = {
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


def action_result(result: object) -> JSONObject:
    """What an action answers for a device call's result: ``{"status": 204, "no_resp": true}`` (no
    answer), ``{"async_id"}`` (not waited for), the status and the decoded value of an
    :class:`AsyncResponse`, else ``{"status": 200}``.

    :param result: what the client's call returned.
    """
    if result is None:
        return {"status": 204, "no_resp": True}
    if isinstance(result, str):
        return {"async_id": result}
    if isinstance(result, AsyncResponse):
        data: JSONObject = {"status": result.status}
        _, value, encoding = result.decoded()
        if value:
            data.update(value=value, encoding=encoding, content_type=result.content_type)
        return data
    return {"status": 200}
