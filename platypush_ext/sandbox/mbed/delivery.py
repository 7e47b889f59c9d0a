"""How the mbed sandbox delivers what devices do: the notification queue and its one channel — a
long poll, callback deliveries, a WebSocket — and raw messages sent exactly as given."""

from __future__ import annotations

import json
import select
import socket
import time

import requests

from ...core.backoff import Backoff
from ...core.untrusted import JSON, JSONObject
from ..core import Request, Response, json_response
from ..websocket import accept_upgrade, is_upgrade, ws_close, ws_frame, ws_read
from .base import Exchange, MbedBase, flag, pelion_error

#: The kind under which :meth:`MbedDelivery.enqueue_raw` queues a whole message, sent as it is.
RAW = "<raw message>"


def _body(message: JSONObject | bytes) -> bytes:
    """A NotificationMessage's bytes on the wire (a raw one as it is)."""
    return message if isinstance(message, bytes) else json.dumps(message).encode()


def _readable(sock: socket.socket) -> bool:
    """Whether the client sent something (data, a close, an EOF or a reset) that waits to be read."""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # a closed socket (fileno -1)
        return True


def client_gone(sock: socket.socket) -> bool:
    """Whether the client closed or reset the connection (an EOF waits to be read), without reading.

    What an event-driven server learns from its event loop before it writes to a connection; the
    sandbox checks it while it holds a long poll and right before it takes a batch for one, so that
    a batch meant for a client that went away stays queued for the next poll."""
    if not _readable(sock):
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:  # reset, or closed here
        return True


class MbedDelivery(MbedBase):
    """The notification queue and the channel that delivers it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.channel: str | None = None  # "long_poll" | "callback" | "websocket"
        self.callback_verify: bool | str = getattr(self, "callback_verify", True)  # (MbedServer sets it first)
        self.callback: JSONObject | None = None
        self.callback_deliveries: list[int] = []  # statuses answered by the receiver
        self.subscriptions: set[tuple[str, str]] = set()  # (endpoint, path) whose changes are notified
        self._events: list[tuple[str, JSON | bytes]] = []  # queued (kind, element), in order
        self._polling: object = False  # the token of the poll being held
        self._poll_socket: socket.socket | None = None  # its connection
        self._channel_generation = 0  # changes whenever the channel is replaced or removed
        self._ws_generation = 0
        self._ws_connected = False
        super().__init__(host, port)

    # -- the queue -------------------------------------------------------------

    def enqueue(self, kind: str, element: JSON) -> None:
        """Queue one raw element of a NotificationMessage (anything, even malformed)."""
        with self._cond:
            self._events.append((kind, element))
            self._cond.notify_all()

    def enqueue_raw(self, body: bytes) -> None:
        """Queue a whole NotificationMessage as bytes, sent exactly as given (even when it is not JSON,
        not UTF-8 or huge): the next pull answers it, the callback ``PUT``s it, the WebSocket pushes it
        as one text frame. It is never merged with other queued elements.

        :param body: the message's bytes.
        """
        with self._cond:
            self._events.append((RAW, bytes(body)))
            self._cond.notify_all()

    def queued(self) -> int:
        with self._cond:
            return len(self._events)

    def _take_batch(self, limit: int = 100000) -> dict[str, list[JSON]] | bytes | None:
        """Pop queued events into one NotificationMessage (``None`` if none); a raw message
        (:meth:`enqueue_raw`) is taken alone, as its bytes."""
        with self._cond:
            if not self._events:
                return None
            if self._events[0][0] == RAW:
                self._cond.notify_all()
                return self._events.pop(0)[1]
            end = next((i for i, (kind, _) in enumerate(self._events[:limit]) if kind == RAW), limit)
            taken, self._events = self._events[:end], self._events[end:]
            self._cond.notify_all()
        message: dict[str, list[JSON]] = {}
        for kind, element in taken:
            if self.pelion and isinstance(element, dict) and isinstance(element.get("max-age"), int):
                element = {**element, "max-age": str(element["max-age"])}  # a string in Pelion's schema
            message.setdefault(kind, []).append(element)
        return message

    def _requeue(self, message: dict[str, list[JSON]] | bytes) -> None:
        with self._cond:
            if isinstance(message, bytes):
                self._events.insert(0, (RAW, message))
            else:
                self._events[:0] = [(k, e) for k, elements in message.items() for e in elements]

    def _has_channel(self) -> bool:
        return self.channel is not None

    def _set_channel(self, kind: str | None) -> None:
        """The channel becomes ``kind``: a replaced or removed one gets nothing more."""
        with self._cond:
            if self.channel != kind:
                self.channel = kind
                self._channel_generation += 1
                self._polling = False  # a poll of the replaced channel no longer blocks the next one
                self._cond.notify_all()

    def _other_channel(self, kind: str) -> Response | None:
        """Pelion mode: ``400`` while a channel of another type exists (one type at a time)."""
        if self.pelion and self.channel not in (None, kind):
            return self._fail(f"Another channel type exists ({self.channel}); delete it first", 400)
        return None

    def _record_message(self, channel: str, message: JSONObject | bytes) -> None:
        """With ``record``: a NotificationMessage pushed on a callback or WebSocket, as ``MESSAGE <channel>``."""
        if self.exchanges is not None:
            body = _body(message)
            with self.lock:
                self.exchanges.append(Exchange("MESSAGE", channel, {}, "", b"", 0, "application/json", body))

    # -- callback --------------------------------------------------------------

    def _callback_loop(self) -> None:
        session = requests.Session()
        backoff = Backoff(base=0.1, cap=self.callback_retry_max, jitter=False)
        while not self._stopping.is_set():
            with self._cond:
                while not self._stopping.is_set() and not (self.channel == "callback" and self._events):
                    self._cond.wait(0.5)
                if self._stopping.is_set():
                    return
                target = dict(self.callback or {})
                message = self._take_batch()  # under the lock: never for a channel replaced meanwhile
            if not message:
                continue
            self._record_message("callback", message)
            try:
                answer = session.put(
                    target["url"],
                    data=_body(message),
                    timeout=(2, 5),
                    headers={"Content-Type": "application/json", **target.get("headers", {})},
                    verify=self.callback_verify,
                )
                status = answer.status_code
            except requests.RequestException:
                status = 0
            self.callback_deliveries.append(status)
            if status in (200, 204):
                backoff.reset()
                continue
            self._requeue(message)
            self._stopping.wait(backoff.next_delay())

    def _put_callback(self, request: Request) -> Response:
        try:
            spec = request.json()
            url, headers = spec["url"], spec.get("headers") or {}
            if not isinstance(url, str) or not isinstance(headers, dict):
                raise TypeError("url must be a string, headers an object")
        except (ValueError, TypeError, KeyError):
            return self._fail("Malformed content", 400)
        with self._cond:
            refused = self._other_channel("callback")
        if refused is not None:
            return refused
        if len(url) + sum(len(str(v)) for v in headers.values()) > 400:
            return self._fail("Callback URL and headers are too long (400 characters at most)", 400)
        try:  # the test PUT, with an empty body
            headers = {str(k): str(v) for k, v in headers.items()}
            answer = requests.put(url, data=b"", headers=headers, timeout=(2, 5), verify=self.callback_verify)
            if answer.status_code not in (200, 204):
                return self._fail(f"Callback URL answered {answer.status_code} to the test request", 400)
        except requests.RequestException:
            return self._fail("Callback URL is not reachable", 400)
        with self._cond:
            refused = self._other_channel("callback")  # created while the test PUT ran
            if refused is not None:
                return refused
            self.callback = {"url": url, "headers": {str(k): str(v) for k, v in headers.items()}}
            self._set_channel("callback")
        return Response(204)

    def _get_callback(self, request: Request) -> Response:
        with self._cond:
            if self.callback is None:
                return self._fail("No callback URL", 404)
            return json_response(self.callback, compact=False)

    def _delete_callback(self, request: Request) -> Response:
        with self._cond:
            if self.callback is None:
                return self._fail("No callback URL", 404)
            self.callback = None
            self._set_channel(None)
            if not self.pelion:  # the Connector also removed every subscription
                self.subscriptions.clear()
        return Response(204)

    def _get_channel(self, request: Request) -> Response:
        names = {"long_poll": "LONG_POLLING", "callback": "CALLBACK", "websocket": "WEB_SOCKET"}
        with self._cond:
            if self.channel is None:
                return pelion_error(404, "not_found", "No notification channel")
            return json_response({"delivery_mechanism": names[self.channel]})

    # -- long poll -------------------------------------------------------------

    def _pull(self, request: Request) -> Response:
        sock: socket.socket = request.handler.connection
        with self._cond:
            if self.channel in ("callback", "websocket"):
                return self._fail(f"Another channel type exists ({self.channel})", 400)
            holder = self._poll_socket
            if self._polling and not (holder is not None and client_gone(holder)):
                return self._fail("A long-poll request is already open", 409)
            self._set_channel("long_poll")
            token = object()  # a held poll whose client went away is replaced by this one
            self._polling, self._poll_socket = token, sock
            self._cond.notify_all()
            try:
                message = self._hold(sock, token, wait=not flag(request.query.get("noWait")))
            finally:
                if self._polling is token:
                    self._polling = False
        if message is None:
            return Response(204)
        if isinstance(message, bytes):
            return Response(200, message, {"Content-Type": "application/json"})
        return json_response(message, compact=False)

    def _hold(self, sock: socket.socket, token: object, wait: bool) -> dict[str, list[JSON]] | bytes | None:
        """Hold a poll (under the lock) until events come, ``pull_timeout`` passes, the channel is
        replaced, another poll replaces it or its client goes away; then the batch, or ``None``."""
        generation, deadline = self._channel_generation, time.monotonic() + self.pull_timeout
        while wait and not self._events and not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._channel_generation != generation or self._polling is not token:
                break
            if client_gone(sock):
                return None
            self._cond.wait(min(left, 0.1))
        # a poll whose channel was replaced or deleted while it waited, or whose client went away, takes nothing
        if self._channel_generation != generation or self._polling is not token or client_gone(sock):
            return None
        return self._take_batch()

    def _delete_pull(self, request: Request) -> Response:
        with self._cond:
            if self.channel != "long_poll":
                return json_response({"status": "ALREADY_DELETED"})
            self._set_channel(None)
        return json_response({"status": "REMOVED"})

    # -- WebSocket -------------------------------------------------------------

    def _ws_status(self) -> JSONObject:
        return {
            # the 2019-11 file's name (the 2019-06 one had queueSize, kept by the Connector mode)
            ("queue_size" if self.pelion else "queueSize"): len(self._events) if self.channel == "websocket" else 0,
            "status": "connected" if self._ws_generation and self._ws_connected else "disconnected",
        }

    def _put_websocket(self, request: Request) -> Response:
        with self._cond:
            if self.channel == "websocket":
                return json_response(self._ws_status(), 200)
            if self.channel == "callback" or (self.pelion and self.channel is not None):
                return pelion_error(400, "validation_error", f"Another channel type exists ({self.channel})")
            self._set_channel("websocket")
            return json_response(self._ws_status(), 201)

    def _get_websocket(self, request: Request) -> Response:
        with self._cond:
            if self.channel != "websocket":
                return pelion_error(404, "not_found", "No WebSocket channel")
            return json_response(self._ws_status())

    def _delete_websocket(self, request: Request) -> Response:
        with self._cond:
            if self.channel != "websocket":
                return pelion_error(404, "not_found", "No WebSocket channel")
            self._set_channel(None)
            self._ws_generation += 1  # closes the open socket with 1001
            self._cond.notify_all()
        return Response(204)

    def _ws_key_ok(self, request: Request) -> bool:
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        return not self.credentials_revoked and f"pelion_ak_{self.api_key}" in protocols

    def _websocket_connect(self, request: Request) -> Response | None:
        if not is_upgrade(request):
            return self._fail("Upgrade Required", 426)
        sock = accept_upgrade(request, "wss" if request.headers.get("Sec-WebSocket-Protocol") else None)
        if not (self._authorized(request) or self._ws_key_ok(request)):  # Pelion: the upgrade, then 1008
            ws_close(sock, 1008, "Policy violation: missing or invalid API key")
            return None
        with self._cond:
            if self.channel != "websocket":
                ws_close(sock, 1011, "No WebSocket channel registered")
                return None
            self._ws_generation += 1
            self._cond.notify_all()
            generation = self._ws_generation
            self._ws_connected = True
        try:
            self._ws_serve(sock, generation)
        finally:
            with self._cond:
                if self._ws_generation == generation:
                    self._ws_connected = False
        return None

    def _ws_serve(self, sock: socket.socket, generation: int) -> None:
        """Push each batch as a text frame; what the client sends (a ping, a close, an EOF) is read
        first, and nothing is taken for a client whose close or EOF waits to be read."""
        while True:
            if _readable(sock) and not self._ws_answer(sock):
                return  # the client closed: what is queued stays queued for its next connection
            with self._cond:
                if self._stopping.is_set() or self._ws_generation != generation or self.channel != "websocket":
                    ws_close(sock, 1001, "Going away")
                    return
                if not self._events:
                    self._cond.wait(0.2)
                # right before taking a batch: nothing from the client waits (a close frame, an EOF)
                message = self._take_batch() if self._events and not _readable(sock) else None
            if message is not None:
                try:
                    self._record_message("websocket", message)
                    sock.sendall(ws_frame(_body(message), 0x1))
                except OSError:
                    self._requeue(message)
                    return

    @staticmethod
    def _ws_answer(sock: socket.socket) -> bool:
        """Read one client frame and answer a ping; ``False`` when the client closed or reset."""
        try:
            opcode, payload = ws_read(sock)
            if opcode == 0x9:
                sock.sendall(ws_frame(payload, 0xA))
        except OSError:
            return False
        if opcode in (None, 0x8):
            if opcode == 0x8:
                ws_close(sock, 1000, "")
            return False
        return True
