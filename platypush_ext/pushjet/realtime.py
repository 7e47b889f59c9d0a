"""The realtime path of a Pushjet device: the WebSocket connector (``protocols/pushjet.md`` §8).

A :class:`RealtimeChannel` is one device's connection: it sends the device's
uuid as the first text frame, waits for ``{"status": "ok"}``, then hands every
``{"message": …}`` it receives (the replay of the unread messages, then the live
pushes) to its caller. Its :meth:`~RealtimeChannel.step` makes one bounded
exchange, for a :class:`~platypush_ext.core.listening.Listener`; the protocol has no
keep-alive, so a connection silent for ``ping_interval`` seconds gets a
WebSocket ping and is given up when nothing arrives ``ping_timeout`` seconds later
(a stalled connector). The client side is the ``websocket-client`` library,
bounded (:mod:`platypush_ext.core.wsclient`): a message beyond ``max_message`` bytes
drops the connection.

A message has no id. :class:`CrossPathFilter` recognises one that arrived both
pushed and polled (see its rule), so that it posts a single event.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

import websocket

from ..core import untrusted
from ..core.errors import InvalidArgumentError, ProtocolError, ServiceError, ServiceTLSError
from ..core.text import one_line
from ..core.untrusted import JSON
from ..core.wsclient import MAX_MESSAGE, MessageTooLarge, handshake_failure
from ..core.wsclient import connect as ws_connect
from .client import Message, check_uuid

logger = logging.getLogger("platypush_ext.pushjet")

REALTIME, POLLING = "realtime", "polling"


class RealtimeError(ServiceError):
    """The connector is unreachable, refused the device, or the connection broke."""


class RealtimeTLSError(RealtimeError, ServiceTLSError):
    """The connector's certificate was not trusted, or the TLS handshake failed."""


def check_realtime_url(url: JSON) -> str:
    """A connector URL: ``ws://`` or ``wss://``, a host, no credentials or query.

    :param url: e.g. ``wss://pushjet.example.org/ws``.
    """
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise InvalidArgumentError(
            f"invalid realtime_url {url!r}: expected ws://host:port or wss://host/path, e.g. ws://127.0.0.1:8181"
        )
    if parts.username or parts.password or parts.query:
        raise InvalidArgumentError("realtime_url must not carry credentials or a query string")
    return url


class RealtimeChannel:
    """One device's connection to the Pushjet connector.

    :param url: the connector, e.g. ``ws://127.0.0.1:8181``.
    :param device: the device uuid.
    :param deliver: called (in the channel's thread) with each message frame as received (text whose
        bytes that are not UTF-8 stay as they were, see :func:`~platypush_ext.core.untrusted.received`) and the message object in it
        (``None`` when the frame cannot be read): also a frame that cannot be read, which may have
        been a message.
    :param on_ready: called when the connector accepted the device (``{"status": "ok"}``).
    :param connect_timeout: seconds to connect and to get the connector's first answer.
    :param ping_interval: seconds of silence before a ping.
    :param ping_timeout: seconds to wait for any frame after a ping.
    :param max_message: the longest message accepted (bytes); a longer one drops the connection.
    :param options: further options of the connection (TLS, proxy, basic auth, headers:
        :meth:`~platypush_ext.core.transport.Transport.ws_options`).
    """

    #: The most seconds a close waits for what the connector pushed before it saw our close frame.
    DRAIN_TIMEOUT = 0.5

    def __init__(
        self,
        url: str,
        device: str,
        deliver: Callable[[str, JSON], None],
        on_ready: Callable[[], None],
        *,
        connect_timeout: float = 5.0,
        ping_interval: float = 30.0,
        ping_timeout: float = 10.0,
        max_message: int = MAX_MESSAGE,
        options: dict[str, object] | None = None,
    ):
        self.url, self.device = check_realtime_url(url), check_uuid(device)
        self.options = dict(options or {})
        self.deliver, self.on_ready = deliver, on_ready
        self.connect_timeout, self.ping_interval, self.ping_timeout = connect_timeout, ping_interval, ping_timeout
        self.max_message = max_message
        #: set by :meth:`close`: the loop running :meth:`step` ends
        self.stopping = threading.Event()
        #: whether the connector accepted the device on the open connection
        self.up = False
        self._ws: websocket.WebSocket | None = None
        self._pinged = False
        self._closed = False
        self._lock = threading.Lock()

    def step(self) -> float:
        """Connect, or receive one frame (bounded by the ping timers); raises :class:`RealtimeError`.
        Once :meth:`close` sent our close frame, receives what the connector sent before it saw it,
        until its close frame (at most :attr:`DRAIN_TIMEOUT` seconds)."""
        ws = self._ws
        if ws is None:
            if not self._closed:
                self._open()
            return 0.0
        while True:
            wait = self._receive(ws)
            if not self._closed or self._ws is None:
                return wait

    def _receive(self, ws: websocket.WebSocket) -> float:
        """Receive and handle one frame."""
        try:
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                if self._closed:
                    return self._lost("closed")
                return self._keep_alive(ws)  # its ping may fail too: handled below
        except MessageTooLarge as exc:
            return self._lost(f"dropped the connection: {one_line(exc)}")
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            return self._lost(f"connection lost ({one_line(exc) or type(exc).__name__})")
        self._pinged = False
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return self._lost("the connector closed the connection")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            self._handle(frame.data)
        ws.settimeout(self.ping_interval if self.up else self.connect_timeout)
        return 0.0

    def _open(self) -> None:
        try:
            ws = ws_connect(self.url, self.connect_timeout, max_message=self.max_message, **self.options)
            frames = getattr(ws, "cont_frame", None)
            if frames is not None:  # a frame that is not UTF-8 is delivered as received (and dropped), not fatal
                frames.skip_utf8_validation = True
            ws.send(self.device)  # the first text frame: who we are
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            endpoint = f"GET {urlsplit(self.url).path or '/'}"  # refused: e.g. a proxy's basic auth
            failure = handshake_failure(exc, self.url, endpoint, f"Pushjet connector {self.url}", RealtimeTLSError)
            if failure is not None:
                raise failure from None
            raise RealtimeError(f"cannot reach the Pushjet connector {self.url} ({one_line(exc)})") from None
        with self._lock:
            if self._closed:
                ws.close(timeout=0)
                return
            self._ws, self._pinged = ws, False

    def _keep_alive(self, ws: websocket.WebSocket) -> float:
        """Silence: ping once, and give up when the ping got no answer either."""
        if self._pinged or not self.up:
            waited = self.ping_timeout if self.up else self.connect_timeout
            return self._lost(f"the connector stalled (no answer in {waited:g} s)")
        ws.ping()
        self._pinged = True
        ws.settimeout(self.ping_timeout)
        return 0.0

    def _handle(self, data: bytes) -> None:
        """One text frame: the status, a message, a subscription change or an error. A message frame,
        and a frame that cannot be read (it may have been one), go to ``deliver`` as received: the
        plugin journals it, then parses it (:func:`message_of_frame`) or drops it."""
        try:
            item = untrusted.loads(data, "a frame of the connector")
        except ProtocolError:
            item = None
        if not isinstance(item, dict) or "message" in item:
            self.deliver(untrusted.received(data), item.get("message") if isinstance(item, dict) else None)
        elif item.get("status") == "ok" and not self.up:
            self.up = True
            self.on_ready()
        elif isinstance(item.get("error"), dict):
            error = item["error"]
            if error.get("id") == 1:
                self._lost(f"the connector refused the device uuid ({one_line(error.get('message'))})")
            logger.warning("pushjet: the connector answered an error: %s", one_line(error.get("message")))
        else:
            logger.debug("pushjet: connector item %s", one_line(data[:200], 200))  # a subscription change

    def _lost(self, reason: str) -> float:
        """Close the connection; raise :class:`RealtimeError` unless the channel is closing."""
        with self._lock:
            ws, self._ws, self.up = self._ws, None, False
        if ws is not None:
            ws.shutdown()
        if self._closed:
            return 0.0
        raise RealtimeError(f"Pushjet connector {self.url}: {reason}")

    def close(self) -> None:
        """Stop (from any thread): our close frame is sent at once, so that the connector pushes
        nothing more; what it pushed before is still received (journaled, not lost) by the
        channel's thread until the connector's close frame, and the connection is cut after
        :attr:`DRAIN_TIMEOUT` seconds at the latest."""
        with self._lock:
            self._closed, ws, self.up = True, self._ws, False
        self.stopping.set()
        if ws is None:
            return
        try:
            ws.send_close()
        except (websocket.WebSocketException, OSError, ValueError):
            ws.abort()
            return
        cut = threading.Timer(self.DRAIN_TIMEOUT, ws.abort)  # the connector sees the end now, not at exit
        cut.daemon = True
        cut.start()


def message_of_frame(text: str) -> Message:
    """The message of a connector frame ``{"message": {...}}`` kept by :func:`~platypush_ext.core.untrusted.received` (or of an
    answer of ``GET /message`` that could not be read: refused).

    :param text: the frame.
    :raises ProtocolError: one line naming what is wrong (not UTF-8, not JSON, not a message…).
    """
    frame = untrusted.mapping(untrusted.loads_received(text), "the received text")
    return Message.from_json(untrusted.field(frame, "message"))


class CrossPathFilter:
    """Recognises a message that arrived by both paths, pushed and polled.

    Pushjet messages have no id, so a message's identity is its device, its
    service's public key, its timestamp (seconds), text, title, link and level.
    A message is a duplicate when a message of the same identity arrived by the
    *other* path less than ``window`` seconds before and was not matched yet;
    each arrival matches at most one. Two identical messages sent within the
    same second both arrive (by one path they are never merged); they would
    only be merged if one came pushed and the other polled.

    :param window: how long an arrival can match one by the other path (seconds).
    :param limit: at most this many arrivals remembered.
    """

    def __init__(self, window: float = 600.0, limit: int = 10_000):
        self.window, self.limit = window, limit
        self._seen: dict[tuple[str, str], collections.deque[float]] = {}
        self._order: collections.deque[tuple[float, tuple[str, str]]] = collections.deque()
        self.duplicates = 0

    @staticmethod
    def identity(device: str, payload: JSON) -> str | None:
        """The identity of a message object (``None`` when it is not one, or cannot be told): a
        digest, so that a message of megabytes is not kept whole for the window.

        :param device: the device that received it.
        :param payload: the message object.
        """
        if not isinstance(payload, dict) or not isinstance(payload.get("service"), dict):
            return None
        fields = [payload.get(k) for k in ("timestamp", "message", "title", "link", "level")]
        try:
            text = json.dumps([device, payload["service"].get("public"), *fields])
        except (TypeError, ValueError, RecursionError):  # noqa: BLE001 - unusual data: never merged
            return None
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def admit(self, path: str, device: str, payloads: list[JSON]) -> list[JSON]:
        """The payloads that are not duplicates of an arrival by the other path.

        :param path: ``realtime`` or ``polling``.
        :param device: the device that received them.
        :param payloads: message objects.
        """
        now = time.monotonic()
        self._expire(now)
        other = POLLING if path == REALTIME else REALTIME
        kept = []
        for payload in payloads:
            key = self.identity(device, payload)
            if key is not None and self._seen.get((key, other)):
                self._seen[(key, other)].popleft()
                self.duplicates += 1
                continue
            if key is not None:
                self._seen.setdefault((key, path), collections.deque()).append(now)
                self._order.append((now, (key, path)))
            kept.append(payload)
        return kept

    def _expire(self, now: float) -> None:
        while self._order and (self._order[0][0] < now - self.window or len(self._order) > self.limit):
            at, key = self._order.popleft()
            arrivals = self._seen.get(key)
            if arrivals and arrivals[0] == at:
                arrivals.popleft()
            if not arrivals:
                self._seen.pop(key, None)
