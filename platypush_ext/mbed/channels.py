"""The three ways to consume the notification channel (framework-free): the account's on the Connector,
the Izuma *application*'s on Pelion / Izuma (shared by all of the application's keys).

* :class:`LongPollChannel` — ``GET /v2/notification/pull`` in a loop (the Connector's default);
* :class:`CallbackChannel` — a small HTTP receiver on a local port, registered
  with ``PUT /v2/notification/callback`` and authenticated by a random
  shared-secret header compared in constant time; it answers at once and the
  bodies are processed from a queue;
* :class:`WebSocketChannel` — ``/v2/notification/websocket-connect`` (Pelion / Izuma).

Each runs in its own thread, hands every NotificationMessage, as received (bytes), to ``on_message``
(journaled first by ``record``: parsed from the journal, so that one that cannot be read is dropped
with one log line, never retried nor taken for a failed exchange),
reports ``on_up()`` / ``on_down(error)``, backs off with jitter on failures
(never busy-loops) and stops when asked. :meth:`Channel.stop` releases what the
service holds for the channel: a held long poll's connection is shut down (what the
service has next stays queued for the next poll), the receiver closes (the service
retries its deliveries). Device calls wait for a starting channel (:meth:`Channel.wait_ready`).
"""

from __future__ import annotations

import copy
import logging
import secrets
import socket
import ssl
import struct
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Callable, Protocol, TypedDict, TypeVar, cast

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

from ..core.backoff import AuthBackoff, Backoff
from ..core.errors import AuthError, BadRequestError, ProtocolError, ServiceConnectionError, ServiceError
from ..core.http import HttpClient
from ..core.listening import Listener
from ..core.text import one_line
from ..core.untrusted import JSON, JSONObject
from ..core.wsclient import MAX_MESSAGE, BoundedWebSocket, MessageTooLarge
from .dialects import Dialect
from .errors import ChannelConflictError
from .receiver import SECRET_HEADER, Receiver

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["CallbackChannel", "Channel", "ChannelClient", "LongPollChannel", "WebSocketChannel"]

logger = logging.getLogger("platypush_ext.mbed")

T = TypeVar("T")


class ChannelClient(Protocol):
    """What the channels use of the client (:class:`~platypush_ext.mbed.client.MbedClient`)."""

    http: HttpClient
    dialect: Dialect

    def redact(self, text: object) -> str: ...

    def add_secret(self, value: object) -> None: ...

    def pull(self, no_wait: bool = False, http: HttpClient | None = None) -> bytes | None: ...

    def get_callback(self) -> JSONObject | None: ...

    def put_callback(self, url: str, headers: Mapping[str, str] | None = None) -> None: ...

    def get_websocket(self) -> JSONObject | None: ...

    def register_websocket(self) -> JSONObject: ...

    def connect_websocket(self, timeout: float = 10.0, max_message: int = MAX_MESSAGE) -> BoundedWebSocket: ...

    def remove_other_channel(self, kind: str) -> str | None: ...


class ChannelOptions(TypedDict, total=False):
    """The options every channel takes (:class:`Channel`'s), passed on by the channels' constructors."""

    on_up: Callable[[], None] | None
    on_down: Callable[[ServiceError], None] | None
    backoff: Backoff | None
    record: Callable[[JSON], int] | None
    auth_backoff: AuthBackoff | None


class Channel:
    """Base class: the loop, the backoff and the thread.

    :param client: the client (:class:`ChannelClient`, e.g. :class:`~platypush_ext.mbed.client.MbedClient`).
    :param on_message: called with each NotificationMessage (a dict or JSON text).
    :param on_up: called after each successful exchange (cheap; the caller
        deduplicates, e.g. with ``listening.Availability``).
    :param on_down: called with the error of each failed exchange.
    :param backoff: the delays after failures (default: 1 s doubling to 60 s, with jitter).
    :param record: durably records a message before anything else happens to it
        and returns its id, then passed to ``on_message(message, id)`` (a journal).
    :param auth_backoff: the waits after the service refused the key (default: 10 s, 15 s, then 5 min).
    """

    name = "channel"

    def __init__(
        self,
        client: ChannelClient,
        on_message: Callable[..., object],
        on_up: Callable[[], None] | None = None,
        on_down: Callable[[ServiceError], None] | None = None,
        backoff: Backoff | None = None,
        record: Callable[[JSON], int] | None = None,
        auth_backoff: AuthBackoff | None = None,
    ):
        self.client = client
        self.auth_backoff = auth_backoff or AuthBackoff()
        self.record = record
        self.on_message = on_message
        self._up = on_up or (lambda: None)
        #: set once the channel exists on the service (device calls wait for it, see :meth:`wait_ready`)
        self.ready = threading.Event()
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

    # -- readiness -------------------------------------------------------------

    def on_up(self) -> None:
        """An exchange succeeded: the channel exists on the service."""
        self.ready.set()
        self._up()

    def wait_ready(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until the channel exists on the service; whether it does.
        Returns at once when the channel stopped or ended."""
        deadline = time.monotonic() + timeout
        while not self.ready.is_set() and self.why_down() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.ready.wait(min(left, 0.05))
        return self.ready.is_set()

    def why_down(self) -> str | None:
        """Why the channel does not run (one line), or ``None`` while it runs or starts."""
        if self.failure:
            return f"the {self.name} channel ended: {self.failure}"
        if self.stopping.is_set() or (self.thread is not None and not self.thread.is_alive()):
            return f"the {self.name} channel is stopped"
        return None

    # -- loop ------------------------------------------------------------------

    def dispatch(self, message: JSON, record_id: int | None = None) -> None:
        """Hand a message, as received, to ``on_message``, recorded first (unless ``record_id`` says it
        was). A message that cannot be read is for ``on_message`` to drop (the plugin's journal logs
        and counts it); without a journal (``record``), it is logged here, once."""
        try:
            if self.record is not None and record_id is None:
                record_id = self.record(message)
            if record_id is None:
                self.on_message(message)
            else:
                self.on_message(message, record_id)
        except ProtocolError as exc:  # only without a journal: the plugin's on_message drops it itself
            logger.warning("mbed %s: dropped a notification message: %s", self.name, self.client.redact(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. the journal cannot be written: one line, the channel goes on
            text = self.client.redact(f"{type(exc).__name__}: {exc}")
            logger.error("mbed %s: failed to process a notification message (%s)", self.name, text)

    def run(self) -> None:
        """Run until :meth:`stop`."""
        try:
            Listener(
                self._step,
                self.stopping,
                backoff=self.backoff,
                on_down=self.on_down,
                on_unexpected=self._unexpected,
                auth_backoff=self.auth_backoff,
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

    def claim(self, register: Callable[[], T]) -> T:
        """Run ``register`` (the request that creates or uses this channel on the service).

        Pelion / Izuma allow one channel type at a time (the dialect's ``one_channel_type``) and
        answer ``400`` otherwise: then the channel of the other type is removed and ``register``
        tried once more; a second refusal raises :class:`ChannelConflictError` (no blind retries).
        A ``400`` while no other channel exists (e.g. an unreachable callback URL) is raised as it is."""
        try:
            return register()
        except BadRequestError as exc:
            if not self.client.dialect.one_channel_type or exc.status != 400:
                raise
            removed = self.client.remove_other_channel(self.name)
            if removed is None:
                raise
        logger.warning("mbed %s: removed the application's %s channel (one channel type at a time)", self.name, removed)
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
        """Run the channel in a thread of its own."""
        thread = threading.Thread(target=self.run, name=f"mbed-{self.name}", daemon=True)
        thread.start()  # returns once the thread runs: until then it is not alive, and a channel
        self.thread = thread  # whose thread is not alive reads as stopped (why_down)
        return thread

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the loop to end; waits at most ``timeout`` seconds for it."""
        self.stopping.set()
        self.interrupt()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def interrupt(self) -> None:
        """Unblock a waiting :meth:`step` if possible."""


class AbortableAdapter(HTTPAdapter):
    """A ``requests`` transport whose connections another thread can shut down (:meth:`abort`).

    ``requests`` cannot interrupt a request in flight, and closing a session only closes its idle
    connections: a long poll held by the service would stay open after the plugin stopped, and the
    service would hand the next batch to that connection, which nobody reads. Every connection this
    adapter opens is tracked; :meth:`abort` shuts them down (the blocked read ends at once, the
    service sees the connection close) and refuses any later request.

    :param on_sent: called when a request was written and its answer is awaited.
    """

    def __init__(self, on_sent: Callable[[], None] | None = None):
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self.aborted = False
        self.on_sent = on_sent or (lambda: None)
        super().__init__(pool_connections=1, pool_maxsize=1)

    # JSON (the untyped alias): requests' own arguments, passed on as they are (typing them means spelling them out)
    def init_poolmanager(self, *args: JSON, **kwargs: JSON) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": self._tracking(HTTPConnectionPool),
            "https": self._tracking(HTTPSConnectionPool),
        }

    def _tracking(self, pool: type) -> type:
        adapter = self

        class Connection(pool.ConnectionCls):  # type: ignore[name-defined]
            def connect(self) -> None:
                if adapter.aborted:
                    raise ConnectionAbortedError("the long poll was stopped")
                super().connect()
                adapter._track(self)

            def getresponse(self, *args: object, **kwargs: object) -> HTTPResponse:
                adapter.on_sent()
                return super().getresponse(*args, **kwargs)

        return type(f"Tracking{pool.__name__}", (pool,), {"ConnectionCls": Connection})

    def _track(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connections.add(connection)
            aborted = self.aborted
        if aborted:  # abort() ran while this connection was being opened
            _shut(connection)

    # JSON (the untyped alias): requests' own arguments (stream, timeout, verify…), passed on as they are
    def send(self, request: requests.PreparedRequest, *args: JSON, **kwargs: JSON) -> requests.Response:
        if self.aborted:
            raise requests.ConnectionError("the long poll was stopped")
        return super().send(request, *args, **kwargs)

    def abort(self) -> None:
        """Shut every connection down (a request in flight fails at once) and refuse new requests."""
        with self._lock:
            self.aborted = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def abortable_http(http: HttpClient, adapter: AbortableAdapter) -> HttpClient:
    """A copy of ``http`` (same base URL, headers, timeouts, retries, error table and redaction) with a
    session of its own on ``adapter``, for the long poll alone."""
    session = requests.Session()
    session.headers = requests.structures.CaseInsensitiveDict(http.session.headers)
    session.proxies, session.verify = dict(http.session.proxies), http.session.verify
    session.cert, session.trust_env, session.auth = http.session.cert, http.session.trust_env, http.session.auth
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    dedicated = copy.copy(http)
    dedicated.session = session
    return dedicated


class LongPollChannel(Channel):
    """``GET /v2/notification/pull`` in a loop; re-polls at once after ``200`` or ``204``.

    The polls go through a connection of their own, which :meth:`stop` shuts down: a poll that the
    service holds is released at once, so that what the service has next stays queued for the next
    poll (after a restart) instead of being handed to a connection nobody reads.

    :param no_wait_first: the first poll uses ``noWait=true`` (answers at once).
    """

    name = "long_poll"
    #: An empty answer that came back faster than this (a server or proxy that does not
    #: hold the poll) is followed by a pause up to this many seconds: never a busy loop.
    MIN_EMPTY_CYCLE = 0.5

    def __init__(
        self,
        client: ChannelClient,
        on_message: Callable[..., object],
        *,
        no_wait_first: bool = True,
        **kwargs: Unpack[ChannelOptions],
    ):
        super().__init__(client, on_message, **kwargs)
        self._first = no_wait_first
        # the channel exists on the service once a poll was sent (Pelion's first poll is held ~30 s)
        self._adapter = AbortableAdapter(on_sent=self.ready.set)
        http = getattr(client, "http", None)
        self._http = abortable_http(http, self._adapter) if isinstance(http, HttpClient) else None

    def _pull(self, no_wait: bool) -> bytes | None:
        if self._http is None:
            return self.client.pull(no_wait=no_wait)
        return self.client.pull(no_wait=no_wait, http=self._http)

    def step(self) -> None:
        no_wait, self._first = self._first, False
        started = time.monotonic()
        try:
            message = self.claim(lambda: self._pull(no_wait))
        except ServiceError:
            if self.stopping.is_set():  # the held poll released by stop(): no outage to report
                logger.debug("mbed long_poll: the held poll was released at stop")
                return
            raise
        if message:
            self.dispatch(message)  # journaled first: the service keeps nothing once it answered
        self.on_up()
        if not message and not no_wait:
            self.stopping.wait(max(0.0, self.MIN_EMPTY_CYCLE - (time.monotonic() - started)))

    def interrupt(self) -> None:
        self._adapter.abort()

    def close(self) -> None:
        if self._http is not None:
            self._http.session.close()


class ReceiverLimits(TypedDict):
    """The limits a :class:`CallbackChannel` gives its :class:`~platypush_ext.mbed.receiver.Receiver`."""

    max_body: int
    timeout: float
    max_connections: int
    max_queue: int


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
    :param max_queue: accepted bodies waiting for this channel at most, as journal ids (``503`` beyond).
    :param load: the journaled body of an id (required with ``record``: only ids wait in memory).
    :param record_refused: journals a note for a body over ``max_body`` (read and discarded, answered
        ``204``, so that the service does not send it again and again); without it, ``413``.
    :param tls: the receiver speaks HTTPS with this context (:func:`~platypush_ext.mbed.receiver.server_tls`).
    """

    name = "callback"
    PATH = "/mbed/callback"

    def __init__(
        self,
        client: ChannelClient,
        on_message: Callable[..., object],
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        recheck: float = 30.0,
        max_body: int = 1 << 20,
        timeout: float = 10.0,
        max_connections: int = 16,
        max_queue: int = 100,
        load: Callable[[int], JSON] | None = None,
        record_refused: Callable[[str], int] | None = None,
        tls: ssl.SSLContext | None = None,
        **kwargs: Unpack[ChannelOptions],
    ):
        super().__init__(client, on_message, **kwargs)
        self.tls = tls
        if self.record is not None and load is None:
            raise ValueError("a callback channel that journals (record) needs load (the body of a journal id)")
        self.load, self.record_refused = load, record_refused
        self.limits: ReceiverLimits = {
            "max_body": int(max_body),
            "timeout": float(timeout),
            "max_connections": int(max_connections),
            "max_queue": int(max_queue),
        }
        self.secret = secrets.token_urlsafe(24)
        client.add_secret(self.secret)
        self.bind, self.port, self.public_url, self.recheck = bind, port, public_url, recheck
        self.receiver: Receiver | None = None
        self._registered_url: str | None = None
        self._since_check = 0.0

    @property
    def url(self) -> str:
        if self.public_url:
            return self.public_url
        assert self.receiver is not None
        host, port = cast("tuple[str, int]", self.receiver.server_address[:2])
        return f"{'https' if self.tls else 'http'}://{host}:{port}{self.PATH}"

    def _start_receiver(self) -> None:
        if self.receiver is not None:
            return
        try:
            self.receiver = Receiver(
                (self.bind, self.port),
                self.PATH,
                self.secret,
                record=self.record,
                record_refused=self.record_refused,
                tls=self.tls,
                **self.limits,
            )
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
        record_id = self.receiver.take(timeout=0.5)
        if record_id is None:
            self._since_check += 0.5
            return
        if self.load is None:  # no journal: the receiver kept the body
            self.dispatch(self.receiver.load(record_id))
            return
        body = self.load(record_id)
        if body is None:  # dealt with meanwhile: dropped or delivered by a post that came first
            logger.debug("mbed callback: journal entry %d was dealt with already", record_id)
            return
        self.dispatch(body, record_id)

    def interrupt(self) -> None:
        receiver = self.receiver
        if receiver is not None:
            receiver.close_connections()  # at once: what the service delivers from now on is for the next run
            receiver.inbox.put(None)

    def close(self) -> None:
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.shutdown()
            receiver.server_close()


def _reason(close: bytes) -> str:
    """The reason of a close frame's payload (after its 2-byte code), one short line."""
    return one_line(close[2:].decode("utf-8", "replace"), 200) or "no reason given"


def raw_text_frames(ws: BoundedWebSocket) -> BoundedWebSocket:
    """``ws`` (a ``websocket-client`` connection) handing text frames over as their bytes, unchecked:
    the library would refuse a frame that is not UTF-8 with an exception that quotes it whole and
    ends the connection; the receiver journals it and drops it instead, and the connection goes on.

    :param ws: the connection.
    """
    frames = getattr(ws, "cont_frame", None)
    if frames is not None:
        frames.skip_utf8_validation = True
    return ws


class WebSocketChannel(Channel):
    """The Pelion / Izuma WebSocket channel: registered with ``PUT
    /v2/notification/websocket``, then each text frame is a NotificationMessage.

    The channel is registered once; a reconnect only opens the socket again. When the
    service closes it with 1001 (another socket, the channel deleted, a shutdown) or
    1011 (no channel registered), the next attempt asks ``GET /v2/notification/websocket``
    and registers again only if that answers that the channel is missing. A connection
    counts as a success (backoff reset, ``on_up`` after an outage) once it brought a
    message or stayed up :attr:`SETTLE` seconds (see :class:`~platypush_ext.core.listening.Listener`);
    a message over ``max_message`` bytes drops the connection.

    :param max_message: the longest message accepted (bytes).
    """

    name = "websocket"
    #: A connection that stayed up this long (or brought a message) ends an outage (seconds).
    SETTLE = 30.0
    #: Close codes after which the channel may be gone: check it before reconnecting.
    CHECK_AFTER = (1001, 1011)
    #: The close code of Pelion / Izuma for a missing or refused access key (policy violation).
    KEY_REFUSED = 1008
    #: The most seconds a close waits for the service's close frame (what comes before is delivered).
    DRAIN_TIMEOUT = 0.5

    def __init__(
        self,
        client: ChannelClient,
        on_message: Callable[..., object],
        *,
        max_message: int = MAX_MESSAGE,
        **kwargs: Unpack[ChannelOptions],
    ):
        super().__init__(client, on_message, **kwargs)
        self.ws: BoundedWebSocket | None = None
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
            auth_backoff=self.auth_backoff,
        )
        try:
            self._listener.run()
        finally:
            self.close()

    def step(self) -> None:
        import websocket

        ws = self.ws if self.ws is not None else self._open()
        try:
            opcode, frame = ws.recv_data_frame()
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
            if code == self.KEY_REFUSED:  # Pelion / Izuma: a revoked key is not an outage
                raise AuthError(f"the service closed the notification WebSocket (code {code}: {_reason(frame.data)})")
            raise ServiceConnectionError(f"the service closed the notification WebSocket (code {code})")
        if self._listener is not None:
            self._listener.delivered()
        self.dispatch(frame.data)  # as received: a frame that is not UTF-8 is journaled, then dropped

    def _open(self) -> BoundedWebSocket:
        """Register the channel unless it is known to exist, then connect; the connection."""
        if self._check and self._registered:
            self._registered = self.client.get_websocket() is not None
        self._check = False
        if not self._registered:
            self.claim(self.client.register_websocket)
            self._registered = True
        self.ws = ws = raw_text_frames(self.client.connect_websocket(max_message=self.max_message))
        ws.settimeout(0.5)
        if self._listener is not None:
            self._listener.connected()
        else:
            self.on_up()
        return ws

    def _drop(self, abort: bool = False) -> None:
        ws, self.ws = self.ws, None
        if ws is None:
            return
        try:
            if not abort:
                self._drain(ws)
        except Exception:
            logger.debug("mbed websocket: close failed", exc_info=True)
        finally:
            ws.shutdown()

    def _drain(self, ws: BoundedWebSocket) -> None:
        """Close as the protocol says: send our close frame, then read what the service sent before
        it saw it (dispatched as usual: journaled, not lost) until its close frame, at most
        :attr:`DRAIN_TIMEOUT` seconds."""
        import websocket

        ws.send_close()
        deadline = time.monotonic() + self.DRAIN_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            ws.settimeout(left)
            try:
                opcode, frame = ws.recv_data_frame()
            except (websocket.WebSocketException, OSError, ValueError):
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return
            self.dispatch(frame.data)

    def close(self) -> None:
        self._drop()
