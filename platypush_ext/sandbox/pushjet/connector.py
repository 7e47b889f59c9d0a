"""The realtime connectors of the Pushjet sandbox (``protocols/pushjet.md`` §8, upstream
``Pushjet-Connectors``): WebSocket, and TCP with its ``\\x02``/``\\x03`` framing, fed by the API
server's store: the replay of the unread messages on connect, live pushes, subscription changes,
and the faults tests inject (``drop``, ``stall``, ``garbage``, ``drop_new``)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import socketserver
import struct
import threading
from typing import Callable, Protocol

from ...core.untrusted import JSON
from ..core import Request, Response, SandboxServer, text_response
from ..ports import kept_port
from ..websocket import (
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
from .records import OK, UUID_RE, Message, Subscription


class MessageStore(Protocol):
    """What the connectors need of the API server whose messages they push."""

    #: seconds between a push and its mark-read
    mark_read_delay: float

    @property
    def lock(self) -> threading.RLock: ...

    def topics(self, uuid: str) -> set[str]: ...

    def take_unread(self, uuid: str) -> list[Message]: ...

    def mark_read(self, uuid: str) -> None: ...


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

    def send(self, payload: JSON, raw: bytes | None = None) -> bool:
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

    def __init__(self, api: MessageStore, host: str = "127.0.0.1", port: int = 0, tcp_port: int = 0):
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
        self.tcp_port = kept_port(self, self.tcp_port)
        self._tcp = _TcpServer((self.host, self.tcp_port), self)
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
            if kind == "drop":  # no longer live, whenever their threads notice
                self._connections.clear()
        for connection in connections:
            if kind == "drop":
                connection.drop()
            elif kind == "stall":
                connection.stalled = True
            else:
                connection.send(None, raw=b"}{ not JSON \x01")

    # -- fed by the API --------------------------------------------------------

    def publish_message(self, message: Message) -> None:
        """Push an accepted message to the connections subscribed to its service, then mark
        it read for their devices (after :attr:`PushjetServer.mark_read_delay`)."""
        for connection in self._subscribers(message.service.public):
            if self._push(connection, message):
                self._mark_read_later(connection.uuid)

    @staticmethod
    def _push(connection: _Connection, message: Message) -> bool:
        """Send ``{"message": …}`` (a raw message object spliced in as it is)."""
        if message.raw is None:
            return connection.send({"message": message.as_dict()})
        return connection.send(None, raw=b'{"message": ' + message.raw + b"}")

    def publish_subscription(self, subscription: Subscription) -> None:
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

    def _frame(
        self, sock: socket.socket, connection: _Connection | None, opcode: int, payload: bytes
    ) -> _Connection | None:
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
