"""A local Pushjet API server, faithful to ``protocols/pushjet.md``.

It reproduces the upstream ``Pushjet-Server-Api`` (commit ``7ddb7df``): the
routes, the validation order, the error ids and messages, the content types
(``application/json`` for data, ``text/html`` for errors and ``{"status": "ok"}``),
parameters read from the form body or else the query string, destructive
``GET /message`` with per-subscription read pointers, late subscribers, level
parsing by its first character and pruning of fully-read messages.
State lives in memory.

Run it alone with ``python -m platypush_ext.sandbox pushjet --port 8081``.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .core import Abort, Request, Response, SandboxServer, html_error, json_response

UUID_RE = re.compile(r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$")
PUBLIC_RE = re.compile(r"^[a-zA-Z0-9]{4}-[a-zA-Z0-9]{6}-[a-zA-Z0-9]{12}-[a-zA-Z0-9]{5}-[a-zA-Z0-9]{9}$")
SECRET_RE = re.compile(r"^[a-zA-Z0-9]{32}$")

#: (id, HTTP status, message) of the documented errors.
ERRORS = {
    1: (400, "Invalid client uuid"),
    2: (400, "Invalid service"),
    3: (400, "Invalid secret"),
    4: (409, "Already subscribed to that service"),
    5: (429, "Whoaw there cowboy, slow down!"),
    6: (404, "Service not found"),
    7: (400, "Missing argument"),
    10: (400, "No changes were made"),
    11: (409, "Not subscribed to that service"),
}


class PushjetFailure(Abort):
    """Aborts a handler with a Pushjet error body."""

    def __init__(self, error_id: int, message: str | None = None):
        status, default = ERRORS.get(error_id, (400, ""))
        self.error_id, self.status, self.message = error_id, status, message or default
        super().__init__(_plain({"error": {"message": self.message, "id": error_id}}, status), self.message)


class ColumnOverflow(Abort):
    """A value longer than its database column: upstream (MariaDB in strict mode) answers an HTML 500."""

    def __init__(self) -> None:
        super().__init__(html_error(500))


#: ``name`` is a 255-character column; ``text``, ``link`` and ``icon`` are TEXT columns (bytes of UTF-8).
NAME_COLUMN, TEXT_COLUMN = 255, 65_535


def _column(value: str, characters: int | None = None) -> str:
    """``value`` if it fits its column, else :class:`ColumnOverflow`."""
    size = len(value) if characters is not None else len(value.encode("utf-8", "surrogatepass"))
    if size > (characters if characters is not None else TEXT_COLUMN):
        raise ColumnOverflow()
    return value


def _missing(name: str) -> PushjetFailure:
    return PushjetFailure(7, f"Missing argument {name}")


def _plain(payload: Any, status: int = 200) -> Response:
    """Errors and bare successes: ``json.dumps`` text served as ``text/html``."""
    return json_response(payload, status, "text/html; charset=utf-8", compact=False)


def _data(payload: Any) -> Response:
    """Data answers: Flask's ``jsonify`` (sorted keys, compact, ``application/json``)."""
    return json_response(payload)


OK = {"status": "ok"}


@dataclass
class _Service:
    secret: str
    public: str
    name: str
    icon: str
    created: int

    def as_dict(self, secret: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"created": self.created, "icon": self.icon, "name": self.name, "public": self.public}
        if secret:
            data["secret"] = self.secret
        return data


@dataclass
class _Subscription:
    uuid: str
    service: _Service
    timestamp: int
    timestamp_checked: int
    last_read: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service.as_dict(),
            "timestamp": self.timestamp,
            "timestamp_checked": self.timestamp_checked,
            "uuid": self.uuid,
        }


@dataclass
class _Message:
    id: int
    service: _Service
    message: str
    title: str
    link: str
    level: int
    timestamp: int = field(default_factory=lambda: int(time.time()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "link": self.link,
            "message": self.message,
            "service": self.service.as_dict(),
            "timestamp": self.timestamp,
            "title": self.title,
        }


def _new_keys() -> tuple[str, str]:
    """A secret and its public key, generated as the upstream server does."""
    secret = hashlib.sha1(os.urandom(100)).hexdigest()[:32]
    digest = list(hashlib.sha256(secret.encode()).hexdigest()[:40])  # ripemd160 upstream
    for position in (4, 11, 24, 30):
        digest[position] = "-"
    return secret, "".join(digest)


class PushjetServer(SandboxServer):
    """The Pushjet API (REST part), in memory."""

    serialized = True

    name = "pushjet"
    default_port = 8081

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._services: dict[str, _Service] = {}  # by secret
        self._subscriptions: list[_Subscription] = []  # in creation order
        self._messages: list[_Message] = []
        self._next_message_id = 1
        super().__init__(host, port)

    def setup_routes(self) -> None:
        routes = {
            ("POST", "/service"): self._create_service,
            ("GET", "/service"): self._get_service,
            ("PATCH", "/service"): self._edit_service,
            ("DELETE", "/service"): self._delete_service,
            ("POST", "/subscription"): self._subscribe,
            ("GET", "/subscription"): self._list_subscriptions,
            ("DELETE", "/subscription"): self._unsubscribe,
            ("POST", "/message"): self._send_message,
            ("GET", "/message"): self._fetch,
            ("DELETE", "/message"): self._mark_read,
        }
        for (method, path), handler in routes.items():
            self.route(method, path, handler)
        self.route(
            "GET",
            "/",
            lambda r: Response(
                302, b"", {"Location": "http://docs.pushjet.io", "Content-Type": "text/html; charset=utf-8"}
            ),
        )
        self.route("GET", "/version", lambda r: Response(200, b"7ddb7df", {"Content-Type": "text/html; charset=utf-8"}))
        self.route("GET", "/_sandbox/state", self._state)

    def describe(self) -> str:
        return f"pushjet: {self.base_url}  (no credentials: create a service with POST /service)"

    # -- parameter validation (the decorators of upstream utils.py) ----------

    @staticmethod
    def _uuid(request: Request) -> str:
        uuid = request.arg("uuid")
        if not uuid:
            raise _missing("uuid")
        if not UUID_RE.match(uuid):
            raise PushjetFailure(1)
        return uuid

    def _service_by_public(self, request: Request) -> _Service:
        public = request.arg("service")
        if not public:
            raise _missing("service")
        if not PUBLIC_RE.match(public):
            raise PushjetFailure(2)
        for service in self._services.values():
            if service.public.lower() == public.lower():  # the database's collation ignores case
                return service
        raise PushjetFailure(6)

    def _service_by_secret(self, request: Request) -> _Service:
        secret = request.arg("secret")
        if not secret:
            raise _missing("secret")
        if not SECRET_RE.match(secret):
            raise PushjetFailure(3)
        service = self._services.get(secret.lower())  # generated in lower case; compared ignoring case
        if service is None:
            raise PushjetFailure(6)
        return service

    def _device_subscriptions(self, uuid: str) -> list[_Subscription]:
        return [s for s in self._subscriptions if s.uuid.lower() == uuid.lower()]

    def _newest_message_id(self) -> int:
        return max((m.id for m in self._messages), default=0)

    def _prune(self, service: _Service) -> None:
        readers = [s.last_read for s in self._subscriptions if s.service is service]
        if readers:
            oldest = min(readers)
            self._messages = [m for m in self._messages if m.service is not service or m.id >= oldest]

    # -- /service ------------------------------------------------------------

    def _create_service(self, request: Request) -> Response:
        name = request.form.get("name", "").strip()
        if not name:
            raise _missing("name")
        secret, public = _new_keys()
        service = _Service(
            secret, public, _column(name, NAME_COLUMN), _column(request.form.get("icon", "").strip()), int(time.time())
        )
        self._services[secret] = service
        return _data({"service": service.as_dict(secret=True)})

    def _get_service(self, request: Request) -> Response:
        if request.arg("service") or not request.arg("secret"):
            service = self._service_by_public(request)
        else:
            service = self._service_by_secret(request)
        return _data({"service": service.as_dict()})

    def _edit_service(self, request: Request) -> Response:
        service = self._service_by_secret(request)
        form = request.form
        if "name" not in form and "icon" not in form:
            raise PushjetFailure(10)
        name = _column(form["name"].strip(), NAME_COLUMN) if "name" in form else service.name
        icon = _column(form["icon"].strip()) if "icon" in form else service.icon
        service.name, service.icon = name, icon  # one UPDATE: all or nothing
        return _plain(OK)

    def _delete_service(self, request: Request) -> Response:
        service = self._service_by_secret(request)
        self._subscriptions = [s for s in self._subscriptions if s.service is not service]
        self._messages = [m for m in self._messages if m.service is not service]
        del self._services[service.secret]
        return _plain(OK)

    # -- /subscription -------------------------------------------------------

    def _subscribe(self, request: Request) -> Response:
        uuid = self._uuid(request)
        service = self._service_by_public(request)
        if any(s.service is service for s in self._device_subscriptions(uuid)):
            raise PushjetFailure(4)
        now = int(time.time())
        self._subscriptions.append(_Subscription(uuid, service, now, now, self._newest_message_id()))
        return _data({"service": service.as_dict()})

    def _list_subscriptions(self, request: Request) -> Response:
        uuid = self._uuid(request)
        return _data({"subscriptions": [s.as_dict() for s in self._device_subscriptions(uuid)]})

    def _unsubscribe(self, request: Request) -> Response:
        uuid = self._uuid(request)
        service = self._service_by_public(request)
        for subscription in self._device_subscriptions(uuid):
            if subscription.service is service:
                self._subscriptions.remove(subscription)
                return _plain(OK)
        raise PushjetFailure(11)

    # -- /message ------------------------------------------------------------

    def _send_message(self, request: Request) -> Response:
        service = self._service_by_secret(request)
        form = request.form
        text = form.get("message", "")
        if not text:
            raise _missing("message")
        if not any(s.service is service for s in self._subscriptions):
            return _plain(OK)  # "Pretend we did something"
        level = form.get("level", "")
        message = _Message(
            id=self._next_message_id,
            service=service,
            message=_column(text),
            title=form.get("title", "").strip()[:255],
            link=_column(form.get("link", "").strip()),
            level=int(level[0]) if level[:1] in ("1", "2", "3", "4", "5") else 3,
        )
        self._next_message_id += 1
        self._messages.append(message)
        self._prune(service)
        return _plain(OK)

    def _fetch(self, request: Request) -> Response:
        uuid = self._uuid(request)
        subscriptions = self._device_subscriptions(uuid)
        found: list[_Message] = []
        for subscription in subscriptions:
            found.extend(
                m for m in self._messages if m.service is subscription.service and m.id > subscription.last_read
            )
        now = int(time.time())
        newest = max((m.id for m in found), default=None)
        for subscription in subscriptions:
            if newest is not None:
                subscription.last_read = max(subscription.last_read, newest)
            subscription.timestamp_checked = now
        for service in {id(s.service): s.service for s in subscriptions}.values():
            self._prune(service)
        return _data({"messages": [m.as_dict() for m in found]})

    def _mark_read(self, request: Request) -> Response:
        uuid = self._uuid(request)
        newest, now = self._newest_message_id(), int(time.time())
        for subscription in self._device_subscriptions(uuid):
            subscription.last_read = newest
            subscription.timestamp_checked = now
        return _plain(OK)

    # -- control API ---------------------------------------------------------

    def _state(self, request: Request) -> Response:
        """Counts of what the server holds (``GET /_sandbox/state``)."""
        return json_response(
            {
                "services": len(self._services),
                "subscriptions": len(self._subscriptions),
                "stored_messages": len(self._messages),
                "messages_accepted": self._next_message_id - 1,
            }
        )


SERVER = PushjetServer
