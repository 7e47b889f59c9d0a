"""The small server core shared by every sandbox server.

A :class:`SandboxServer` is a threaded HTTP/1.1 server on 127.0.0.1 with a
route table, a request log and **fault injection**: the next *N* matching
requests can answer an error status (with ``Retry-After``), hang past the
client's timeout, have their connection reset, get a malformed body, or get
any body at all (``body``: the handler's JSON changed at one place, or raw bytes).

Faults are armed from Python (``server.faults.add(...)``) or over HTTP on the
server's own control API::

    POST   /_sandbox/faults   {"kind": "status", "count": 3, "status": 503,
                               "retry_after": 1, "method": "GET", "path": "/message"}
    GET    /_sandbox/faults   the armed faults
    DELETE /_sandbox/faults   disarm all
    GET    /_sandbox/requests the request log (method, path, status)
    GET    /_sandbox/health   {"service": name, "ok": true}
    PUT    /_sandbox/credentials {"revoked": true}  the credentials refused as the service refuses
                              a wrong key (:meth:`SandboxServer.refused`); false: accepted again

Every fault takes ``method`` and ``path`` (a prefix) to match only some requests,
and ``skip``: the first *N* matching requests pass untouched. A ``body`` fault
rewrites the answer the real handler produced (so everything else about the
exchange happens as usual, e.g. a file really created)::

    {"kind": "body", "pointer": "/messages/0/level", "op": "replace", "value": "high"}
    {"kind": "body", "pointer": "/service/created", "op": "replace", "json": "1e400"}
    {"kind": "body", "pointer": "/service/icon", "op": "remove"}
    {"kind": "body", "pointer": "/service/extra", "op": "add", "value": {"x": 1}}
    {"kind": "body", "raw": "<html>...</html>", "status": 502,
     "headers": {"Content-Type": "text/html"}}
    {"kind": "body", "raw_base64": "/w=="}

``pointer`` is a JSON pointer (RFC 6901; ``-`` appends to an array) into the
handler's JSON body; ``op`` is ``replace`` (the default), ``remove`` or ``add``;
the new value is ``value`` (any JSON) or ``json``, a JSON text put in as it is
(what ``json.dumps`` cannot write: ``1e400``, ``NaN``, nesting 100,000 deep,
``"\\ud800"``). ``raw`` (text, sent as UTF-8) or ``raw_base64`` (any bytes)
replace the whole body. The status and headers stay the handler's unless
``status`` / ``headers`` are given (``Content-Length`` always fits the new body).

With :attr:`SandboxServer.recording` set to a list, every answer of the service's
API is appended to it as an :class:`Answer` (status, headers and body as sent).

A handler ends with a chosen error answer by raising :class:`Abort` (each
service subclasses it to build its own error body). Every other exception is a
bug of the sandbox: the server answers ``500`` as a Flask app would, and also
records it (:func:`take_failures`), so that the test that caused it fails
(``tests/conftest.py`` checks after every test), like ``pytest-httpserver``.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import logging
import re
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, Iterator
from urllib.parse import parse_qsl, urlsplit

from ..core.untrusted import JSON, JSONObject
from .jsonedit import edit_json
from .ports import kept_port
from .werkzeug import WERKZEUG_DESCRIPTIONS, form_pairs, pick

logger = logging.getLogger("platypush_ext.sandbox")

FAULT_KINDS = ("status", "hang", "reset", "malformed", "body")
#: The edits of a ``body`` fault with a ``pointer``.
BODY_OPS = ("replace", "remove", "add")

Body = bytes | Iterable[bytes]


class Abort(Exception):
    """Ends a handler with :attr:`response` (a service's error answer).

    :param response: what the client gets.
    :param text: the exception's text (default: the status).
    """

    def __init__(self, response: "Response", text: str = ""):
        super().__init__(text or f"HTTP {response.status}")
        self.response = response


@dataclass(frozen=True)
class HandlerFailure:
    """An unexpected exception of a route handler (a bug of the sandbox)."""

    server: str
    request: str
    error: BaseException

    def __str__(self) -> str:
        return f"{self.server}: the handler of {self.request} failed: {type(self.error).__name__}: {self.error}"


_failures: list[HandlerFailure] = []
_failures_lock = threading.Lock()


def take_failures() -> list[HandlerFailure]:
    """The handler failures of every server of this process since the last call (and forget them)."""
    with _failures_lock:
        taken = list(_failures)
        _failures.clear()
    return taken


@dataclass
class Response:
    """What a route handler answers.

    ``body`` is bytes, or an iterable of byte chunks (give ``Content-Length`` in
    ``headers`` to keep the connection alive, else it is closed after the body).
    """

    status: int = 200
    body: Body = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(
    payload: JSON,
    status: int = 200,
    content_type: str = "application/json",
    compact: bool = True,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON answer (``compact`` as Flask's ``jsonify``, else ``json.dumps``' default spacing)."""
    if compact:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    else:
        text = json.dumps(payload)
    return Response(status, text.encode(), {"Content-Type": content_type, **(headers or {})})


def text_response(text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
    """A plain text answer."""
    return Response(status, text.encode(), {"Content-Type": content_type})


def html_error(status: int) -> Response:
    """Werkzeug's HTML error page for ``status`` (what Flask services answer on unknown routes)."""
    phrase = HTTPStatus(status).phrase
    description = WERKZEUG_DESCRIPTIONS.get(status)
    page = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n'
        f"<title>{status} {phrase}</title>\n<h1>{phrase}</h1>\n" + (f"<p>{description}</p>\n" if description else "")
    )
    return text_response(page, status, "text/html; charset=utf-8")


class Request:
    """One incoming request, as route handlers see it."""

    def __init__(self, handler: BaseHTTPRequestHandler, params: dict[str, str], first_value: bool = False):
        """``first_value``: a repeated parameter's first value wins (Werkzeug's ``MultiDict.get``), else its last."""
        split = urlsplit(handler.path)
        self.handler = handler
        self.method = handler.command
        self.path = split.path
        self.first_value = first_value
        self.query = pick(parse_qsl(split.query, keep_blank_values=True), first_value)
        self.headers = handler.headers
        self.params = params
        self._body: bytes | None = None
        self._remaining = int(handler.headers.get("Content-Length") or 0)

    def iter_body(self, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """Stream the request body (Content-Length framed) in chunks."""
        while self._remaining > 0:
            chunk = self.handler.rfile.read(min(chunk_size, self._remaining))
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            self._remaining -= len(chunk)
            yield chunk

    @property
    def body(self) -> bytes:
        """The whole request body."""
        if self._body is None:
            self._body = b"".join(self.iter_body())
        return self._body

    def drain(self) -> None:
        """Discard what is left of the body (keeps the connection usable)."""
        for _ in self.iter_body():
            pass

    def abandon_body(self) -> None:
        """Read nothing more of the body: the connection is broken (it will be closed)."""
        self._remaining = 0

    @functools.cached_property
    def form(self) -> dict[str, str]:
        """Fields of an ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body (others give ``{}``)."""
        return pick(form_pairs(self.headers.get("Content-Type", ""), self.body), self.first_value)

    def json(self) -> JSON:
        """The body parsed as JSON (``None`` when empty); raises ``ValueError``."""
        return json.loads(self.body) if self.body else None

    def arg(self, name: str) -> str | None:
        """A parameter from the form body or else the query string (Flask's
        ``request.form.get(x) or request.args.get(x)``)."""
        return self.form.get(name) or self.query.get(name)


#: A route handler; returning ``None`` means it took the connection over
#: (it wrote its own answer, e.g. a WebSocket upgrade) and nothing more is sent.
Handler = Callable[[Request], Response | None]


@dataclass
class Fault:
    """A fault armed for the next ``count`` matching requests (after ``skip`` of them)."""

    kind: str
    count: int = 1
    status: int | None = None
    retry_after: float | None = None
    delay: float = 30.0
    method: str | None = None
    path: str | None = None
    skip: int = 0
    pointer: str | None = None
    op: str = "replace"
    value: JSON = None
    json: str | None = None
    raw: str | None = None
    raw_base64: str | None = None
    headers: dict[str, str] | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or path.startswith(self.path)
        )

    def check(self) -> None:
        """:class:`ValueError` for a fault that cannot be applied (before it is armed)."""
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.skip < 0:
            raise ValueError("skip must not be negative")
        if self.kind == "status" and self.status is None:
            self.status = 503
        if self.kind != "body":
            return
        given = [name for name in ("pointer", "raw", "raw_base64") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a body fault needs one of pointer, raw or raw_base64")
        if self.op not in BODY_OPS:
            raise ValueError(f"unknown op {self.op!r}; use one of {', '.join(BODY_OPS)}")
        if self.pointer is not None and self.pointer[:1] not in ("", "/"):
            raise ValueError(f"pointer must be empty or start with '/', got {self.pointer!r}")
        if self.raw_base64 is not None:
            try:
                base64.b64decode(self.raw_base64, validate=True)
            except ValueError:
                raise ValueError("raw_base64 is not base64") from None

    def rewrite(self, response: Response) -> Response:
        """The handler's ``response`` with this ``body`` fault applied."""
        if self.raw is not None:
            body = self.raw.encode("utf-8", "surrogatepass")
        elif self.raw_base64 is not None:
            body = base64.b64decode(self.raw_base64)
        else:
            if not isinstance(response.body, (bytes, bytearray)):
                raise ValueError("a body fault with a pointer needs a JSON answer, not a streamed one")
            body = edit_json(bytes(response.body), self.pointer or "", self.op, self.value, self.json)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        headers.update(self.headers or {})
        return Response(response.status if self.status is None else self.status, body, headers)


class FaultInjector:
    """The armed faults of a server; each request consumes at most one."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, kind: str, count: int = 1, **options: JSON) -> Fault:
        """Arm ``count`` faults of ``kind`` (``status``, ``hang``, ``reset``, ``malformed``, ``body``);
        :class:`ValueError` (or :class:`TypeError` for an unknown option) when it cannot be applied."""
        fault = Fault(kind=kind, count=count, **options)
        fault.check()
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def armed(self) -> list[JSONObject]:
        with self._lock:
            return [asdict(f) for f in self._faults]


@dataclass(frozen=True)
class Answer:
    """One answer of a server, as sent (see :attr:`SandboxServer.recording`).

    :ivar body: the body's bytes (``None`` for a streamed body, not kept).
    :ivar at: ``time.monotonic_ns()`` when it was sent (orders the answers of several servers).
    """

    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes | None
    at: int


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK add ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        logger.debug("%s: " + format, self.server.sandbox.name, *args)

    def _dispatch(self) -> None:
        self.server.sandbox._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: "SandboxServer"):
        self.sandbox = sandbox
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, OSError)):
            logger.debug("%s: connection from %s ended: %s", self.sandbox.name, client_address, error)
        else:
            logger.exception("%s: failure while serving %s", self.sandbox.name, client_address)


class SandboxServer:
    """Base class of the sandbox servers.

    Subclasses set :attr:`name` and :attr:`default_port` and register routes in
    :meth:`setup_routes` with :meth:`route`. Route patterns are regular
    expressions over the path; named groups become ``request.params``.
    """

    name = "sandbox"
    default_port = 0
    #: The path under which the service's API answers (for the printed base URL).
    api_prefix = "/"
    #: Route handlers run holding :attr:`lock` (one at a time), as a single-threaded service would.
    serialized = False
    #: Werkzeug's routing (a Flask service): ``HEAD`` runs the ``GET`` route (its answer without the body),
    #: ``OPTIONS`` answers ``200`` with ``Allow`` on a known path, and a ``405`` carries ``Allow``.
    werkzeug_routing = False
    #: a parameter given twice takes its first value (Werkzeug's ``MultiDict.get``), else its last
    first_value_wins = False

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self.faults = FaultInjector()
        self.lock = threading.RLock()
        #: ``(method, path, status)`` of every request (status 0: reset or hang fault)
        self.requests: list[tuple[str, str, int]] = []
        #: the raw request targets (``/path?query``), to check what travels in URLs
        self.targets: list[str] = []
        #: set to a list to record every answer of the service's API (:class:`Answer`); ``None``: not recorded
        self.recording: list[Answer] | None = None
        #: the service refuses the configured credentials (``PUT /_sandbox/credentials``)
        self.credentials_revoked = False
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.route("GET", "/_sandbox/health", lambda r: json_response({"service": self.name, "ok": True}))
        self.route("GET", "/_sandbox/faults", lambda r: json_response({"faults": self.faults.armed()}))
        self.route("POST", "/_sandbox/faults", self._arm_fault)
        self.route("DELETE", "/_sandbox/faults", self._clear_faults)
        self.route("GET", "/_sandbox/requests", self._request_log)
        self.route("PUT", "/_sandbox/credentials", self._revoke)
        self.setup_routes()

    # -- to override ---------------------------------------------------------

    def setup_routes(self) -> None:
        """Register the service's routes."""

    def not_found(self, request: Request) -> Response:
        return html_error(404)

    def method_not_allowed(self, request: Request) -> Response:
        return html_error(405)

    def allow(self, methods: list[str]) -> str:
        """The ``Allow`` header of a path whose routes take ``methods`` (with :attr:`werkzeug_routing`).

        :param methods: the methods of the path's routes, in registration order, with ``HEAD`` and ``OPTIONS``.
        """
        return ", ".join(methods)

    def refused(self, request: Request) -> Response | None:
        """The answer to a request of the service's API while its credentials are revoked (default:
        a reverse proxy's ``401`` page), as the service answers a wrong key; ``None`` when the
        service's own check reads :attr:`credentials_revoked`."""
        return html_error(401)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the server's own command-line options."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, host: str, port: int) -> "SandboxServer":
        """Build the server from parsed command-line options."""
        return cls(host=host, port=port)

    def describe(self) -> str:
        """One line for humans: where the server is and how to use it."""
        return f"{self.name}: {self.base_url}"

    # -- routing -------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Answer ``method`` requests whose path matches ``pattern`` with ``handler``."""
        self._routes.append((method.upper(), re.compile(pattern + r"\Z"), handler))

    # -- life cycle ----------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL a client of the service is configured with."""
        return self.url + self.api_prefix

    def start(self) -> "SandboxServer":
        """Start serving in a daemon thread; returns ``self``."""
        self.port = kept_port(self, self.port)
        self._httpd = _HTTPServer((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"sandbox-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling ----------------------------------------------------

    def _handle(self, handler: _RequestHandler) -> None:
        path = urlsplit(handler.path).path
        method = handler.command
        fault = None if path.startswith("/_sandbox/") else self.faults.take(method, path)
        route, params, methods = self._resolve(method, path)
        request = Request(handler, params, self.first_value_wins)

        with self.lock:
            self.targets.append(handler.path)
        if fault and fault.kind in ("reset", "hang"):
            self._record(method, path, 0)
            if fault.kind == "reset":
                request.drain()
            else:
                time.sleep(fault.delay)
            reset_connection(handler)
            return
        if fault and fault.kind == "status":
            response = html_error(fault.status or 503)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = f"{fault.retry_after:g}"
        else:
            handled = self._run_handler(request, route, methods)
            if handled is None:  # the handler took the connection over (e.g. a WebSocket upgrade)
                self._record(method, path, 101)
                handler.close_connection = True
                return
            response = handled
            if fault and fault.kind == "malformed":
                response = Response(response.status, b'{"malformed": tru', dict(response.headers))
                response.headers.pop("Content-Length", None)
            elif fault and fault.kind == "body":
                response = self._rewritten(request, response, fault)
        request.drain()
        self._record(method, path, response.status)
        answers = self.recording
        if answers is not None and not path.startswith("/_sandbox/"):
            body = bytes(response.body) if isinstance(response.body, (bytes, bytearray)) else None
            answers.append(Answer(method, path, response.status, dict(response.headers), body, time.monotonic_ns()))
        self._write_response(handler, response)

    def _rewritten(self, request: Request, response: Response, fault: Fault) -> Response:
        """``response`` with a ``body`` fault applied; one that does not fit the answer (a pointer that
        leads nowhere) is a mistake of the test that armed it: recorded as a failure, answered 500."""
        try:
            return fault.rewrite(response)
        except ValueError as exc:
            logger.error("%s: the body fault does not fit %s %s: %s", self.name, request.method, request.path, exc)
            with _failures_lock:
                _failures.append(HandlerFailure(self.name, f"{request.method} {request.path}", exc))
            return html_error(500)

    def _resolve(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], list[str]]:
        """The route of ``method`` on ``path`` (with :attr:`werkzeug_routing`, ``HEAD`` falls back on ``GET``),
        its named groups, and the methods of the path's routes (none: an unknown path)."""
        found: dict[str, tuple[Handler, dict[str, str]]] = {}
        for route_method, pattern, route_handler in self._routes:
            match = pattern.match(path)
            if match and route_method not in found:
                found[route_method] = (route_handler, match.groupdict())
        methods = list(found)
        if self.werkzeug_routing and found:
            methods = (["HEAD"] if "GET" in found and "HEAD" not in found else []) + methods
            methods += [] if "OPTIONS" in found else ["OPTIONS"]
            if method == "HEAD" and "HEAD" not in found and "GET" in found:
                method = "GET"
        route, params = found.get(method, (None, {}))
        return route, params, methods

    def _without_route(self, request: Request, methods: list[str]) -> Response:
        """The answer to a request no route takes: 404, 405, or Werkzeug's automatic ``OPTIONS``."""
        if not methods:
            return self.not_found(request)
        if not self.werkzeug_routing:
            return self.method_not_allowed(request)
        if request.method == "OPTIONS":
            response = Response(200, b"", {"Content-Type": "text/html; charset=utf-8"})
        else:
            response = self.method_not_allowed(request)
        response.headers["Allow"] = self.allow(methods)
        return response

    def _run_handler(self, request: Request, route: Handler | None, methods: list[str]) -> Response | None:
        """The handler's answer: an :class:`Abort`'s response; a 500 for anything else (recorded)."""
        try:
            refusal = self.refused(request) if self.credentials_revoked and request.path[:10] != "/_sandbox/" else None
            if refusal is not None:
                return refusal
            if route is None:
                return self._without_route(request, methods)
            if not self.serialized:
                return route(request)
            with self.lock:
                return route(request)
        except Abort as abort:
            return abort.response
        except Exception as exc:  # a bug in the sandbox: answer as a Flask app would, and fail the test
            logger.exception("%s: handler failed for %s %s", self.name, request.method, request.path)
            if not isinstance(exc, OSError):  # a connection that broke mid-body is no bug
                with _failures_lock:
                    _failures.append(HandlerFailure(self.name, f"{request.method} {request.path}", exc))
            return html_error(500)

    def _record(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.requests.append((method, path, status))
            if len(self.requests) > 10000:
                del self.requests[:5000]
                del self.targets[:5000]

    @staticmethod
    def _write_response(handler: _RequestHandler, response: Response) -> None:
        handler.send_response(response.status)
        body = response.body
        headers = dict(response.headers)
        close = False
        if isinstance(body, (bytes, bytearray)):
            headers.setdefault("Content-Length", str(len(body)))
        elif "Content-Length" not in headers:
            close = True
            headers["Connection"] = "close"
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command != "HEAD":
            if isinstance(body, (bytes, bytearray)):
                handler.wfile.write(body)
            else:
                for chunk in body:
                    handler.wfile.write(chunk)
        handler.wfile.flush()
        if close:
            handler.close_connection = True

    # -- control API ---------------------------------------------------------

    def _arm_fault(self, request: Request) -> Response:
        try:
            spec = request.json() or {}
            fault = self.faults.add(**spec)
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"armed": asdict(fault)})

    def _clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return json_response({"faults": []})

    def _revoke(self, request: Request) -> Response:
        spec = request.json()
        if not isinstance(spec, dict) or not isinstance(spec.get("revoked"), bool):
            return json_response({"error": 'give {"revoked": true} or {"revoked": false}'}, 400)
        self.credentials_revoked = spec["revoked"]
        return json_response({"revoked": self.credentials_revoked})

    def _request_log(self, request: Request) -> Response:
        with self.lock:
            log = [{"method": m, "path": p, "status": s} for m, p, s in self.requests]
        return json_response({"requests": log})


def reset_connection(handler: BaseHTTPRequestHandler, now: bool = False) -> None:
    """Break the connection with a TCP reset.

    :param handler: the request's handler (``request.handler``).
    :param now: shut the socket down at once, so that nothing written afterwards
        reaches the client (mid-stream); else it is reset when the handler ends.
    """
    sock: socket.socket = handler.connection
    handler.close_connection = True
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if now:
            sock.shutdown(socket.SHUT_RDWR)
        else:
            sock.close()
    except OSError:
        pass
