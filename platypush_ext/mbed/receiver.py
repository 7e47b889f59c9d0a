"""The callback channel's public HTTP receiver, hardened against strangers (framework-free).

Anyone who can reach the callback URL can connect, so nothing a client sends before it proved the
shared secret may cost more than a little, for a short time:

* the request line and headers must arrive within one deadline (``head_timeout``, at most 10 s,
  however slowly they trickle in), in at most ``max_head_bytes`` bytes and ``max_header_lines``
  lines (else ``431``, closed);
* the path (``404``) and the secret header (``401``) are checked as soon as the headers are read,
  before any body; then the announced size (``400``/``411``/``413``);
* at most ``max_connections`` connections are handled at once (others are closed at once);
* with ``tls`` (``callback_tls_cert`` / ``callback_tls_key``: :func:`server_tls`) it speaks HTTPS: the
  TLS handshake runs in the connection's own thread and must end within the head's deadline too
  (a client that trickles it, or never sends it, is dropped), then the head has its deadline;
* an accepted body is journaled (``record``) before its ``204``, and only its journal id waits in a
  queue of at most ``max_queue`` ids for the channel; when the queue is full the answer is ``503``
  before the body is read (the service delivers it again later);
* a body over ``max_body`` from a sender that proved the secret is read and thrown away (up to
  :data:`MAX_DISCARD` bytes, within a deadline), a note of it journaled (``record_refused``: it is
  dropped and counted as a malformed message) and answered ``204``: a service that got ``413`` would
  send it again and again, ahead of every later message. Larger ones, or without ``record_refused``:
  ``413``.
"""

from __future__ import annotations

import hmac
import io
import logging
import queue
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, cast

from ..core.errors import InvalidArgumentError
from ..core.text import one_line
from ..core.transport import check_path, load_cert_chain

logger = logging.getLogger("platypush_ext.mbed")

#: The header carrying the callback channel's shared secret.
SECRET_HEADER = "X-Platypush-Mbed-Secret"
#: The longest deadline for a request's line and headers.
MAX_HEAD_TIMEOUT = 10.0
#: The largest body over ``max_body`` read and thrown away (a note journaled) rather than refused with ``413``.
MAX_DISCARD = 64 << 20
#: The slowest an over-large body may come (bytes per second) before the connection is closed.
DISCARD_RATE = 1 << 20

_HEAD_END = re.compile(rb"\r?\n\r?\n")


class _HeadTooLarge(Exception):
    """The request line and headers exceed the receiver's limits."""


class _ReceiverHandler(BaseHTTPRequestHandler):
    """Reads the head within its deadline and limits, checks the path and the secret header before
    reading any body, then the body's announced size; answers 204, or 400/401/404/411/413/431/503."""

    protocol_version = "HTTP/1.1"
    server: Receiver

    def setup(self) -> None:
        self.timeout = self.server.timeout_seconds  # type: ignore[misc]  # per connection: setup() reads it; a slow body ends too
        super().setup()
        self._connection_rfile = cast(io.BufferedReader, self.rfile)  # makefile("rb"): buffered, it peeks

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("mbed callback receiver: " + format, *args)

    def handle_one_request(self) -> None:
        try:
            head = self._read_head()
        except _HeadTooLarge:
            self.server.oversized += 1
            self.requestline, self.request_version, self.command = "", "", ""
            self._refuse(431)
            return None
        except OSError:  # the deadline passed (TimeoutError), or the connection broke
            self.server.timed_out += 1
            self.close_connection = True
            return None
        if head is None:  # the client closed the connection
            self.close_connection = True
            return None
        self.rfile = io.BytesIO(head)  # what http.server parses; the body comes from the connection
        try:
            super().handle_one_request()
        finally:
            self.rfile = self._connection_rfile
        return None

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.rfile = self._connection_rfile
        return parsed

    def _read_head(self) -> bytes | None:
        """The request line and headers (up to the empty line), read within the deadline and limits,
        without consuming anything after them; ``None`` if the client closed first."""
        limits, head = self.server, bytearray()
        deadline = time.monotonic() + limits.head_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request head not complete in time")
            self.connection.settimeout(left)
            data = self._connection_rfile.peek(1)  # at most one read from the connection, within the deadline
            if not data:
                return None
            kept = min(3, len(head))
            end = _HEAD_END.search(bytes(head[len(head) - kept :]) + data)
            head += self._connection_rfile.read(len(data) if end is None else end.end() - kept)
            if len(head) > limits.max_head_bytes or head.count(b"\n") > limits.max_header_lines + 1:
                raise _HeadTooLarge
            if end is not None:
                self.connection.settimeout(self.timeout)
                return bytes(head)

    def _refuse(self, status: int) -> None:
        """Answer ``status`` and close the connection (what a caller returns: nothing to read)."""
        if status in (401, 404):
            self.server.rejected += 1
        self.close_connection = True  # an unread body must not be taken for the next request
        self._answer(status, close=True)

    def _length(self) -> int | None:
        """The announced body size, or ``None`` after answering an error."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411)
            return None
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):
            self._refuse(400)
            return None
        limit = self.server.max_body if self.server.record_refused is None else MAX_DISCARD
        if len(text) > 15 or int(text) > limit:
            self._refuse(413)
            return None
        return int(text)

    def _receive(self) -> None:
        if self.server.closing.is_set():  # stopping: nothing more is acknowledged (the service delivers it again)
            self._refuse(503)
            return None
        if self.path.split("?")[0] != self.server.path:
            self._refuse(404)
            return None
        given = self.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.server.secret.encode()):
            self._refuse(401)
            return None
        length = self._length()
        if length is None:
            return None
        if not self.server.reserve():  # the channel is behind: the service delivers it again later
            self.server.full += 1
            self._refuse(503)
            return None
        queued = False
        try:
            queued = self._take(length)
        finally:
            if not queued:
                self.server.unreserve()
        return None

    def _take(self, length: int) -> bool:
        """Read the body, journal it and queue its id (the reservation goes with it); whether it was queued."""
        if length > self.server.max_body:
            return self._discard(length)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client gave up (or timed out) before sending it all
            self._refuse(400)
            return False
        queued = False
        if body.strip():
            try:
                record_id = self.server.record(body)
            except Exception as exc:  # noqa: BLE001 - not acknowledged: the service sends it again
                logger.error("mbed callback: cannot journal a message (%s: %s)", type(exc).__name__, exc)
                self._answer(500, close=True)
                return False
            self.server.inbox.put(record_id)
            queued = True
        self._answer(204)
        return queued

    def _discard(self, length: int) -> bool:
        """Read an over-large body and throw it away (within a deadline), journal a note of it and queue
        its id; whether it was queued."""
        deadline = time.monotonic() + max(self.server.timeout_seconds, length / DISCARD_RATE)
        left = length
        while left > 0:
            if time.monotonic() > deadline:
                self.close_connection = True
                return False
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:  # the client gave up
                self.close_connection = True
                return False
            left -= len(chunk)
        record_refused = self.server.record_refused
        assert record_refused is not None
        limit = self.server.max_body
        reason = f"a callback body of {length:,} bytes, over callback_max_body ({limit:,}): not kept"
        try:
            record_id = record_refused(reason)
        except Exception as exc:  # noqa: BLE001 - not acknowledged: the service sends it again
            logger.error("mbed callback: cannot journal a message (%s: %s)", type(exc).__name__, exc)
            self._answer(500, close=True)
            return False
        self.server.inbox.put(record_id)
        self._answer(204)
        return True

    def _answer(self, status: int, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if status == 503:
            self.send_header("Retry-After", "1")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()

    do_PUT = do_POST = _receive


class _MemoryStore:
    """Without a journal: the bodies by id until the channel loads them (at most the queue's size)."""

    def __init__(self) -> None:
        self._bodies: dict[int, bytes] = {}
        self._ids = iter(range(1, 1 << 62))
        self._lock = threading.Lock()

    def record(self, body: bytes) -> int:
        with self._lock:
            record_id = next(self._ids)
            self._bodies[record_id] = body
        return record_id

    def load(self, record_id: int) -> bytes | None:
        with self._lock:
            return self._bodies.pop(record_id, None)


def server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The TLS context of an HTTPS receiver with the certificate ``cert`` and its private key ``key``
    (PEM files), or ``None`` (plain HTTP) without ``cert``.

    :param cert: ``callback_tls_cert``, the certificate (chain), its key in it or in ``key``.
    :param key: ``callback_tls_key``.
    :raises InvalidArgumentError: a file is missing, or they cannot be loaded (one line).
    """
    if cert is None and key is None:
        return None
    if cert is None:
        raise InvalidArgumentError("mbed: callback_tls_key needs callback_tls_cert (the certificate it belongs to)")
    cert = check_path(cert, "mbed: callback_tls_cert")
    key = None if key is None else check_path(key, "mbed: callback_tls_key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    load_cert_chain(context, cert, key, "mbed: callback_tls_cert / callback_tls_key")
    return context


class Receiver(ThreadingHTTPServer):
    """The callback receiver: at most ``max_connections`` connections handled at once (others are
    closed at once); each request's head within ``head_timeout`` seconds and the limits; a body
    journaled by ``record`` and its id queued in :attr:`inbox` (at most ``max_queue``).

    :param address: where to listen.
    :param path: the callback path.
    :param secret: the value of :data:`SECRET_HEADER` required.
    :param max_body: the largest body accepted (``413`` above).
    :param timeout: seconds a connection may stay idle or slow (the head's deadline too, at most 10 s).
    :param max_connections: connections handled at once.
    :param record: durably records a body and returns its id (default: kept in memory until loaded).
    :param record_refused: durably records a note of a body over ``max_body`` (read and thrown away)
        and returns its id; without it such a body is answered ``413``.
    :param max_queue: journal ids waiting for the channel at most (``503`` when full).
    :param max_head_bytes: the longest request line and headers, in bytes (``431`` above).
    :param max_header_lines: the most header lines (``431`` above).
    :param tls: speak HTTPS with this context (:func:`server_tls`); its handshake within ``head_timeout``.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        path: str,
        secret: str,
        *,
        max_body: int = 1 << 20,
        timeout: float = 10.0,
        max_connections: int = 16,
        record: Callable[[bytes], int] | None = None,
        record_refused: Callable[[str], int] | None = None,
        max_queue: int = 100,
        max_head_bytes: int = 16 * 1024,
        max_header_lines: int = 40,
        tls: ssl.SSLContext | None = None,
    ):
        self.path, self.secret, self.max_body, self.timeout_seconds = path, secret, max_body, timeout
        self.head_timeout = min(float(timeout), MAX_HEAD_TIMEOUT)
        self.max_head_bytes, self.max_header_lines = int(max_head_bytes), int(max_header_lines)
        self._memory = None if record is not None else _MemoryStore()
        self.record: Callable[[bytes], int] = record or self._memory.record  # type: ignore[union-attr]
        self.record_refused = record_refused
        #: journal ids of accepted bodies, for the channel (``None`` wakes it up)
        self.inbox: queue.Queue[int | None] = queue.Queue()
        self._room = threading.BoundedSemaphore(max(1, int(max_queue)))
        self.rejected = self.refused = self.oversized = self.timed_out = self.full = self.tls_failed = 0
        self.tls = tls
        self._slots = threading.BoundedSemaphore(max_connections)
        #: set by :meth:`close_connections`: every request is answered ``503`` and its connection closed
        self.closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _ReceiverHandler)

    # -- the queue of journal ids ------------------------------------------------

    def reserve(self) -> bool:
        """Reserve room for one id (``False`` when the queue is full)."""
        return self._room.acquire(blocking=False)

    def unreserve(self) -> None:
        """Give back a reservation that queued nothing (a queued id keeps its own until :meth:`take`)."""
        self._room.release()

    def take(self, timeout: float) -> int | None:
        """The next id (``None`` after ``timeout`` seconds, or when woken up)."""
        try:
            record_id = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if record_id is not None:
            self._room.release()
        return record_id

    def load(self, record_id: int) -> bytes | None:
        """The body of an id recorded without a journal (``None`` with a journal: the journal has it)."""
        return self._memory.load(record_id) if self._memory is not None else None

    # -- connections -------------------------------------------------------------

    # request: a TCP server's is its socket (typeshed types it for every server: a UDP one's (data, socket) too)
    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
            self._slots.release()

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        secure = self._handshake(request)
        if secure is None:
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(secure)
            try:
                secure.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the client is gone
            secure.close()

    def _handshake(self, request: socket.socket) -> ssl.SSLSocket | None:
        """The TLS side of an accepted connection once its handshake is done, within ``head_timeout``
        seconds in all (a deadline: ``ssl`` bounds the whole handshake by the socket's timeout); ``None``
        when it failed or timed out (counted in :attr:`tls_failed` / :attr:`timed_out`)."""
        assert self.tls is not None
        try:
            secure = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            self.tls_failed += 1
            return None
        with self._connections_lock:  # close_connections() shuts the TLS socket down (the raw one is detached)
            self._connections.discard(request)
            self._connections.add(secure)
        try:
            secure.settimeout(self.head_timeout)
            secure.do_handshake()
            return secure
        except (TimeoutError, socket.timeout):
            self.timed_out += 1
        except (ssl.SSLError, OSError, ValueError) as exc:
            self.tls_failed += 1
            logger.debug("mbed callback receiver: a TLS handshake failed (%s)", one_line(exc, 200))
        with self._connections_lock:
            self._connections.discard(secure)
        secure.close()
        return None

    def close_connections(self) -> None:
        """Acknowledge nothing more: later requests are answered ``503``, and the open connections (a
        service keeps its deliveries' connection alive) are shut down, so that a delivery cannot land
        in a receiver that is stopping and whose queue nobody takes any more."""
        self.closing.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed meanwhile

    def server_close(self) -> None:
        self.close_connections()
        super().server_close()

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver prints a traceback to stderr; a broken or hostile connection is one debug line
        logger.debug("mbed callback receiver: a connection failed", exc_info=False)
