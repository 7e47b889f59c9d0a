"""A local Pushjet API server, faithful to ``protocols/pushjet.md``.

It reproduces the upstream ``Pushjet-Server-Api`` (commit ``7ddb7df``): the
routes, the validation order, the error ids and messages, the content types
(``application/json`` for data, ``text/html`` for errors and ``{"status": "ok"}``),
parameters read from the form body or else the query string, destructive
``GET /message`` with per-subscription read pointers, late subscribers, level
parsing by its first character and pruning of fully-read messages.
State lives in memory.

It also runs the realtime path (``protocols/pushjet.md`` §8), the WebSocket
connector (and its TCP variant) on its own ports (:class:`PushjetConnector`, ``realtime_url``), fed
by this server's store as the upstream connectors are fed by the API server
through the broker: replay of the unread messages on connect (marking them
read), every accepted message pushed live to the subscribed connections (then
marked read, as the connector's ``DELETE /message`` does), subscription changes
on subscribe and service delete, the documented errors. Its faults
(:meth:`PushjetConnector.fault`: ``drop``, ``stall``, ``garbage``; ``drop_new``: every
connection accepted, then dropped) and a delayed
mark-read (the connector's separate request) are reachable from tests and over
``POST /_sandbox/realtime`` of the API server.

Run it alone with ``python -m platypush_ext.sandbox pushjet --port 8081``
(the connectors on ``ws://127.0.0.1:8181`` and TCP port 7171).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

from ...core.untrusted import JSON
from ..core import Abort, Request, Response, SandboxServer, html_error, json_response
from . import static
from .connector import CONNECTOR_FAULTS, PushjetConnector
from .records import OK, PUBLIC_RE, SECRET_RE, UUID_RE, DumpOptions, Message, Service, Subscription

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


def _plain(payload: JSON, status: int = 200) -> Response:
    """Errors and bare successes: ``json.dumps`` text served as ``text/html``."""
    return json_response(payload, status, "text/html; charset=utf-8", compact=False)


def _data(payload: JSON) -> Response:
    """Data answers: Flask's ``jsonify`` (sorted keys, compact, ``application/json``, a final newline)."""
    response = json_response(payload)
    if isinstance(response.body, bytes):
        response.body += b"\n"
    return response


#: Werkzeug's ``Allow`` header, by the set of methods of a path (the order of a Python 2 ``set``).
ALLOW = {
    frozenset({"HEAD", "OPTIONS", "GET"}): "HEAD, OPTIONS, GET",
    frozenset({"HEAD", "GET", "POST", "PATCH", "OPTIONS", "DELETE"}): "HEAD, GET, POST, PATCH, OPTIONS, DELETE",
    frozenset({"HEAD", "GET", "POST", "OPTIONS", "DELETE"}): "HEAD, GET, POST, OPTIONS, DELETE",
}
#: Werkzeug's ``redirect()`` page (``GET /``).
REDIRECT_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n'
    '<p>You should be redirected automatically to target URL: <a href="{0}">{0}</a>.  If not click the link.'
)
DOCS_URL = "http://docs.pushjet.io"


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
    werkzeug_routing = True
    first_value_wins = True

    name = "pushjet"
    default_port = 8081

    def __init__(self, host: str = "127.0.0.1", port: int = 0, realtime_port: int = 0, tcp_port: int = 0):
        """
        :param host: the address to listen on.
        :param port: the API's port (0: a free one).
        :param realtime_port: the WebSocket connector's port (0: a free one).
        :param tcp_port: the TCP connector's port (0: a free one).
        """
        self._services: dict[str, Service] = {}  # by secret
        self._subscriptions: list[Subscription] = []  # in creation order
        self._messages: list[Message] = []
        self._next_message_id = 1
        #: seconds between a push and its mark-read (upstream: a separate ``DELETE /message``)
        self.mark_read_delay = 0.0
        super().__init__(host, port)
        self.connector = PushjetConnector(self, host, realtime_port, tcp_port)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for option, default in (("--realtime-port", "default_port"), ("--tcp-port", "default_tcp_port")):
            parser.add_argument(
                option,
                type=int,
                default=None,
                help=f"the {'WebSocket' if option == '--realtime-port' else 'TCP'} connector's port (default: "
                f"{getattr(PushjetConnector, default)} with the default --port, else a free one)",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace, host: str, port: int) -> "PushjetServer":
        defaults = port == cls.default_port
        realtime, tcp = getattr(args, "realtime_port", None), getattr(args, "tcp_port", None)
        if realtime is None:
            realtime = PushjetConnector.default_port if defaults else 0
        if tcp is None:
            tcp = PushjetConnector.default_tcp_port if defaults else 0
        return cls(host=host, port=port, realtime_port=realtime, tcp_port=tcp)

    def start(self) -> "PushjetServer":
        """Start the API and the connector."""
        super().start()
        self.connector.start()
        return self

    def stop(self) -> None:
        """Stop the connector (dropping its connections) and the API."""
        self.connector.stop()
        super().stop()

    @property
    def realtime_url(self) -> str:
        """The connector's ``ws://host:port`` (a client's ``realtime_url``)."""
        return self.connector.ws_url

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
        page = REDIRECT_PAGE.format(DOCS_URL).encode()
        self.route(
            "GET",
            "/",
            lambda r: Response(302, page, {"Location": DOCS_URL, "Content-Type": "text/html; charset=utf-8"}),
        )
        self.route("GET", r"/(?P<name>robots\.txt|favicon\.ico)", self._static)
        self.route("GET", r"/static/(?P<name>.+)", self._static)
        self.route("GET", "/version", lambda r: Response(200, b"7ddb7df", {"Content-Type": "text/html; charset=utf-8"}))
        self.route("GET", "/_sandbox/state", self._state)
        self.route("POST", "/_sandbox/realtime", self._ctl_realtime)
        self.route("POST", "/_sandbox/raw-message", self._ctl_raw_message)

    def allow(self, methods: list[str]) -> str:
        return ALLOW.get(frozenset(methods), ", ".join(methods))

    @staticmethod
    def _static(request: Request) -> Response:
        """``/robots.txt``, ``/favicon.ico`` and the same files under ``/static/`` (Flask's static route)."""
        found = static.FILES.get(request.params["name"])
        if found is None:
            return html_error(404)
        content_type, body = found
        return Response(200, body, static.headers(content_type))

    def describe(self) -> str:
        return (
            f"pushjet: {self.base_url}  realtime_url: {self.realtime_url} (TCP: port {self.connector.tcp_port})  "
            "(no credentials: create a service with POST /service)"
        )

    # -- parameter validation (the decorators of upstream utils.py) ----------

    @staticmethod
    def _uuid(request: Request) -> str:
        uuid = request.arg("uuid")
        if not uuid:
            raise _missing("uuid")
        if not UUID_RE.match(uuid):
            raise PushjetFailure(1)
        return uuid

    def _service_by_public(self, request: Request) -> Service:
        public = request.arg("service")
        if not public:
            raise _missing("service")
        if not PUBLIC_RE.match(public):
            raise PushjetFailure(2)
        for service in self._services.values():
            if service.public.lower() == public.lower():  # the database's collation ignores case
                return service
        raise PushjetFailure(6)

    def _service_by_secret(self, request: Request) -> Service:
        secret = request.arg("secret")
        if not secret:
            raise _missing("secret")
        if not SECRET_RE.match(secret):
            raise PushjetFailure(3)
        service = self._services.get(secret.lower())  # generated in lower case; compared ignoring case
        if service is None:
            raise PushjetFailure(6)
        return service

    def _device_subscriptions(self, uuid: str) -> list[Subscription]:
        return [s for s in self._subscriptions if s.uuid.lower() == uuid.lower()]

    def _newest_message_id(self) -> int:
        return max((m.id for m in self._messages), default=0)

    def _prune(self, service: Service) -> None:
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
        service = Service(
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
        for subscription in self._subscriptions:
            if subscription.service is service:
                self.connector.publish_subscription(subscription)
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
        subscription = Subscription(uuid, service, now, now, self._newest_message_id())
        self._subscriptions.append(subscription)
        self.connector.publish_subscription(subscription)
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
        message = Message(
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
        self.connector.publish_message(message)
        return _plain(OK)

    def _fetch(self, request: Request) -> Response:
        found = self.take_unread(self._uuid(request))
        if all(m.raw is None for m in found):
            return _data({"messages": [m.as_dict() for m in found]})
        # as _data, with raw message objects spliced in
        compact: DumpOptions = {"sort_keys": True, "separators": (",", ":")}
        body = b'{"messages":[' + b",".join(m.as_json(**compact) for m in found) + b"]}\n"
        return Response(200, body, {"Content-Type": "application/json"})

    def take_unread(self, uuid: str) -> list["Message"]:
        """The device's unread messages, marked read (``GET /message``; the connector's replay).

        :param uuid: the device.
        """
        subscriptions = self._device_subscriptions(uuid)
        found: list[Message] = []
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
        return found

    def _mark_read(self, request: Request) -> Response:
        self.mark_read(self._uuid(request))
        return _plain(OK)

    def mark_read(self, uuid: str) -> None:
        """Mark everything read for the device (``DELETE /message``; the connector after a push).

        :param uuid: the device.
        """
        with self.lock:
            newest, now = self._newest_message_id(), int(time.time())
            for subscription in self._device_subscriptions(uuid):
                subscription.last_read = newest
                subscription.timestamp_checked = now

    def topics(self, uuid: str) -> set[str]:
        """The public keys of the services the device is subscribed to (the connector's topics).

        :param uuid: the device.
        """
        return {s.service.public for s in self._device_subscriptions(uuid)}

    # -- control API ---------------------------------------------------------

    def _state(self, request: Request) -> Response:
        """Counts of what the server holds (``GET /_sandbox/state``)."""
        return json_response(
            {
                "services": len(self._services),
                "subscriptions": len(self._subscriptions),
                "stored_messages": len(self._messages),
                "messages_accepted": self._next_message_id - 1,
                "realtime_url": self.realtime_url,
                "realtime_connections": self.connector.connected(),
            }
        )

    def add_raw_message(self, public_key: str, body: bytes) -> None:
        """A message of a service whose object is ``body``, exactly (even when it is not JSON, not
        UTF-8 or huge): the next ``GET /message`` of its subscribers has it in ``messages``, and the
        connector pushes it as ``{"message": <body>}``.

        :param public_key: the sending service's public key.
        :param body: the message object's bytes.
        """
        with self.lock:
            service = next((s for s in self._services.values() if s.public.lower() == public_key.lower()), None)
            if service is None:
                raise KeyError(public_key)
            message = Message(self._next_message_id, service, "", "", "", 3, raw=bytes(body))
            self._next_message_id += 1
            self._messages.append(message)
        self.connector.publish_message(message)

    def _ctl_raw_message(self, request: Request) -> Response:
        """``POST /_sandbox/raw-message?service=<public key>`` with any body: see :meth:`add_raw_message`."""
        try:
            self.add_raw_message(request.query.get("service", ""), request.body)
        except KeyError:
            return json_response({"error": "no service with that public key (?service=...)"}, 404)
        return json_response({"queued": True})

    def _ctl_realtime(self, request: Request) -> Response:
        """``POST /_sandbox/realtime {"up": false, "fault": "drop", "mark_read_delay": 1, "drop_new": true}``:
        stop or start the connector, inject a fault into its connections, delay its mark-reads,
        drop every new connection once accepted."""
        spec = request.json() or {}
        unknown = set(spec) - {"up", "fault", "mark_read_delay", "drop_new"}
        if unknown:
            return json_response(
                {"error": f"unknown settings {sorted(unknown)}; use up, fault, mark_read_delay, drop_new"}, 400
            )
        if "mark_read_delay" in spec:
            self.mark_read_delay = float(spec["mark_read_delay"])
        if "drop_new" in spec:
            self.connector.drop_new = bool(spec["drop_new"])
        if "fault" in spec:
            if spec["fault"] not in CONNECTOR_FAULTS:
                return json_response({"error": f"unknown fault; use one of {', '.join(CONNECTOR_FAULTS)}"}, 400)
            self.connector.fault(spec["fault"])
        if spec.get("up") is False:
            self.connector.stop()
        elif spec.get("up") is True and not self.connector.running:
            self.connector.start()
        return json_response({"up": self.connector.running, "connections": self.connector.connected()})
