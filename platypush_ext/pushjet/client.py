"""A typed, framework-free client of the Pushjet API (``protocols/pushjet.md``).

Usable from plain Python::

    client = PushjetClient("http://127.0.0.1:8081/")
    service = client.create_service("Alerts")
    client.subscribe(device_uuid, service.public_key)
    client.send(service.secret_key, "Hello", title="Hi", importance=4)
    for message in client.fetch_messages(device_uuid):   # destructive read
        print(message.title, message.message)

Every argument is validated before any request; every documented error id
maps to an exception; secrets travel in form bodies only and never appear in
errors or logs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, TypedDict, TypeVar, overload

from ..core import untrusted
from ..core.errors import (
    BadRequestError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    RateLimitedError,
    ServiceError,
)
from ..core.http import ErrorDetails, HttpClient, ServiceClient, Timeouts
from ..core.retry import RetryPolicy
from ..core.untrusted import JSON, JSONObject

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")

UUID_RE = re.compile(r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$")
PUBLIC_KEY_RE = re.compile(r"^[a-zA-Z0-9]{4}-[a-zA-Z0-9]{6}-[a-zA-Z0-9]{12}-[a-zA-Z0-9]{5}-[a-zA-Z0-9]{9}$")
SECRET_KEY_RE = re.compile(r"^[a-zA-Z0-9]{32}$")
PUBLIC_KEY = "a public key such as '4be3-eda97a-0d7faeab05a0-89403-ad4751c49'"
#: The upstream server's columns (protocols/pushjet.md §12): longer values get an HTTP 500 there.
MAX_NAME_CHARACTERS = 255
MAX_TEXT_BYTES = 65_535


# -- errors -------------------------------------------------------------------


class PushjetError(ServiceError):
    """An error answered by the Pushjet server."""


class NonexistentError(PushjetError, NotFoundError):
    """The service does not exist (anymore)."""


class SubscriptionError(PushjetError, ConflictError):
    """Already subscribed, or not subscribed, to that service."""


class PushjetBadRequestError(PushjetError, BadRequestError):
    """The server rejected an argument."""


_ERROR_CLASSES: dict[int, type[PushjetError]] = {4: SubscriptionError, 11: SubscriptionError, 6: NonexistentError}


def _pushjet_error(status: int, endpoint: str, payload: JSON) -> ErrorDetails | None:
    """The error ids of ``{"error": {"message", "id"}}`` bodies (5: rate limited, whatever the status)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict) or "id" not in error:
        return None
    code = error.get("id")
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < 1000:
        code = None  # not an id of the protocol's table (a hostile answer): the status tells the class
    if code != 5 and status >= 500:
        return None
    cls = RateLimitedError if code == 5 else _ERROR_CLASSES.get(code, PushjetBadRequestError)  # type: ignore[arg-type]
    return ErrorDetails(cls, hint=None if code is None else f"Pushjet error {code}", code=code)


# -- models -------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """A Pushjet service. ``secret_key`` is known only to its creator (never in ``repr``)."""

    public_key: str
    name: str
    icon_url: str | None
    created: int
    secret_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: JSON, secret_key: str | None = None, where: str = "service") -> "Service":
        """Read a service object of the server (untrusted: each field checked, :class:`ProtocolError`).

        :param data: the object.
        :param secret_key: the secret to keep when the object has none.
        :param where: its name in errors.
        """
        data = untrusted.mapping(data, where)
        secret = data.get("secret")
        if secret is not None and secret != "":
            secret_key = untrusted.secret(secret, f"{where}.secret", check=check_secret_key)
        return cls(
            public_key=untrusted.identifier(
                untrusted.field(data, "public", f"{where}.public"), f"{where}.public", check_public_key, PUBLIC_KEY
            ),
            name=untrusted.text(untrusted.field(data, "name", f"{where}.name"), f"{where}.name"),
            icon_url=untrusted.optional_text(data.get("icon"), f"{where}.icon"),
            created=untrusted.integer(
                untrusted.field(data, "created", f"{where}.created"), f"{where}.created", minimum=0
            ),
            secret_key=secret_key,
        )

    def to_dict(self, include_secret: bool = False) -> JSONObject:
        data = asdict(self)
        if not include_secret:
            data.pop("secret_key")
        return data


@dataclass(frozen=True)
class Subscription:
    """A device's subscription to a service."""

    service: Service
    device_uuid: str
    time_subscribed: int
    last_checked: int

    @classmethod
    def from_json(cls, data: JSON, where: str = "subscription") -> "Subscription":
        """Read a subscription object of the server (untrusted: each field checked).

        :param data: the object.
        :param where: its name in errors.
        """
        data = untrusted.mapping(data, where)
        uuid = untrusted.field(data, "uuid", f"{where}.uuid")
        return cls(
            service=Service.from_json(untrusted.field(data, "service", f"{where}.service"), where=f"{where}.service"),
            device_uuid=untrusted.identifier(uuid, f"{where}.uuid", check_uuid, "a device UUID"),
            time_subscribed=untrusted.integer(
                untrusted.field(data, "timestamp", f"{where}.timestamp"), f"{where}.timestamp", minimum=0
            ),
            last_checked=untrusted.integer(
                untrusted.field(data, "timestamp_checked", f"{where}.timestamp_checked"),
                f"{where}.timestamp_checked",
                minimum=0,
            ),
        )

    def to_dict(self) -> JSONObject:
        return {**asdict(self), "service": self.service.to_dict()}


@dataclass(frozen=True)
class Message:
    """A message received by a device. ``title`` and ``link`` are ``None`` when absent."""

    message: str
    title: str | None
    link: str | None
    importance: int
    time_sent: int
    service: Service

    @classmethod
    def from_json(cls, data: JSON) -> "Message":
        """Read a message object (of ``GET /message`` or the connector), every field checked: what a
        server sends is untrusted (:mod:`platypush_ext.core.untrusted`). Texts may hold any valid Unicode
        up to 64 Ki characters; the service is named by a well-formed public key; a ``secret`` in
        its service object is ignored.

        :param data: the message object.
        :raises ProtocolError: one line naming the bad field.
        """
        data = untrusted.mapping(data, "the message")
        service = untrusted.mapping(untrusted.field(data, "service"), "service")
        level = data.get("level")
        return cls(
            message=untrusted.text(untrusted.field(data, "message"), "message"),
            title=untrusted.optional_text(data.get("title"), "title"),
            link=untrusted.optional_text(data.get("link"), "link"),
            importance=3 if level is None else untrusted.integer(level, "level", minimum=1, maximum=5),
            time_sent=untrusted.integer(untrusted.field(data, "timestamp"), "timestamp", minimum=0),
            service=Service.from_json({k: v for k, v in service.items() if k != "secret"}),  # no secret here
        )

    def to_dict(self) -> JSONObject:
        return {**asdict(self), "service": self.service.to_dict()}


def _new_service(data: JSON) -> Service:
    """The service ``POST /service`` created: with its secret (the only time the server tells it)."""
    service = Service.from_json(data)
    if service.secret_key is None:
        raise untrusted.refused("service.secret", "missing (the new service's secret key)")
    return service


def _subscriptions(items: JSON) -> list[Subscription]:
    """The ``subscriptions`` array of ``GET /subscription``."""
    items = untrusted.array(items, "subscriptions")
    return [Subscription.from_json(item, f"subscriptions[{i}]") for i, item in enumerate(items)]


#: The most messages one fetch may hand out: the read is destructive, so a large backlog is
#: taken whole (the body is in memory already); only an absurd count is refused.
MAX_FETCHED = 1_000_000


def _messages(items: JSON) -> list[JSON]:
    """The ``messages`` array of ``GET /message`` (its elements are read one by one, as events)."""
    return untrusted.array(items, "messages", limit=MAX_FETCHED)


#: A valid message object (of ``GET /message``'s ``messages``, or a connector's ``{"message": …}``) and
#: what each of its fields is, for the hostile-data table (``tests/hostile_data.py``, which walks them);
#: the roles are those of :data:`platypush_ext.mbed.messages.SPECIMENS`.
SPECIMENS: dict[str, JSONObject] = {
    "message": {
        "element": {
            "message": "Front door opened",
            "title": "Home",
            "link": "https://example.org/door",
            "level": 4,
            "timestamp": 1700000000,
            "service": {
                "public": "4be3-eda97a-0d7faeab05a0-89403-ad4751c49",
                "name": "Alerts",
                "icon": "https://example.org/icon.png",
                "created": 1690000000,
            },
        },
        "fields": {
            "message": "text",
            "title": "text?",
            "link": "text?",
            "level": "level?",
            "timestamp": "count",
            "service": {
                "role": "object",
                "fields": {"public": "identifier", "name": "text", "icon": "text?", "created": "count"},
            },
        },
    }
}


# -- validation ---------------------------------------------------------------


def check_uuid(device: JSON) -> str:
    """A device UUID in canonical (lowercase) form, or :class:`InvalidArgumentError`."""
    if not isinstance(device, str) or not UUID_RE.fullmatch(device):
        raise InvalidArgumentError(
            f"invalid device UUID {device!r}: expected 8-4-4-4-12 hexadecimal digits, e.g. from uuid.uuid4()"
        )
    return device.lower()


def check_public_key(public_key: JSON) -> str:
    if not isinstance(public_key, str) or not PUBLIC_KEY_RE.fullmatch(public_key):
        raise InvalidArgumentError(
            f"invalid service public key {public_key!r}: expected 40 characters such as "
            "'4be3-eda97a-0d7faeab05a0-89403-ad4751c49'"
        )
    return public_key


def check_secret_key(secret_key: JSON) -> str:
    if not secret_key:
        raise InvalidArgumentError("this operation needs the service's secret key, and none was given")
    if not isinstance(secret_key, str) or not SECRET_KEY_RE.fullmatch(secret_key):
        raise InvalidArgumentError("invalid secret key: expected 32 letters or digits")  # never echo it
    return secret_key


def check_importance(importance: JSON) -> int | None:
    if importance is None:
        return None
    if isinstance(importance, bool) or not isinstance(importance, (int, str)):
        raise InvalidArgumentError(f"importance must be an integer from 1 to 5, got {importance!r}")
    try:
        value = int(importance)
    except ValueError:
        raise InvalidArgumentError(f"importance must be an integer from 1 to 5, got {importance!r}") from None
    if not 1 <= value <= 5:
        raise InvalidArgumentError(f"importance must be from 1 (least) to 5 (most important), got {value}")
    return value


def _check_text(
    value: JSON, what: str, *, required: bool, max_characters: int | None = None, max_bytes: int | None = MAX_TEXT_BYTES
) -> str | None:
    """A string within the server's limits (checked here: the server answers an unexplained 500)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidArgumentError(f"{what} must be a {'non-empty ' if required else ''}string, got {value!r}")
    if max_characters is not None and len(value.strip()) > max_characters:
        raise InvalidArgumentError(
            f"{what} too long: {len(value.strip()):,} characters, the Pushjet server stores at most {max_characters}"
        )
    if max_bytes is not None and len(value.encode("utf-8", errors="surrogatepass")) > max_bytes:
        raise InvalidArgumentError(
            f"{what} too long: {len(value.encode('utf-8', errors='surrogatepass')):,} bytes "
            f"of UTF-8, the Pushjet server stores at most {max_bytes:,}"
        )
    return value


def check_name(name: JSON) -> str:
    """A service name the server can store (at most 255 characters once stripped)."""
    return _check_text(name, "name", required=True, max_characters=MAX_NAME_CHARACTERS) or ""


#: Longest alias under which a created service's secret is kept.
MAX_ALIAS = 100


def check_alias(alias: JSON) -> str:
    """A service alias: 1 to :data:`MAX_ALIAS` printable characters (it is shown in every related error)."""
    if not isinstance(alias, str) or not alias.strip():
        raise InvalidArgumentError("alias must be a non-empty string")
    if len(alias) > MAX_ALIAS or not alias.isprintable():
        raise InvalidArgumentError(
            f"alias must be at most {MAX_ALIAS} printable characters (no line breaks or "
            "control characters): pass a shorter alias"
        )
    return alias


# -- client -------------------------------------------------------------------


class _CallOptions(TypedDict, total=False):
    """The options of :meth:`HttpClient.request_json` a call of the API passes on."""

    params: Mapping[str, object] | None  # a query
    data: Mapping[str, str | None]  # a form


class PushjetClient(ServiceClient):
    """Client of one Pushjet server.

    :param base_url: the server's base URL, e.g. ``https://pushjet.example.org/api/``
        (a missing trailing ``/`` is added).
    :param timeouts: connect and read timeouts.
    :param retry: retry policy for idempotent requests.
    :param http: an :class:`~platypush_ext.core.http.HttpClient` to use instead of building one.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        http: HttpClient | None = None,
    ):
        self._connect(base_url, http, timeouts, retry, _pushjet_error)

    @overload
    def _call(
        self,
        method: str,
        path: str,
        *,
        key: str,
        parse: Callable[[JSON], T],
        idempotent: bool | None = None,
        **kwargs: Unpack[_CallOptions],
    ) -> T: ...

    @overload
    def _call(
        self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Unpack[_CallOptions]
    ) -> JSON: ...

    def _call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        parse: Callable[[JSON], T] | None = None,
        idempotent: bool | None = None,
        **kwargs: Unpack[_CallOptions],
    ) -> T | JSON:
        """A request whose answer is a JSON object (``{"status": "ok"}`` when nothing else), and
        ``parse(answer[key])`` when given ``key``: every refused field a :class:`ProtocolError` naming it."""

        def read(payload: JSON) -> T | JSON:
            payload = untrusted.mapping(payload, "the answer")
            if key is None:
                return payload
            value = untrusted.field(payload, key)
            return value if parse is None else parse(value)

        return self.http.request_json(method, path, idempotent=idempotent, parse=read, **kwargs)

    # -- services ----------------------------------------------------------------

    def create_service(self, name: str, icon_url: str | None = None) -> Service:
        """Create a service; the result carries its ``secret_key`` (keep it)."""
        form: dict[str, str | None] = {"name": check_name(name)}
        if icon_url:
            form["icon"] = _check_text(icon_url, "icon_url", required=False)
        service = self._call("POST", "service", key="service", parse=_new_service, data=form)
        self.add_secret(service.secret_key)
        return service

    def get_service(self, *, secret_key: str | None = None, public_key: str | None = None) -> Service:
        """Look a service up by public key or by secret key (the secret is kept in the result)."""
        if public_key is not None:
            params = {"service": check_public_key(public_key)}
            return self._call("GET", "service", key="service", parse=Service.from_json, params=params)
        if secret_key is None:
            raise InvalidArgumentError("give a service's public_key or secret_key")
        form = {"secret": check_secret_key(secret_key)}
        # a GET with a form body keeps the secret out of URLs and access logs
        read = functools.partial(Service.from_json, secret_key=secret_key)
        return self._call("GET", "service", key="service", parse=read, data=form)

    def edit_service(self, secret_key: str, *, name: str | None = None, icon_url: str | None = None) -> None:
        """Rename a service and/or change its icon (``icon_url=""`` removes the icon)."""
        form = {"secret": check_secret_key(secret_key)}
        if name is not None:
            form["name"] = check_name(name)
        if icon_url is not None:
            form["icon"] = _check_text(icon_url, "icon_url", required=False) or ""
        if len(form) == 1:
            raise InvalidArgumentError("nothing to change: give a name and/or an icon_url")
        self._call("PATCH", "service", data=form)

    def delete_service(self, secret_key: str) -> None:
        """Delete a service, its subscriptions and its messages. Irreversible."""
        self._call("DELETE", "service", data={"secret": check_secret_key(secret_key)})

    def send(
        self,
        secret_key: str,
        message: str,
        *,
        title: str | None = None,
        link: str | None = None,
        importance: int | None = None,
    ) -> None:
        """Send a message to the service's subscribers (never replayed once it may have arrived)."""
        form: dict[str, str | None] = {
            "secret": check_secret_key(secret_key),
            "message": _check_text(message, "message", required=True),
        }
        if title is not None:
            form["title"] = _check_text(title, "title", required=False, max_bytes=None)  # truncated by the server
        if link is not None:
            form["link"] = _check_text(link, "link", required=False)
        level = check_importance(importance)
        if level is not None:
            form["level"] = str(level)
        self._call("POST", "message", data=form)

    # -- devices -------------------------------------------------------------------

    def subscribe(self, device: str, public_key: str) -> Service:
        """Subscribe a device to a service; returns the service."""
        data = {"uuid": check_uuid(device), "service": check_public_key(public_key)}
        return self._call("POST", "subscription", key="service", parse=Service.from_json, data=data)

    def unsubscribe(self, device: str, public_key: str) -> None:
        """Unsubscribe a device from a service."""
        self._call("DELETE", "subscription", data={"uuid": check_uuid(device), "service": check_public_key(public_key)})

    def get_subscriptions(self, device: str) -> list[Subscription]:
        """The device's subscriptions."""
        params = {"uuid": check_uuid(device)}
        return self._call("GET", "subscription", key="subscriptions", parse=_subscriptions, params=params)

    def fetch_message_payloads(self, device: str) -> list[JSONObject]:
        """The raw unread message objects of a device. **Destructive**: the server marks
        them read, so this request is never retried automatically."""
        params = {"uuid": check_uuid(device)}
        return self._call("GET", "message", key="messages", parse=_messages, params=params, idempotent=False)

    def fetch_messages(self, device: str) -> list[Message]:
        """The device's unread messages, marked read by the server (see :meth:`fetch_message_payloads`)."""
        return [Message.from_json(item) for item in self.fetch_message_payloads(device)]

    def mark_read(self, device: str) -> None:
        """Mark every message of the device read without fetching it (``DELETE /message``)."""
        self._call("DELETE", "message", params={"uuid": check_uuid(device)})
