"""A typed, framework-free client of the NikDev IoT upload API (``protocols/nikdev.md``).

Usable from plain Python::

    client = NikdevClient("http://127.0.0.1:8083/api/v1/", device_id, api_key)
    client.push([Entry.build({"temp": 21.5, "hum": 40})])
    for value in client.get_values(["temp", "hum"]):
        print(value.field, value.value, value.timestamp)

This is the wire layer only; :class:`~platypush_ext.nikdev.uploader.Uploader`
adds the original library's ``add_value`` / ``commit`` / ``push`` model on top
of a durable :class:`~platypush_ext.nikdev.outbox.Outbox`.

Errors (all :class:`~platypush_ext.core.errors.ServiceError`): 401/403 →
:class:`NikdevAuthError`, other 4xx → :class:`NikdevRejectedError` (both
carry the server's ``message``; neither is worth retrying as is), 5xx,
timeouts and connection errors → the transient errors of ``http.py``.
The API key never appears in an error, a log line or a ``repr``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from ..core import untrusted
from ..core.errors import AuthError, BadRequestError, InvalidArgumentError, NotFoundError, ServiceError
from ..core.http import ErrorDetails, HttpClient, ServiceClient, Timeouts
from ..core.retry import RetryPolicy
from ..core.untrusted import JSON, JSONObject

Scalar = str | int | float | bool

MAX_FIELD_LENGTH = 255
MAX_STRING_VALUE = 10_000
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# -- errors -------------------------------------------------------------------


class NikdevError(ServiceError):
    """An error answered by the NikDev server (``{"message": ...}``)."""


class NikdevAuthError(NikdevError, AuthError):
    """Wrong device id or API key (401), or a key without write access (403)."""


class NikdevRejectedError(NikdevError, BadRequestError):
    """The server rejected the request's data (400 and other 4xx)."""


class NikdevNotFoundError(NikdevError, NotFoundError):
    """``get_values``: a field has no value on the server (404)."""


def _nikdev_error(status: int, endpoint: str, payload: JSON) -> ErrorDetails | None:
    """The classes and hints of 4xx answers (5xx and 429 stay generic: transient)."""
    if status >= 500 or status == 429:
        return None
    if status in (401, 403):
        hint = "check nikdev.device_id / nikdev.api_key" + (" and the key's write access" if status == 403 else "")
        return ErrorDetails(NikdevAuthError, hint)
    if status == 404 and endpoint.startswith("GET "):
        return ErrorDetails(NikdevNotFoundError, "the field has no value on the server")
    return ErrorDetails(NikdevRejectedError, "the server rejected the data")


# -- validation ---------------------------------------------------------------


def check_field(field: JSON) -> str:
    """A field id, or :class:`InvalidArgumentError`.

    Non-empty text of at most 255 characters, without commas (they separate
    ids in ``GET values/``) or control characters.
    """
    if not isinstance(field, str) or not field.strip():
        raise InvalidArgumentError(f"a field id must be a non-empty string, got {field!r}")
    if len(field) > MAX_FIELD_LENGTH:
        raise InvalidArgumentError(f"field id too long ({len(field)} characters, at most {MAX_FIELD_LENGTH})")
    if "," in field or _CONTROL_RE.search(field):
        raise InvalidArgumentError(f"field id {field!r} must not contain commas or control characters")
    return field


def check_value(field: str, value: JSON) -> Scalar:
    """A value the protocol can carry (text, integer, finite number, boolean), or :class:`InvalidArgumentError`."""
    if isinstance(value, int):  # bool is an int
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"value of {field!r} must be a finite number, got {value!r}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_VALUE:
            raise InvalidArgumentError(f"text value of {field!r} too long ({len(value)} > {MAX_STRING_VALUE})")
        return value
    raise InvalidArgumentError(
        f"value of {field!r} must be a string, an integer, a number or a boolean, got {type(value).__name__}"
    )


def check_fields(fields: JSON) -> list[str]:
    """A non-empty list of field ids (a single id or a comma-separated string is accepted too)."""
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",")]
    if not isinstance(fields, (list, tuple)) or not fields:
        raise InvalidArgumentError(f"give one or more field ids, got {fields!r}")
    return [check_field(f) for f in fields]


def check_credential(value: JSON, what: str) -> str:
    """A device id or API key: required, non-empty, no whitespace (never echoed)."""
    if value is None or value == "":
        raise InvalidArgumentError(f"nikdev.{what} is required (find it in the NikDev IoT server's device view)")
    if not isinstance(value, str) or re.search(r"\s", value):
        raise InvalidArgumentError(f"nikdev.{what} must be a string without spaces")
    return value


# -- models -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One committed entry: a timestamp (client Unix seconds) and its values, each field once."""

    timestamp: int
    values: tuple[tuple[str, Scalar], ...]

    @classmethod
    def build(cls, values: Mapping[str, JSON] | Iterable[tuple[str, JSON]], timestamp: int | None = None) -> Entry:
        """Validate ``values`` (a later value of a field replaces an earlier one)."""
        items = values.items() if isinstance(values, Mapping) else values
        checked: dict[str, Scalar] = {}
        for field, value in items:
            checked[check_field(field)] = check_value(field, value)
        if not checked:
            raise InvalidArgumentError("an entry needs at least one value")
        return cls(int(time.time()) if timestamp is None else int(timestamp), tuple(checked.items()))

    def to_wire(self) -> JSONObject:
        """``{"timestamp": t, "values": [{field: value}, ...]}``."""
        return {"timestamp": self.timestamp, "values": [{f: v} for f, v in self.values]}

    def to_json(self) -> str:
        """:meth:`to_wire` as compact ASCII JSON (its length is its size in bytes)."""
        return json.dumps(self.to_wire(), separators=(",", ":"))


@dataclass(frozen=True)
class Value:
    """The latest value of a field; ``timestamp`` in the local clock's terms (or ``None``)."""

    field: str
    value: Scalar
    timestamp: int | None

    def to_dict(self) -> JSONObject:
        return {"field": self.field, "value": self.value, "timestamp": self.timestamp}


# -- client -------------------------------------------------------------------


class NikdevClient(ServiceClient):
    """Client of one NikDev IoT server, for one device.

    :param base_url: the API's base URL, e.g. ``https://iot.nik-dev.se/api/v1/``
        (a missing trailing ``/`` is added).
    :param device_id: the Device ID (sent as ``x-device-id``).
    :param api_key: the API key (sent as ``x-api-key``; a secret).
    :param timeouts: connect and read timeouts (default 5 s and 10 s, the original client's).
    :param retry: retry policy (default 3 attempts within 20 s); uploads are retried too (delivery is
        at-least-once, see :meth:`push_serialized`).
    """

    DEFAULT_TIMEOUTS = Timeouts(5.0, 10.0)
    DEFAULT_RETRY = RetryPolicy(attempts=3, backoff=0.5, backoff_max=5.0, budget=20.0)

    def __init__(
        self,
        base_url: str,
        device_id: str,
        api_key: str,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        http: HttpClient | None = None,
    ):
        device_id = check_credential(device_id, "device_id")
        api_key = check_credential(api_key, "api_key")
        self.device_id = device_id
        self._connect(
            base_url,
            http,
            timeouts,
            retry,
            _nikdev_error,
            secrets=[api_key],
            headers={"x-device-id": device_id, "x-api-key": api_key},
        )

    def __repr__(self) -> str:
        return f"NikdevClient({self.base_url!r}, device_id={self.device_id!r})"

    def push(self, entries: Sequence[Entry], client_timestamp: int | None = None) -> None:
        """Upload entries in one request (``POST entries/``)."""
        self.push_serialized([e.to_json() for e in entries], client_timestamp)

    def push_serialized(self, entries: Sequence[str], client_timestamp: int | None = None) -> None:
        """Upload entries already serialised with :meth:`Entry.to_json`, in one request.

        ``clientTimestamp`` is the current time unless given. The request is
        retried on transient failures: if an answer is lost after the server
        stored the batch, the entries arrive twice — identical, so a duplicate
        is recognisable by its timestamp and values.
        """
        stamp = int(time.time()) if client_timestamp is None else int(client_timestamp)
        body = '{"clientTimestamp":' + str(stamp) + ',"entries":[' + ",".join(entries) + "]}"
        self.http.request(
            "POST", "entries/", data=body.encode(), headers={"Content-Type": "application/json"}, idempotent=True
        )

    def get_values(self, fields: Sequence[str] | str) -> list[Value]:
        """The latest value of each field (``GET values/<ids>``), timestamps converted to the local clock.

        :raises NikdevNotFoundError: a field has no value on the server.
        """
        ids = check_fields(fields)
        path = "values/" + ",".join(quote(f, safe="") for f in ids)
        return self.http.request_json("GET", path, parse=_values)


def _values(payload: JSON) -> list[Value]:
    """The answer of ``GET values/``: ``{"data": {"servertime", "values": [{field: {"value", "timestamp"}}]}}``
    (untrusted: each field checked, :class:`ProtocolError`)."""
    data = untrusted.mapping(untrusted.field(untrusted.mapping(payload, "the answer"), "data"), "data")
    servertime = untrusted.integer(untrusted.field(data, "servertime", "data.servertime"), "data.servertime", minimum=0)
    items = untrusted.array(untrusted.field(data, "values", "data.values"), "data.values")
    skew = round(time.time() - servertime)
    values = []
    for index, item in enumerate(items):
        where = f"data.values[{index}]"
        item = untrusted.mapping(item, where)
        if len(item) != 1:
            raise untrusted.refused(where, "expected an object of one field", item)
        ((field, body),) = item.items()
        field = untrusted.identifier(
            field, f"{where} key", check_field, "a field id (no commas nor control characters)"
        )
        body = untrusted.mapping(body, f"{where}.{field}")
        stamp = body.get("timestamp")
        if stamp is not None:
            stamp = untrusted.integer(stamp, f"{where}.{field}.timestamp", minimum=0) + skew
        values.append(
            Value(
                field,
                _scalar(untrusted.field(body, "value", f"{where}.{field}.value"), f"{where}.{field}.value"),
                stamp,
            )
        )
    return values


def _scalar(value: JSON, name: str) -> Scalar:
    """A value as the protocol carries it: text, a finite number, a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return untrusted.number(value, name)
    return untrusted.text(value, name)
