"""The three ways to consume the account's notification channel (framework-free).

* :class:`LongPollChannel` — ``GET /v2/notification/pull`` in a loop (the Connector's default);
* :class:`CallbackChannel` — a small HTTP receiver on a local port, registered
  with ``PUT /v2/notification/callback`` and authenticated by a random
  shared-secret header compared in constant time; it answers at once and the
  bodies are processed from a queue;
* :class:`WebSocketChannel` — ``/v2/notification/websocket-connect`` (Pelion / Izuma).

Each runs in its own thread, hands every NotificationMessage to ``on_message``,
reports ``on_up()`` / ``on_down(error)``, backs off with jitter on failures
(never busy-loops) and stops when asked. A long poll cannot be interrupted:
:meth:`Channel.stop` returns at once, and the thread ends when the current poll
returns (what it brings is still handed over).
"""

from __future__ import annotations

import hmac
import logging
import queue
import secrets
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from ..backoff import Backoff
from ..http import BadRequestError, ProtocolError, ServiceConnectionError, ServiceError
from ..listening import Listener
from ..wsclient import MAX_MESSAGE, MessageTooLarge
from .client import ChannelConflictError

logger = logging.getLogger("platypush_ext.mbed")

#: The header carrying the callback channel's shared secret.
SECRET_HEADER = "X-Platypush-Mbed-Secret"


class Channel:
    """Base class: the loop, the backoff and the thread.

    :param client: the :class:`~platypush_ext.mbed.client.MbedClient`.
    :param on_message: called with each NotificationMessage (a dict or JSON text).
    :param on_up: called after each successful exchange (cheap; the caller
        deduplicates, e.g. with ``listening.Availability``).
    :param on_down: called with the error of each failed exchange.
    :param backoff: the delays after failures (default: 1 s doubling to 60 s, with jitter).
    :param record: durably records a message before anything else happens to it
        and returns its id, then passed to ``on_message(message, id)`` (a journal).
    """

    name = "channel"

    def __init__(
        self,
        client: Any,
        on_message: Callable[[Any], Any],
        on_up: Callable[[], None] | None = None,
        on_down: Callable[[ServiceError], None] | None = None,
        backoff: Backoff | None = None,
        record: Callable[[Any], int] | None = None,
    ):
        self.client = client
        self.record = record
        self.on_message = on_message
        self.on_up = on_up or (lambda: None)
        self.on_down = on_down or (lambda error: logger.warning("mbed %s: %s", self.name, error))
        self.backoff = backoff or Backoff()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        #: why the channel ended on its own (a :class:`ChannelConflictError`), else ``None``
        self.failure: str | None = None

    # -- to implement --------------------------------------------------------

    def step(self) -> None:
        """One bounded exchange with the service (raises :class:`ServiceError` on failure)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the channel holds (sockets, servers)."""

    # -- loop ------------------------------------------------------------------

    def dispatch(self, message: Any, record_id: int | None = None) -> None:
        """Hand a message to ``on_message``, recorded first (unless ``record_id`` says it was)."""
        if self.record is not None and record_id is None:
            record_id = self.record(message)
        try:
            if record_id is None:
                self.on_message(message)
            else:
                self.on_message(message, record_id)
        except ProtocolError as exc:
            logger.warning("mbed %s: skipping a malformed notification message: %s", self.name, exc)
        except Exception:
            logger.exception("mbed %s: failed to process a notification message", self.name)

    def run(self) -> None:
        """Run until :meth:`stop`."""
        try:
            Listener(
                self._step, self.stopping, backoff=self.backoff, on_down=self.on_down, on_unexpected=self._unexpected
            ).run()
        finally:
            self.close()

    def _step(self) -> float:
        try:
            self.step()
        except ChannelConflictError as exc:  # retrying cannot help: one readable error, and the channel ends
            self.failure = str(exc)
            logger.error("%s", exc)
            self.stopping.set()
            raise
        return 0.0

    def claim(self, register: Callable[[], Any]) -> Any:
        """Run ``register`` (the request that creates or uses this channel on the service).

        Pelion / Izuma allow one channel type at a time and answer ``400`` otherwise: then
        the channel of the other type is removed and ``register`` tried once more; a second
        refusal raises :class:`ChannelConflictError` (no blind retries). A ``400`` while no
        other channel exists (e.g. an unreachable callback URL) is raised as it is."""
        try:
            return register()
        except BadRequestError as exc:
            if not self.client.pelion or exc.status != 400:
                raise
            removed = self.client.remove_other_channel(self.name)
            if removed is None:
                raise
        logger.warning("mbed %s: removed the account's %s channel (one channel type at a time)", self.name, removed)
        try:
            return register()
        except BadRequestError as exc:
            raise ChannelConflictError(
                f"mbed {self.name}: the service still refuses this channel after the {removed} channel "
                f"was removed ({exc}); not retrying",
                status=exc.status,
            ) from None

    def _unexpected(self, exc: Exception) -> None:
        # A bug or a surprise must not end the channel: without this the thread died silently and
        # no notification (nor any async answer) ever arrived again. Text only: no traceback, no secret.
        text = self.client.redact(f"{type(exc).__name__}: {exc}")
        logger.error("mbed %s: unexpected failure (%s); retrying with backoff", self.name, text)

    def start_thread(self) -> threading.Thread:
        self.thread = threading.Thread(target=self.run, name=f"mbed-{self.name}", daemon=True)
        self.thread.start()
        return self.thread

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the loop to end; waits at most ``timeout`` seconds for it."""
        self.stopping.set()
        self.interrupt()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def interrupt(self) -> None:
        """Unblock a waiting :meth:`step` if possible."""


class LongPollChannel(Channel):
    """``GET /v2/notification/pull`` in a loop; re-polls at once after ``200`` or ``204``.

    :param no_wait_first: the first poll uses ``noWait=true`` (answers at once).
    """

    name = "long_poll"
    #: An empty answer that came back faster than this (a server or proxy that does not
    #: hold the poll) is followed by a pause up to this many seconds: never a busy loop.
    MIN_EMPTY_CYCLE = 0.5

    def __init__(self, client: Any, on_message: Callable[[Any], Any], *, no_wait_first: bool = True, **kwargs: Any):
        super().__init__(client, on_message, **kwargs)
        self._first = no_wait_first

    def step(self) -> None:
        no_wait, self._first = self._first, False
        started = time.monotonic()
        message = self.claim(lambda: self.client.pull(no_wait=no_wait))
        if message:
            self.dispatch(message)  # journaled first: the service keeps nothing once it answered
        self.on_up()
        if not message and not no_wait:
            self.stopping.wait(max(0.0, self.MIN_EMPTY_CYCLE - (time.monotonic() - started)))


class _ReceiverHandler(BaseHTTPRequestHandler):
    """Checks the path and the secret header before reading any body, then the
    body's announced size; answers 204, or 400/401/404/411/413 (and closes)."""

    protocol_version = "HTTP/1.1"
    server: _Receiver

    def setup(self) -> None:
        self.timeout = self.server.timeout_seconds  # idle or slow connections end
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("mbed callback receiver: " + format, *args)

    def _refuse(self, status: int) -> None:
        if status in (401, 404):
            self.server.rejected += 1
        self.close_connection = True  # an unread body must not be taken for the next request
        self._answer(status, close=True)

    def _length(self) -> int | None:
        """The announced body size, or ``None`` after answering an error."""
        if self.headers.get("Transfer-Encoding"):
            return self._refuse(411)
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):
            return self._refuse(400)
        if len(text) > 15 or int(text) > self.server.max_body:
            return self._refuse(413)
        return int(text)

    def _receive(self) -> None:
        if self.path.split("?")[0] != self.server.path:
            return self._refuse(404)
        given = self.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.server.secret.encode()):
            return self._refuse(401)
        length = self._length()
        if length is None:
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client gave up (or timed out) before sending it all
            return self._refuse(400)
        if body.strip():
            try:
                record_id = self.server.record(body) if self.server.record else None
            except Exception as exc:  # noqa: BLE001 - not acknowledged: the service sends it again
                logger.error("mbed callback: cannot journal a message (%s: %s)", type(exc).__name__, exc)
                return self._answer(500, close=True)
            self.server.inbox.put((record_id, body))
        return self._answer(204)

    def _answer(self, status: int, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()

    do_PUT = do_POST = _receive


class _Receiver(ThreadingHTTPServer):
    """The callback receiver: at most ``max_connections`` connections handled at once
    (others are closed at once), each ending after ``timeout`` idle seconds."""

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
    ):
        self.path, self.secret, self.max_body, self.timeout_seconds = path, secret, max_body, timeout
        self.record = record
        self.inbox: queue.Queue[tuple[int | None, bytes]] = queue.Queue()
        self.rejected = self.refused = 0
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _ReceiverHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a broken or hostile connection is one debug line
        logger.debug("mbed callback receiver: a connection failed", exc_info=False)


class CallbackChannel(Channel):
    """A local HTTP receiver registered as the account's callback URL.

    :param bind: address to listen on (default ``127.0.0.1``).
    :param port: port to listen on (``0`` = a free port).
    :param public_url: the URL the service must call, when it differs from
        ``http://<bind>:<port>/mbed/callback`` (reverse proxy, NAT).
    :param recheck: seconds between two checks that the callback is still
        registered (re-registered if the service lost it).
    :param max_body: the largest body accepted, in bytes (larger: ``413``).
    :param timeout: seconds a connection may stay idle or slow before it is closed.
    :param max_connections: connections handled at once; more are closed at once.
    """

    name = "callback"
    PATH = "/mbed/callback"

    def __init__(
        self,
        client: Any,
        on_message: Callable[[Any], Any],
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        recheck: float = 30.0,
        max_body: int = 1 << 20,
        timeout: float = 10.0,
        max_connections: int = 16,
        **kwargs: Any,
    ):
        super().__init__(client, on_message, **kwargs)
        self.limits = {"max_body": int(max_body), "timeout": float(timeout), "max_connections": int(max_connections)}
        self.secret = secrets.token_urlsafe(24)
        client.add_secret(self.secret)
        self.bind, self.port, self.public_url, self.recheck = bind, port, public_url, recheck
        self.receiver: _Receiver | None = None
        self._registered_url: str | None = None
        self._since_check = 0.0

    @property
    def url(self) -> str:
        if self.public_url:
            return self.public_url
        assert self.receiver is not None
        host, port = self.receiver.server_address[:2]
        return f"http://{host}:{port}{self.PATH}"

    def _start_receiver(self) -> None:
        if self.receiver is not None:
            return
        try:
            self.receiver = _Receiver((self.bind, self.port), self.PATH, self.secret, record=self.record, **self.limits)
        except OSError as exc:
            raise ServiceConnectionError(f"cannot listen on {self.bind}:{self.port} for callbacks ({exc})") from None
        threading.Thread(
            target=self.receiver.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="mbed-callback-receiver",
            daemon=True,
        ).start()

    def step(self) -> None:
        self._start_receiver()
        assert self.receiver is not None
        if self._registered_url is None or self._since_check >= self.recheck:
            current = self.client.get_callback() if self._registered_url else None
            if current is None or current.get("url") != self.url:
                self.claim(lambda: self.client.put_callback(self.url, headers={SECRET_HEADER: self.secret}))
                logger.info("mbed callback: registered %s", self.url)
            self._registered_url = self.url
            self._since_check = 0.0
            self.on_up()
        try:
            record_id, body = self.receiver.inbox.get(timeout=0.5)
        except queue.Empty:
            self._since_check += 0.5
            return
        if body:
            self.dispatch(body, record_id)

    def interrupt(self) -> None:
        if self.receiver is not None:
            self.receiver.inbox.put((None, b""))

    def close(self) -> None:
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.shutdown()
            receiver.server_close()


class WebSocketChannel(Channel):
    """The Pelion / Izuma WebSocket channel: registered with ``PUT
    /v2/notification/websocket``, then each text frame is a NotificationMessage.

    The channel is registered once; a reconnect only opens the socket again. When the
    service closes it with 1001 (another socket, the channel deleted, a shutdown) or
    1011 (no channel registered), the next attempt asks ``GET /v2/notification/websocket``
    and registers again only if that answers that the channel is missing. A connection
    counts as a success (backoff reset, ``on_up`` after an outage) once it brought a
    message or stayed up :attr:`SETTLE` seconds (see :class:`~platypush_ext.listening.Listener`);
    a message over ``max_message`` bytes drops the connection.

    :param max_message: the longest message accepted (bytes).
    """

    name = "websocket"
    #: A connection that stayed up this long (or brought a message) ends an outage (seconds).
    SETTLE = 30.0
    #: Close codes after which the channel may be gone: check it before reconnecting.
    CHECK_AFTER = (1001, 1011)

    def __init__(self, client: Any, on_message: Callable[[Any], Any], *, max_message: int = MAX_MESSAGE, **kwargs: Any):
        super().__init__(client, on_message, **kwargs)
        self.ws: Any = None
        self.max_message = max_message
        self._registered = False  # by this channel, and not since reported missing
        self._check = False  # the service closed the socket in a way that may mean the channel is gone
        self._listener: Listener | None = None

    def run(self) -> None:
        """Run until :meth:`stop`, as one connection after another (see the class)."""
        self._listener = Listener(
            self._step,
            self.stopping,
            backoff=self.backoff,
            on_up=self.on_up,
            on_down=self.on_down,
            on_unexpected=self._unexpected,
            settle=self.SETTLE,
        )
        try:
            self._listener.run()
        finally:
            self.close()

    def step(self) -> None:
        import websocket

        if self.ws is None:
            self._open()
        try:
            opcode, frame = self.ws.recv_data_frame()
        except websocket.WebSocketTimeoutException:
            return
        except MessageTooLarge as exc:
            self._drop(abort=True)
            raise ServiceConnectionError(f"dropped the notification WebSocket: {exc}") from None
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            self._drop()
            raise ServiceConnectionError(f"the notification WebSocket closed ({type(exc).__name__})") from None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else None
            self._check = code in self.CHECK_AFTER
            self._drop()
            raise ServiceConnectionError(f"the service closed the notification WebSocket (code {code})")
        if self._listener is not None:
            self._listener.delivered()
        text = frame.data.decode("utf-8", "replace") if opcode == websocket.ABNF.OPCODE_TEXT else frame.data
        self.dispatch(text)

    def _open(self) -> None:
        """Register the channel unless it is known to exist, then connect."""
        if self._check and self._registered:
            self._registered = self.client.get_websocket() is not None
        self._check = False
        if not self._registered:
            self.claim(self.client.register_websocket)
            self._registered = True
        self.ws = self.client.connect_websocket(max_message=self.max_message)
        self.ws.settimeout(0.5)
        if self._listener is not None:
            self._listener.connected()
        else:
            self.on_up()

    def _drop(self, abort: bool = False) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.shutdown() if abort else ws.close(timeout=1)
            except Exception:
                logger.debug("mbed websocket: close failed", exc_info=True)

    def close(self) -> None:
        self._drop()
