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
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Protocol

from ..http import ProtocolError, RetryPolicy, ServiceConnectionError, ServiceError

logger = logging.getLogger("platypush_ext.mbed")

#: The header carrying the callback channel's shared secret.
SECRET_HEADER = "X-Platypush-Mbed-Secret"


class BackoffLike(Protocol):
    def next_delay(self) -> float: ...

    def reset(self) -> None: ...


class PolicyBackoff:
    """Exponential backoff with jitter (1 s … 60 s) from the HTTP layer's :class:`RetryPolicy`."""

    def __init__(self, base: float = 1.0, cap: float = 60.0):
        self.policy, self.failures = RetryPolicy(backoff=base, backoff_max=cap), 0

    def next_delay(self) -> float:
        self.failures += 1
        return self.policy.delay(self.failures - 1)

    def reset(self) -> None:
        self.failures = 0


class Channel:
    """Base class: the loop, the backoff and the thread.

    :param client: the :class:`~platypush_ext.mbed.client.MbedClient`.
    :param on_message: called with each NotificationMessage (a dict or JSON text).
    :param on_up: called after each successful exchange (cheap; the caller
        deduplicates, e.g. with ``glue.Availability``).
    :param on_down: called with the error of each failed exchange.
    :param backoff: an object with ``next_delay()`` and ``reset()``.
    """

    name = "channel"

    def __init__(
        self,
        client: Any,
        on_message: Callable[[Any], Any],
        on_up: Callable[[], None] | None = None,
        on_down: Callable[[ServiceError], None] | None = None,
        backoff: BackoffLike | None = None,
    ):
        self.client = client
        self.on_message = on_message
        self.on_up = on_up or (lambda: None)
        self.on_down = on_down or (lambda error: logger.warning("mbed %s: %s", self.name, error))
        self.backoff = backoff or PolicyBackoff()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.messages = 0

    # -- to implement --------------------------------------------------------

    def step(self) -> None:
        """One bounded exchange with the service (raises :class:`ServiceError` on failure)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the channel holds (sockets, servers)."""

    # -- loop ------------------------------------------------------------------

    def dispatch(self, message: Any) -> None:
        self.messages += 1
        try:
            self.on_message(message)
        except ProtocolError as exc:
            logger.warning("mbed %s: skipping a malformed notification message: %s", self.name, exc)
        except Exception:
            logger.exception("mbed %s: failed to process a notification message", self.name)

    def run(self) -> None:
        """Run until :meth:`stop`."""
        try:
            while not self.stopping.is_set():
                try:
                    self.step()
                except ServiceError as exc:
                    self.on_down(exc)
                    self.stopping.wait(self.backoff.next_delay())
                except Exception as exc:  # noqa: BLE001 - a bug or a surprise must not end the channel
                    # Without this the thread died silently and no notification (nor any
                    # async answer) ever arrived again. Text only: no traceback, no secret.
                    text = self.client.redactor.text(f"{type(exc).__name__}: {exc}")
                    logger.error("mbed %s: unexpected failure (%s); retrying with backoff", self.name, text)
                    self.stopping.wait(self.backoff.next_delay())
                else:
                    self.backoff.reset()
        finally:
            self.close()

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

    def __init__(self, client: Any, on_message: Callable[[Any], Any], *, no_wait_first: bool = True,
                 **kwargs: Any):
        super().__init__(client, on_message, **kwargs)
        self._first = no_wait_first

    def step(self) -> None:
        no_wait, self._first = self._first, False
        started = time.monotonic()
        message = self.client.pull(no_wait=no_wait)
        self.on_up()
        if message:
            self.dispatch(message)
        elif not no_wait:
            self.stopping.wait(max(0.0, self.MIN_EMPTY_CYCLE - (time.monotonic() - started)))


class _ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Receiver

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("mbed callback receiver: " + format, *args)

    def _receive(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        given = self.headers.get(SECRET_HEADER, "")
        if self.path.split("?")[0] != self.server.path or not hmac.compare_digest(
            given.encode(), self.server.secret.encode()
        ):
            self.server.rejected += 1
            self._answer(401 if self.path.split("?")[0] == self.server.path else 404)
            return
        if body.strip():
            self.server.inbox.put(body)
        self._answer(204)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = _receive


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], path: str, secret: str):
        self.path, self.secret = path, secret
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.rejected = 0
        super().__init__(address, _ReceiverHandler)


class CallbackChannel(Channel):
    """A local HTTP receiver registered as the account's callback URL.

    :param bind: address to listen on (default ``127.0.0.1``).
    :param port: port to listen on (``0`` = a free port).
    :param public_url: the URL the service must call, when it differs from
        ``http://<bind>:<port>/mbed/callback`` (reverse proxy, NAT).
    :param recheck: seconds between two checks that the callback is still
        registered (re-registered if the service lost it).
    """

    name = "callback"
    PATH = "/mbed/callback"

    def __init__(self, client: Any, on_message: Callable[[Any], Any], *, bind: str = "127.0.0.1", port: int = 0,
                 public_url: str | None = None, recheck: float = 30.0, **kwargs: Any):
        super().__init__(client, on_message, **kwargs)
        self.secret = secrets.token_urlsafe(24)
        client.redactor.add(self.secret)
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
            self.receiver = _Receiver((self.bind, self.port), self.PATH, self.secret)
        except OSError as exc:
            raise ServiceConnectionError(f"cannot listen on {self.bind}:{self.port} for callbacks ({exc})") from None
        threading.Thread(target=self.receiver.serve_forever, kwargs={"poll_interval": 0.2},
                         name="mbed-callback-receiver", daemon=True).start()

    def step(self) -> None:
        self._start_receiver()
        assert self.receiver is not None
        if self._registered_url is None or self._since_check >= self.recheck:
            current = self.client.get_callback() if self._registered_url else None
            if current is None or current.get("url") != self.url:
                self.client.put_callback(self.url, headers={SECRET_HEADER: self.secret})
                logger.info("mbed callback: registered %s", self.url)
            self._registered_url = self.url
            self._since_check = 0.0
            self.on_up()
        try:
            body = self.receiver.inbox.get(timeout=0.5)
        except queue.Empty:
            self._since_check += 0.5
            return
        self.dispatch(body)

    def interrupt(self) -> None:
        if self.receiver is not None:
            self.receiver.inbox.put(b"")

    def close(self) -> None:
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.shutdown()
            receiver.server_close()


class WebSocketChannel(Channel):
    """The Pelion / Izuma WebSocket channel: registered with ``PUT
    /v2/notification/websocket``, then each text frame is a NotificationMessage."""

    name = "websocket"

    def __init__(self, client: Any, on_message: Callable[[Any], Any], **kwargs: Any):
        super().__init__(client, on_message, **kwargs)
        self.ws: Any = None

    def step(self) -> None:
        import websocket

        if self.ws is None:
            self.client.register_websocket()
            self.ws = self.client.connect_websocket()
            self.ws.settimeout(0.5)
            self.on_up()
        try:
            frame = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return
        except (websocket.WebSocketException, OSError) as exc:
            self._drop()
            raise ServiceConnectionError(f"the notification WebSocket closed ({type(exc).__name__})") from None
        if not frame:  # a close frame
            code = getattr(self.ws, "status", None)
            self._drop()
            raise ServiceConnectionError(f"the service closed the notification WebSocket (code {code})")
        self.dispatch(frame)

    def _drop(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:
                logger.debug("mbed websocket: close failed", exc_info=True)

    def close(self) -> None:
        self._drop()
