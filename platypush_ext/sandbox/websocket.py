"""The server side of a minimal WebSocket (RFC 6455), for the sandbox servers.

The mbed notification channel and the Pushjet connector take a route's
connection over with :func:`accept_upgrade`, then exchange frames with
:func:`ws_frame` / :func:`ws_read` and end with :func:`ws_close`. No
extensions, no fragmentation on the way out; client frames are unmasked.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import struct

from .core import Request

logger = logging.getLogger("platypush_ext.sandbox")

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def is_upgrade(request: Request) -> bool:
    """Whether ``request`` asks for a WebSocket upgrade (with a key).

    :param request: the HTTP request.
    """
    return request.headers.get("Upgrade", "").lower() == "websocket" and bool(request.headers.get("Sec-WebSocket-Key"))


def accept_upgrade(request: Request, protocol: str | None = None) -> socket.socket:
    """Answer ``101 Switching Protocols`` and return the connection's socket (the route
    handler then returns ``None``: it took the connection over).

    :param request: an upgrade request (see :func:`is_upgrade`).
    :param protocol: the ``Sec-WebSocket-Protocol`` to answer, if any.
    """
    key = request.headers.get("Sec-WebSocket-Key", "")
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    handler = request.handler
    handler.send_response(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    if protocol:
        handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.wfile.flush()
    return handler.connection


def ws_frame(payload: bytes, opcode: int) -> bytes:
    """One unmasked, unfragmented server frame.

    :param payload: its data.
    :param opcode: e.g. :data:`TEXT`, :data:`CLOSE`.
    """
    header = bytes([0x80 | opcode])
    length = len(payload)
    if length < 126:
        header += bytes([length])
    elif length < 1 << 16:
        header += bytes([126]) + struct.pack("!H", length)
    else:
        header += bytes([127]) + struct.pack("!Q", length)
    return header + payload


def recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or ``None`` when the connection ended first.

    :param sock: the connection.
    :param size: how many bytes.
    """
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def ws_read(sock: socket.socket) -> tuple[int | None, bytes]:
    """One client frame (masked): ``(opcode, payload)``, ``(None, b"")`` when the socket closed.

    :param sock: the connection.
    """
    head = recv_exact(sock, 2)
    if head is None:
        return None, b""
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        raw = recv_exact(sock, 2)
        length = struct.unpack("!H", raw)[0] if raw else 0
    elif length == 127:
        raw = recv_exact(sock, 8)
        length = struct.unpack("!Q", raw)[0] if raw else 0
    mask = recv_exact(sock, 4) if head[1] & 0x80 else b"\0\0\0\0"
    data = recv_exact(sock, length) if length else b""
    if mask is None or data is None:
        return None, b""
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def ws_close(sock: socket.socket, code: int, reason: str) -> None:
    """Send a close frame (a connection already gone is no error).

    :param sock: the connection.
    :param code: the close code, e.g. 1000 or 1001.
    :param reason: a short text.
    """
    try:
        sock.sendall(ws_frame(struct.pack("!H", code) + reason.encode(), CLOSE))
    except OSError:
        logger.debug("sandbox: WebSocket already closed")
