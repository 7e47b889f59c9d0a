"""WebSocket client connections with bounds, for the realtime channels (``websocket-client``).

``websocket-client`` reads a frame of whatever length its header announces (up to
2**63 bytes), joins the fragments of a message without limit (and in quadratic time),
and reads the handshake's header lines with a timeout per byte, not a deadline: a
hostile or broken server could make the plugin hold any amount of memory. A
connection from :func:`connect` refuses a message (one frame, or the fragments of one)
longer than ``max_message`` bytes with :class:`MessageTooLarge` — for a frame, from
its header, before its payload is read — and gives its handshake ``timeout`` seconds
in all; after a refusal the connection is unusable (abort it: a closing handshake would
read on). The Pushjet realtime channel and the mbed WebSocket channel connect with it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit

import websocket
from websocket._abnf import ABNF, continuous_frame, frame_buffer

from .errors import AuthError, ServiceError, ServiceTLSError
from .transport import tls_error_text, tls_failure
from .untrusted import JSON

__all__ = [
    "MAX_FRAGMENTS",
    "MAX_MESSAGE",
    "BoundedWebSocket",
    "MessageTooLarge",
    "connect",
    "handshake_failure",
    "handshake_refusal",
]

#: The longest message accepted by default (bytes): far above a Pushjet message
#: (at most 64 KiB of text) or a batch of mbed notifications.
MAX_MESSAGE = 16 << 20
#: The most fragments of one message.
MAX_FRAGMENTS = 4096


class MessageTooLarge(websocket.WebSocketPayloadException):
    """A message beyond the connection's limits (the connection must be dropped)."""


class _Frames(frame_buffer):
    """Frames whose announced length is checked before the payload is read."""

    limit = MAX_MESSAGE
    refused: str | None = None  # once a frame was refused, the stream is unusable: every read fails

    def recv_frame(self) -> ABNF:
        if self.refused:
            raise MessageTooLarge(self.refused)
        return super().recv_frame()

    def recv_length(self) -> None:
        super().recv_length()
        if self.length is not None and self.length > self.limit:
            self.refused = f"a frame of {self.length:,} bytes announced (at most {self.limit:,})"
            raise MessageTooLarge(self.refused)


class _Message(continuous_frame):
    """The fragments of a message, joined in place, within the size and count limits."""

    limit, fragments_limit = MAX_MESSAGE, MAX_FRAGMENTS

    def __init__(self, fire_cont_frame: bool, skip_utf8_validation: bool) -> None:
        super().__init__(fire_cont_frame, skip_utf8_validation)
        self.fragments = 0

    def add(self, frame: ABNF) -> None:
        if self.cont_data and not isinstance(self.cont_data[1], bytearray):
            self.cont_data[1] = bytearray(self.cont_data[1])  # += then extends in place
        super().add(frame)
        self.fragments = 0 if frame.fin else self.fragments + 1
        size = len(self.cont_data[1]) if self.cont_data else 0
        if size > self.limit or self.fragments > self.fragments_limit:
            self.cont_data, self.recving_frames, self.fragments = None, None, 0
            raise MessageTooLarge(
                f"a fragmented message beyond {self.limit:,} bytes or {self.fragments_limit:,} fragments"
            )

    def extract(self, frame: ABNF) -> tuple:
        opcode, frame = super().extract(frame)
        if isinstance(frame.data, bytearray):
            frame.data = bytes(frame.data)
        return opcode, frame


class BoundedWebSocket(websocket.WebSocket):
    """A :class:`websocket.WebSocket` whose messages are at most ``max_message`` bytes.

    :param max_message: the longest message (bytes).
    :param options: as :class:`websocket.WebSocket`'s.
    """

    # Not JSON (``sslopt`` holds an SSLContext): forwarded as they are to websocket.WebSocket's typed
    # parameters, which a precise type (``object``) would need code to narrow: JSON, the bundle's "any".
    def __init__(self, *args: JSON, max_message: int = MAX_MESSAGE, **options: JSON):
        super().__init__(*args, **options)
        skip_utf8 = bool(options.get("skip_utf8_validation", False))
        self.frame_buffer = _Frames(self._recv, skip_utf8)
        self.cont_frame = _Message(bool(options.get("fire_cont_frame", False)), skip_utf8)
        self.frame_buffer.limit = self.cont_frame.limit = int(max_message)


def connect(url: str, timeout: float, *, max_message: int = MAX_MESSAGE, **options: object) -> BoundedWebSocket:
    """Open a :class:`BoundedWebSocket` to ``url``; the handshake ends within ``timeout`` seconds.

    :param url: ``ws://`` or ``wss://``.
    :param timeout: seconds for the whole handshake, then for each receive (until changed).
    :param max_message: the longest message accepted (bytes).
    :param options: ``header``, ``subprotocols``, ``sslopt``, the proxy's… as ``websocket.create_connection``'s
        (:meth:`~platypush_ext.core.transport.Transport.ws_options` makes those of a client's settings).
    :raises websocket.WebSocketException: or :class:`OSError`, when it fails.
    """
    ws = BoundedWebSocket(
        max_message=max_message,
        enable_multithread=options.pop("enable_multithread", True),
        sslopt=options.pop("sslopt", None),
    )
    ws.settimeout(timeout)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = ws.sock  # (ws.abort() acts only once the handshake is done)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # a handshake still reading header lines ends at once

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        ws.connect(url, **options)
    except (websocket.WebSocketException, OSError, ValueError):
        if expired.is_set():
            raise websocket.WebSocketTimeoutException(f"no complete handshake within {timeout:g} s") from None
        raise
    finally:
        timer.cancel()
    if expired.is_set():
        ws.abort()
        raise websocket.WebSocketTimeoutException(f"no complete handshake within {timeout:g} s")
    return ws


def handshake_refusal(exc: BaseException, endpoint: str) -> AuthError | None:
    """The :class:`AuthError` of a WebSocket handshake the server answered 401 or 403 (the
    credentials refused: not an outage), else ``None``.

    :param exc: what :func:`connect` raised.
    :param endpoint: how the error names the request, e.g. ``GET /v2/notification/websocket-connect``.
    """
    status = getattr(exc, "status_code", None)
    if status not in (401, 403):
        return None
    return AuthError(f"{endpoint}: HTTP {status}: the credentials were refused", status=status, endpoint=endpoint)


def handshake_failure(
    exc: BaseException,
    url: str,
    endpoint: str,
    tls_name: str | None = None,
    tls_error: type[ServiceTLSError] = ServiceTLSError,
) -> ServiceError | None:
    """What a WebSocket connection that failed says of the server, when it says more than an outage: a
    refused certificate or TLS handshake (a ``tls_error``, one line naming the host), refused
    credentials (:func:`handshake_refusal`), else ``None``.

    :param exc: what :func:`connect` raised.
    :param url: the WebSocket URL.
    :param endpoint: how a refusal names the request, e.g. ``GET /v2/notification/websocket-connect``.
    :param tls_name: how a TLS error names it (default: ``endpoint``).
    :param tls_error: the TLS error's class.
    """
    tls = tls_failure(exc)
    if tls is not None:
        return tls_error(f"{tls_name or endpoint}: {tls_error_text(urlsplit(url).netloc, tls)}")
    return handshake_refusal(exc, endpoint)
