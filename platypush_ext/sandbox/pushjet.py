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
import contextlib
import hashlib
import json
import os
import re
import select
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .core import Abort, Request, Response, SandboxServer, html_error, json_response, text_response
from .websocket import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    accept_upgrade,
    is_upgrade,
    recv_exact,
    ws_close,
    ws_frame,
    ws_read,
)

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
    raw: bytes | None = None  # a message object sent exactly as these bytes (``POST /_sandbox/raw-message``)

    def as_json(self, **options: Any) -> bytes:
        """The message object's bytes on the wire (a raw one as it is).

        :param options: ``json.dumps``' options.
        """
        return self.raw if self.raw is not None else json.dumps(self.as_dict(), **options).encode()

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

    def __init__(self, host: str = "127.0.0.1", port: int = 0, realtime_port: int = 0, tcp_port: int = 0):
        """
        :param host: the address to listen on.
        :param port: the API's port (0: a free one).
        :param realtime_port: the WebSocket connector's port (0: a free one).
        :param tcp_port: the TCP connector's port (0: a free one).
        """
        self._services: dict[str, _Service] = {}  # by secret
        self._subscriptions: list[_Subscription] = []  # in creation order
        self._messages: list[_Message] = []
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
        self.route(
            "GET",
            "/",
            lambda r: Response(
                302, b"", {"Location": "http://docs.pushjet.io", "Content-Type": "text/html; charset=utf-8"}
            ),
        )
        self.route("GET", "/version", lambda r: Response(200, b"7ddb7df", {"Content-Type": "text/html; charset=utf-8"}))
        self.route("GET", "/_sandbox/state", self._state)
        self.route("POST", "/_sandbox/realtime", self._ctl_realtime)
        self.route("POST", "/_sandbox/raw-message", self._ctl_raw_message)

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
        subscription = _Subscription(uuid, service, now, now, self._newest_message_id())
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
        self.connector.publish_message(message)
        return _plain(OK)

    def _fetch(self, request: Request) -> Response:
        found = self.take_unread(self._uuid(request))
        if all(m.raw is None for m in found):
            return _data({"messages": [m.as_dict() for m in found]})
        compact = {"sort_keys": True, "separators": (",", ":")}  # as _data, with raw message objects spliced in
        body = b'{"messages":[' + b",".join(m.as_json(**compact) for m in found) + b"]}"
        return Response(200, body, {"Content-Type": "application/json"})

    def take_unread(self, uuid: str) -> list["_Message"]:
        """The device's unread messages, marked read (``GET /message``; the connector's replay).

        :param uuid: the device.
        """
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
            message = _Message(self._next_message_id, service, "", "", "", 3, raw=bytes(body))
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


# -- the realtime connector ---------------------------------------------------

#: The faults :meth:`PushjetConnector.fault` injects into the live connections.
CONNECTOR_FAULTS = ("drop", "stall", "garbage")


def _ws_text(data: bytes) -> bytes:
    """A WebSocket text frame."""
    return ws_frame(data, TEXT)


def _tcp_text(data: bytes) -> bytes:
    """The TCP connector's framing: ``\\x02`` + JSON + ``\\x03``."""
    return b"\x02" + data + b"\x03"


class _Connection:
    """One client of the connector: its socket, device, topics (public keys) and framing.

    As an event-driven server handles a connection's readable event before it writes to it,
    a push first looks whether the client went away (its end of the connection, or a close
    frame, waiting to be read): then nothing is sent, and nothing marked read. The reader
    takes each client frame under the same lock, so that no close slips between the look
    and the push. (A real server may still push into a connection whose client is gone
    without a word — a crash, a network cut — until TCP tells it; that message is lost.)
    """

    def __init__(self, sock: socket.socket, uuid: str, topics: set[str], frame: Callable[[bytes], bytes]):
        self.sock, self.uuid, self.topics, self.frame = sock, uuid, topics, frame
        self.stalled = False  # sends nothing, answers no ping: a connection that hangs
        self.gone = False  # the client closed its end (read by the reader)
        self.lock = threading.Lock()

    def send(self, payload: Any, raw: bytes | None = None) -> bool:
        """Send ``payload`` as a JSON text frame (or ``raw`` text); ``False`` if it did not go
        (stalled, or the client went away)."""
        if not self.stalled:
            with self.lock, contextlib.suppress(OSError):
                if self.gone or self._closing():
                    return False
                self.sock.sendall(self.frame(raw if raw is not None else json.dumps(payload).encode()))
                return True
        return False

    def _closing(self) -> bool:
        """Whether the client's end of the connection or a close frame waits to be read."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        pending = self.sock.recv(1, socket.MSG_PEEK)
        return not pending or (self.frame is _ws_text and pending[0] & 0x0F == CLOSE)

    def drop(self) -> None:
        """Break the connection with a TCP reset."""
        with contextlib.suppress(OSError):  # already closed
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.shutdown(socket.SHUT_RDWR)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], connector: "PushjetConnector"):
        self.connector = connector
        super().__init__(address, _TcpHandler)


class PushjetConnector(SandboxServer):
    """The connectors (``Pushjet-Connectors``, §8) of a :class:`PushjetServer`: WebSocket,
    and TCP with its ``\\x02``/``\\x03`` framing.

    :param api: the API server whose store feeds it.
    :param host: the address to listen on.
    :param port: the WebSocket port (0: a free one; kept across a stop and start).
    :param tcp_port: the TCP port (likewise).
    """

    name = "pushjet-connector"
    default_port = 8181
    default_tcp_port = 7171

    def __init__(self, api: PushjetServer, host: str = "127.0.0.1", port: int = 0, tcp_port: int = 0):
        self.api, self.tcp_port = api, tcp_port
        self._connections: list[_Connection] = []
        #: accept each new connection (``{"status": "ok"}`` and the replay), then drop it at once:
        #: another client took the device's connection, or a proxy that resets connections
        self.drop_new = False
        self._tcp: _TcpServer | None = None
        super().__init__(host, port)

    def start(self) -> "PushjetConnector":
        """Accept connections, WebSocket and TCP."""
        super().start()
        self._tcp = _TcpServer((self.host, self.tcp_port), self)
        self.tcp_port = self._tcp.server_address[1]
        threading.Thread(target=self._tcp.serve_forever, args=(0.2,), daemon=True).start()
        return self

    def setup_routes(self) -> None:
        self.route("GET", "/.*", self._connect)

    @property
    def ws_url(self) -> str:
        """``ws://host:port``."""
        return f"ws://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether it accepts connections."""
        return self._httpd is not None

    def stop(self) -> None:
        """Stop accepting connections and drop the live ones."""
        super().stop()
        if self._tcp is not None:
            self._tcp.shutdown()
            self._tcp.server_close()
            self._tcp = None
        self.fault("drop")

    def connected(self) -> list[str]:
        """The devices of the live connections."""
        with self.api.lock:
            return [c.uuid for c in self._connections]

    def fault(self, kind: str) -> None:
        """Inject a fault into every live connection.

        :param kind: ``drop`` (TCP reset), ``stall`` (silent from now on: no push, no pong)
            or ``garbage`` (a text frame that is not JSON).
        """
        with self.api.lock:
            connections = list(self._connections)
        for connection in connections:
            if kind == "drop":
                connection.drop()
            elif kind == "stall":
                connection.stalled = True
            else:
                connection.send(None, raw=b"}{ not JSON \x01")

    # -- fed by the API --------------------------------------------------------

    def publish_message(self, message: _Message) -> None:
        """Push an accepted message to the connections subscribed to its service, then mark
        it read for their devices (after :attr:`PushjetServer.mark_read_delay`)."""
        for connection in self._subscribers(message.service.public):
            if self._push(connection, message):
                self._mark_read_later(connection.uuid)

    @staticmethod
    def _push(connection: _Connection, message: _Message) -> bool:
        """Send ``{"message": …}`` (a raw message object spliced in as it is)."""
        if message.raw is None:
            return connection.send({"message": message.as_dict()})
        return connection.send(None, raw=b'{"message": ' + message.raw + b"}")

    def publish_subscription(self, subscription: _Subscription) -> None:
        """Push a subscription change to its device's connections (each toggles its topic)."""
        for connection in list(self._connections):
            if connection.uuid.lower() == subscription.uuid.lower():
                connection.topics ^= {subscription.service.public}
                connection.send({"subscription": subscription.as_dict()})

    def _subscribers(self, public: str) -> list[_Connection]:
        return [c for c in self._connections if public in c.topics]

    def _mark_read_later(self, uuid: str) -> None:
        if self.api.mark_read_delay <= 0:
            self.api.mark_read(uuid)
            return
        timer = threading.Timer(self.api.mark_read_delay, self.api.mark_read, (uuid,))
        timer.daemon = True
        timer.start()

    # -- a connection ------------------------------------------------------------

    def _connect(self, request: Request) -> Response | None:
        if not is_upgrade(request):
            return text_response("This service requires use of the WebSocket protocol", 426)
        sock = accept_upgrade(request)
        connection: _Connection | None = None
        try:
            while True:
                opcode, payload = self._read(sock, connection)
                if opcode in (None, CLOSE):
                    if opcode == CLOSE:
                        ws_close(sock, 1000, "")
                    return None
                connection = self._frame(sock, connection, opcode, payload)
        finally:
            self._detach(connection)

    @staticmethod
    def _read(sock: socket.socket, connection: _Connection | None) -> tuple[int | None, bytes]:
        """The next client frame; once attached, read under the connection's lock (see :class:`_Connection`)."""
        if connection is None:
            return ws_read(sock)
        select.select([sock], [], [])
        with connection.lock:
            opcode, payload = ws_read(sock)
            if opcode in (None, CLOSE):
                connection.gone = True
        return opcode, payload

    def serve_tcp(self, sock: socket.socket) -> None:
        """A TCP client: its uuid is the first 36 bytes (anything after is ignored).

        :param sock: the connection.
        """
        uuid = (recv_exact(sock, 36) or b"").decode("utf-8", "replace")
        if not UUID_RE.match(uuid):
            with contextlib.suppress(OSError):  # the client may be gone
                sock.sendall(_tcp_text(json.dumps({"error": {"id": 1, "message": "Invalid client uuid"}}).encode()))
            return
        connection = self._attach(sock, uuid, _tcp_text)
        try:
            while True:
                select.select([sock], [], [])
                with connection.lock:
                    if recv_exact(sock, 1) is None:
                        connection.gone = True
                        break
        finally:
            self._detach(connection)

    def _detach(self, connection: _Connection | None) -> None:
        with self.api.lock:
            if connection in self._connections:
                self._connections.remove(connection)

    def _frame(self, sock: socket.socket, connection: _Connection | None, opcode: int, payload: bytes) -> Any:
        """Answer one client frame; the connection once its uuid arrived."""
        if opcode == PING:
            if connection is None or not connection.stalled:
                sock.sendall(ws_frame(payload, PONG))
        elif opcode == BINARY:
            error = {"error": {"id": -1, "message": "Expected text got binary data"}}
            sock.sendall(ws_frame(json.dumps(error).encode(), TEXT))
        elif opcode == TEXT and connection is None:
            uuid = payload.decode("utf-8", "replace")[:36]
            if not UUID_RE.match(uuid):
                error = {"error": {"id": 1, "message": "Invalid client uuid"}}
                sock.sendall(ws_frame(json.dumps(error).encode(), TEXT))
                return None
            return self._attach(sock, uuid, _ws_text)
        return connection  # later text frames are ignored, as upstream

    def _attach(self, sock: socket.socket, uuid: str, frame: Callable[[bytes], bytes]) -> _Connection:
        """``{"status": "ok"}``, then the replay of the unread messages (marked read), then live."""
        with self.api.lock:  # no message can slip between the replay and the live pushes
            connection = _Connection(sock, uuid, self.api.topics(uuid), frame)
            connection.send(OK)
            for message in self.api.take_unread(uuid):
                self._push(connection, message)
            if self.drop_new:  # a close frame after the status (TCP: the end of the stream)
                with contextlib.suppress(OSError):
                    if frame is _ws_text:
                        ws_close(sock, 1001, "Going away")
                    sock.shutdown(socket.SHUT_WR)
            else:
                self._connections.append(connection)
        return connection


class _TcpHandler(socketserver.BaseRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        self.server.connector.serve_tcp(self.request)


SERVER = PushjetServer
