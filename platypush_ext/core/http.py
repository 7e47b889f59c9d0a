"""The one HTTP layer of platypush-ext.

Every service client talks HTTP through :class:`HttpClient`, which gives all of
them the same behaviour:

* one :class:`requests.Session` per client (keep-alive, connection reuse);
* a connect and a read timeout on every request;
* retries with exponential backoff and full jitter for idempotent requests on
  connection errors, timeouts, 429 and 5xx, honouring ``Retry-After``, within a
  total time budget; a non-idempotent request is retried only when it cannot
  have reached the server (the connection was never established);
* one small exception hierarchy carrying status, endpoint and the server's own
  message;
* secrets (keys, passwords, tokens) masked in every URL, log line and message;
* the last exchange remembered (:class:`Exchanges`, for a diagnostics report).
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import logging
import math
import os
import re
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Mapping, Protocol, TypedDict, TypeVar, cast, overload
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3

from . import untrusted
from .errors import (
    InvalidArgumentError,
    ProtocolError,
    ServiceConnectionError,
    ServiceError,
    ServiceTimeoutError,
    ServiceTLSError,
    error_class_for_status,
)
from .redaction import Redactor
from .retry import RetryPolicy
from .text import html_title, iso_time, one_line
from .transport import Transport, tls_error_text, tls_failure
from .untrusted import JSON, JSONObject

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ErrorDetails",
    "Exchanges",
    "HttpClient",
    "ServiceClient",
    "Timeouts",
    "error_payload",
    "parse_json",
    "server_message",
]

logger = logging.getLogger("platypush_ext.http")

T = TypeVar("T")


class FileBody(Protocol):
    """A file-like request body (an open binary file, ``gett``'s ``ProgressReader``): streamed, and
    rewound with :meth:`seek` to where it was first before a retry."""

    def read(self, size: int = -1, /) -> bytes: ...

    def tell(self) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


#: A request body as requests takes it: a form (a mapping, sent urlencoded), text, bytes or a
#: file-like object.
Body = Mapping[str, object] | str | bytes | FileBody | None


class RequestOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`HttpClient.request` (for :meth:`HttpClient.request_json`)."""

    params: Mapping[str, object] | None
    data: Body
    json_body: JSON  # arbitrary JSON, encoded by requests
    headers: Mapping[str, str] | None
    idempotent: bool | None
    timeouts: Timeouts | None
    stream: bool
    allow_redirects: bool


class ClientOptions(TypedDict, total=False):
    """The options of :class:`HttpClient` a :class:`ServiceClient` passes on (``secrets``, ``headers``)."""

    secrets: Iterable[str | None]
    headers: Mapping[str, str] | None


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts, in seconds."""

    connect: float = 5.0
    read: float = 15.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


@dataclass(frozen=True)
class ErrorDetails:
    """What a service adds to an error answer; :class:`HttpClient` builds the error.

    :ivar cls: the exception class (default: the generic one for the status).
    :ivar hint: a short advice appended in parentheses.
    :ivar code: the service's own error code.
    """

    cls: type[ServiceError] | None = None
    hint: str | None = None
    code: JSON = None


#: A service's error table: ``(status, endpoint, payload)`` to :class:`ErrorDetails`,
#: or ``None`` for the generic class of the status.
ErrorFactory = Callable[[int, str, JSON], "ErrorDetails | None"]


def parse_json(response: requests.Response, endpoint: str, redactor: Redactor) -> JSON:
    """The JSON body of ``response`` (whatever its content type), read as untrusted input
    (:func:`platypush_ext.core.untrusted.loads`: UTF-8, as RFC 8259 requires): a body that is not
    JSON, not UTF-8 or nested too deeply is a one-line :class:`ProtocolError`, secrets masked."""

    try:
        return untrusted.loads(response.content, f"{endpoint}: the answer (HTTP {response.status_code})")
    except ProtocolError as exc:
        raise ProtocolError(
            one_line(redactor.text(exc.message)), status=response.status_code, endpoint=endpoint
        ) from None


#: The most bytes of an error answer read for its message (the rest is not read).
MAX_ERROR_BODY = 64 * 1024
#: The most characters of a server's own message kept in an error.
MAX_SERVER_MESSAGE = 300


def _error_body(response: requests.Response) -> bytes:
    """The start of an error answer's body (at most :data:`MAX_ERROR_BODY` bytes, also of a streamed
    one); ``b""`` when it cannot be read."""
    try:
        return next(response.iter_content(MAX_ERROR_BODY), b"")[:MAX_ERROR_BODY]
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError):
        return b""


def error_payload(body: bytes) -> JSON:
    """What an error answer says, for :func:`server_message` and the services' error tables: its
    JSON; else its text (an HTML page, a plain sentence); ``None`` when it is neither (not UTF-8,
    JSON too deep to read, a truncated JSON text)."""

    try:
        return untrusted.loads(body, "the error answer")
    except ProtocolError:
        pass
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return None if text.startswith(("{", "[")) else text


def _retry_after(response: requests.Response) -> float | None:
    """Seconds asked by ``Retry-After`` (delta-seconds or an HTTP date); ``None`` when absent or
    unparseable (a malformed header must not turn a retryable answer into a crash)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - time.time()
    return seconds if math.isfinite(seconds) else None


def _tell(data: Body) -> int | None:
    """The position of a seekable file-like request body, else ``None``."""
    if data is None or isinstance(data, (bytes, str, Mapping)) or not hasattr(data, "seek"):
        return None
    try:
        return data.tell()
    except (AttributeError, OSError, ValueError):
        return None


def _connect_failure(exc: requests.RequestException) -> BaseException | None:
    """The socket-level error of a connection that was never established, else ``None``."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return exc
    if not isinstance(exc, requests.exceptions.ConnectionError) or not exc.args:
        return None
    reason = getattr(exc.args[0], "reason", exc.args[0])  # urllib3's MaxRetryError wraps it
    if isinstance(reason, urllib3.exceptions.NewConnectionError):  # refused, unreachable, DNS failure
        return reason.__cause__ or reason
    return None


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the request certainly did not reach the server (told by the exception's type)."""
    return _connect_failure(exc) is not None


class _RedactingFilter(logging.Filter):
    """Masks secrets in the debug lines of ``urllib3`` (it logs full URLs, signed ones included)."""

    _PARAM_RE = re.compile(r"((?:accesstoken|refreshtoken|sig)=)[^&\s\"]+", re.IGNORECASE)

    def __init__(self) -> None:
        super().__init__()
        self.redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        text = self._PARAM_RE.sub(r"\1***", record.getMessage())
        for redactor in list(self.redactors):
            text = redactor.text(text)
        record.msg, record.args = text, ()
        return True


_URLLIB3_FILTER = _RedactingFilter()


def _redact_urllib3_logs(redactor: Redactor) -> None:
    """Mask ``redactor``'s secrets in urllib3's log lines (the filter is installed once, at the first client)."""
    pool_logger = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_FILTER not in pool_logger.filters:
        pool_logger.addFilter(_URLLIB3_FILTER)
    _URLLIB3_FILTER.redactors.add(redactor)


class Exchanges:
    """What a client (and its copies, e.g. the mbed long poll's) remembers of its exchanges, for a
    diagnostics report: the last one (time, endpoint, status, error) and, to ``on_failure``, each
    failed one's error (one line, secrets masked).

    :ivar on_failure: called with the error text of each failed exchange.
    """

    def __init__(self) -> None:
        self._last: tuple[float, str, int | None, ServiceError | None] | None = None
        self.on_failure: Callable[[str], None] | None = None

    def record(self, endpoint: str, status: int | None, error: ServiceError | None = None) -> None:
        """One exchange (an attempt: a retried request records each); cheap, formatted when read.

        :param endpoint: ``METHOD /path`` (secrets masked).
        :param status: the answer's status (``None``: no answer).
        :param error: its error, if it failed (its text is safe to show).
        """
        self._last = (time.time(), endpoint, status, error)
        if error is not None and self.on_failure is not None:
            self.on_failure(one_line(error))

    @property
    def last(self) -> JSONObject | None:
        """``{"at": <ISO time>, "endpoint": "GET /path", "status": 200, "error": null}`` of the last
        exchange (``status`` ``null`` when no answer came), ``None`` before the first."""
        if self._last is None:
            return None
        at, endpoint, status, error = self._last
        return {"at": iso_time(at), "endpoint": endpoint, "status": status, "error": one_line(error) if error else None}


@dataclass(frozen=True)
class _Exchange:
    """What the attempts of one request share."""

    endpoint: str
    idempotent: bool
    timeout: tuple[float, float]


class HttpClient:
    """HTTP plumbing shared by every service client.

    :param base_url: the service's base URL; relative paths are joined to it
        (a missing trailing ``/`` is added, so a path prefix is kept).
    :param timeouts: connect and read timeouts.
    :param retry: the retry policy.
    :param secrets: secret values to mask wherever they could appear.
    :param error_factory: the service's error table (see :data:`ErrorFactory`).
    :param headers: headers sent with every request.
    :param session: an existing :class:`requests.Session` to use (its owner closes it).
    :param transport: TLS, proxy, basic auth and extra headers (:meth:`use_transport`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        secrets: Iterable[str | None] = (),
        error_factory: ErrorFactory | None = None,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        transport: Transport | None = None,
    ):
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/]+", base_url):
            raise InvalidArgumentError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeouts = timeouts
        self.retry = retry
        self.redactor = Redactor(secrets)
        _redact_urllib3_logs(self.redactor)
        self.error_factory = error_factory
        self.exchanges = Exchanges()  # shared by copies of this client
        self._owns_session = session is None
        self.session = session or _session_for(self.base_url)
        self.session.headers["User-Agent"] = "platypush-ext"
        if headers:
            self.session.headers.update(headers)
            self.redactor.add_from(headers)
        self.transport = Transport()
        if transport is not None:
            self.use_transport(transport)

    def use_transport(self, transport: Transport) -> None:
        """Connect as ``transport`` says from now on: its TLS verification and client certificate, its
        proxy (else the environment's), its basic auth and headers; its secrets masked.

        :param transport: the settings (:meth:`Transport.checked`).
        """
        self.transport = transport
        for secret in transport.secrets:
            self.redactor.add(secret)
        session = self.session
        if transport.verify is not True:
            session.verify = transport.verify
        session.cert = transport.cert
        if transport.proxy:
            session.proxies = {"http": transport.proxy, "https": transport.proxy}
        if transport.auth:  # UTF-8 (RFC 7617), as the WebSocket handshake sends it (requests' auth= is Latin-1)
            session.headers["Authorization"] = f"Basic {transport.basic_token}"
        session.headers.update(transport.headers)

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (absolute URLs are kept)."""
        return urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path

    def close(self) -> None:
        """Close the pooled connections (of a session this client created; a given one is its owner's)."""
        if self._owns_session:
            self.session.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.redactor.url(self.base_url)!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        data: Body = None,
        json_body: JSON = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeouts: Timeouts | None = None,
        stream: bool = False,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """Send a request and return the successful (< 400) response, retried as :attr:`retry` decides.

        :param method: the HTTP method.
        :param path: relative to the base URL (or an absolute URL).
        :param params: query parameters.
        :param data: a body: a form (a mapping), bytes, or a file-like object, streamed and,
            if the request is retried, rewound to where it was first.
        :param json_body: a JSON body.
        :param headers: extra headers.
        :param idempotent: whether the request may be replayed after it may have reached the
            server; defaults to the policy's ``methods``. Pass ``False`` for destructive reads.
        :param timeouts: this request's timeouts (default: the client's).
        :param stream: do not read the body (the caller closes the response).
        :param allow_redirects: follow redirects.
        :raises ServiceError: the subclass that describes what went wrong.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = self.retry.is_idempotent(method)
        for secrets in (params, data if isinstance(data, Mapping) else None, headers):
            self.redactor.add_from(secrets)
        url = self.url(path)
        endpoint = self.endpoint(method, url)
        # Encode query and form here: the same bytes requests would send, without its
        # per-call type inspection of the arguments (a tenth of a small request's time).
        if params:
            url += ("&" if "?" in url else "?") + _urlencode(params)
        if isinstance(data, Mapping):
            data = _urlencode(data)
            headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        timeout = (timeouts or self.timeouts).as_tuple()
        send = functools.partial(
            self.session.request,
            method,
            url,
            data=data,
            json=json_body,
            headers=headers,
            timeout=timeout,
            stream=stream,
            allow_redirects=allow_redirects,
        )
        return self._with_retries(send, _Exchange(endpoint, idempotent, timeout), data)

    def _with_retries(
        self, send: Callable[[], requests.Response], exchange: _Exchange, data: Body
    ) -> requests.Response:
        """``send()`` until it succeeds or the policy says the error is final."""
        started, failures = time.monotonic(), 0
        body_start = _tell(data)  # a file-like body is rewound before each retry (as requests does on redirects)
        while True:
            if failures and body_start is not None:
                cast(FileBody, data).seek(body_start)  # _tell found a position: a file-like body
            response, error, replayable, retry_after = self._attempt(send, exchange, started)
            if response is not None:
                return response
            assert error is not None  # an attempt without a response has its error
            failures += 1
            delay = self.retry.next_delay(
                error,
                failures=failures,
                elapsed=time.monotonic() - started,
                replayable=replayable,
                retry_after=retry_after,
            )
            if delay is None:
                raise error
            logger.info(
                "%s failed (%s); retry %d/%d in %.1f s",
                exchange.endpoint,
                error,
                failures,
                self.retry.attempts - 1,
                delay,
            )
            time.sleep(delay)

    def _attempt(
        self, send: Callable[[], requests.Response], exchange: _Exchange, started: float
    ) -> tuple[requests.Response | None, ServiceError | None, bool, float | None]:
        """One attempt: ``(response, None, …)`` on success, else ``(None, error, replayable, retry_after)``."""
        try:
            response = send()
        except requests.RequestException as exc:
            error = self._transport_error(exc, exchange.endpoint, exchange.timeout)
            self.exchanges.record(exchange.endpoint, None, error)
            return None, error, exchange.idempotent or _never_connected(exc), None
        logger.debug(
            "%s -> %s in %.0f ms", exchange.endpoint, response.status_code, (time.monotonic() - started) * 1000
        )
        if response.status_code < 400:
            self.exchanges.record(exchange.endpoint, response.status_code)
            return response, None, True, None
        error, retry_after = self._status_error(response, exchange.endpoint), _retry_after(response)
        self.exchanges.record(exchange.endpoint, response.status_code, error)
        response.close()
        return None, error, exchange.idempotent, retry_after

    @overload
    def request_json(self, method: str, path: str, *, parse: None = None, **kwargs: Unpack[RequestOptions]) -> JSON: ...

    @overload
    def request_json(
        self, method: str, path: str, *, parse: Callable[[JSON], T], **kwargs: Unpack[RequestOptions]
    ) -> T: ...

    def request_json(
        self, method: str, path: str, *, parse: Callable[[JSON], T] | None = None, **kwargs: Unpack[RequestOptions]
    ) -> T | JSON:
        """:meth:`request`, then the body parsed as JSON (any content type), then ``parse(body)``
        (a service's model: every bad field is a :class:`ProtocolError`, given the endpoint here).

        :param method: the HTTP method.
        :param path: relative to the base URL (or an absolute URL).
        :param parse: what reads the JSON (default: it is returned as it is).
        :param kwargs: the other arguments of :meth:`request`.
        """
        response = self.request(method, path, **kwargs)
        endpoint = self.endpoint(method, self.url(path))
        data = parse_json(response, endpoint, self.redactor)
        return data if parse is None else self.parsed(data, parse, endpoint, response.status_code)

    def parsed(self, data: JSON, parse: Callable[[JSON], T], endpoint: str, status: int | None = None) -> T:
        """``parse(data)``; its :class:`ProtocolError` (a refused field) is raised again naming the
        endpoint, in one line, secrets masked.

        :param data: what the service answered (decoded JSON, or text).
        :param parse: the model that reads it.
        :param endpoint: ``METHOD /path`` of the request.
        :param status: the answer's status.
        """
        try:
            return parse(data)
        except ProtocolError as exc:
            text = one_line(self.redactor.text(f"{endpoint}: {exc.message}"))
            raise ProtocolError(text, status=status, endpoint=endpoint) from None

    def endpoint(self, method: str, url: str) -> str:
        """``METHOD /path?query`` of ``url``, secrets masked (for messages and logs)."""
        relative = urlsplit(url)._replace(scheme="", netloc="").geturl()
        return f"{method.upper()} {self.redactor.url(relative)}"

    def _transport_error(
        self, exc: requests.RequestException, endpoint: str, timeout: tuple[float, float]
    ) -> ServiceError:
        host, (connect, read) = urlsplit(self.base_url).netloc, timeout
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return ServiceTimeoutError(
                f"{endpoint}: could not connect to {host} within {connect:g} s", endpoint=endpoint
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return ServiceTimeoutError(f"{endpoint}: {host} did not answer within {read:g} s", endpoint=endpoint)
        tls = tls_failure(exc)
        if tls is not None:
            return ServiceTLSError(self.redactor.text(f"{endpoint}: {tls_error_text(host, tls)}"), endpoint=endpoint)
        if isinstance(exc, requests.exceptions.ProxyError):
            proxy = self.redactor.url(self.session.proxies.get(urlsplit(self.base_url).scheme) or "the proxy")
            return ServiceConnectionError(
                f"{endpoint}: cannot reach {host} through the proxy {proxy} ({_proxy_reason(exc)})", endpoint=endpoint
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            failure = _connect_failure(exc)
            refused = isinstance(failure, ConnectionRefusedError)
            reason = "connection refused" if refused else "connection failed or was reset"
            return ServiceConnectionError(f"{endpoint}: cannot reach {host} ({reason})", endpoint=endpoint)
        return ServiceConnectionError(f"{endpoint}: request to {host} failed ({type(exc).__name__})", endpoint=endpoint)

    def _status_error(self, response: requests.Response, endpoint: str) -> ServiceError:
        """The error of an error answer: the class and hint from the service's table, one message format
        (``ENDPOINT: HTTP status: server message (hint)``), every text redacted."""
        status = response.status_code
        payload = error_payload(_error_body(response))
        details = (self.error_factory(status, endpoint, payload) if self.error_factory else None) or ErrorDetails()
        message = _server_message(payload)  # reused in logs, events, dead letters: redacted, one short line
        message = one_line(self.redactor.text(message), MAX_SERVER_MESSAGE) if message else None
        text = f"{endpoint}: HTTP {status}" + (f": {message}" if message else "")
        if details.hint:
            text += f" ({details.hint})"
        code = self.redactor.text(details.code) if isinstance(details.code, str) else details.code
        cls = details.cls or error_class_for_status(status)
        return cls(self.redactor.text(text), status=status, endpoint=endpoint, server_message=message, code=code)


class ServiceClient:
    """Base of the service clients: each owns one :class:`HttpClient` as ``http``.

    A client's constructor takes ``timeouts``, ``retry`` and ``http`` (an
    :class:`HttpClient` to use instead of building one) and calls :meth:`_connect`;
    ``DEFAULT_TIMEOUTS`` and ``DEFAULT_RETRY`` are the service's defaults, which
    a plugin adjusts (``DEFAULT_RETRY.with_retries(n)``) rather than replaces.
    """

    DEFAULT_TIMEOUTS: ClassVar[Timeouts] = Timeouts()
    DEFAULT_RETRY: ClassVar[RetryPolicy] = RetryPolicy()
    http: HttpClient

    def _connect(
        self,
        base_url: str,
        http: HttpClient | None,
        timeouts: Timeouts | None,
        retry: RetryPolicy | None,
        error_factory: ErrorFactory | None,
        **options: Unpack[ClientOptions],
    ) -> None:
        """Set :attr:`http`: ``http`` if given, else a new client with the service's defaults.

        :param base_url: the service's base URL.
        :param http: an :class:`HttpClient` to use as is.
        :param timeouts: timeouts (default: ``DEFAULT_TIMEOUTS``).
        :param retry: retry policy (default: ``DEFAULT_RETRY``).
        :param error_factory: the service's error table.
        :param options: ``secrets`` and ``headers`` of :class:`HttpClient`.
        """
        self.http = http or HttpClient(
            base_url,
            timeouts=timeouts or self.DEFAULT_TIMEOUTS,
            retry=retry or self.DEFAULT_RETRY,
            error_factory=error_factory,
            **options,
        )

    @property
    def base_url(self) -> str:
        """The service's base URL."""
        return self.http.base_url

    def add_secret(self, value: object) -> None:
        """Mask ``value`` wherever this client could show it (errors, logs, ``repr``).

        :param value: a secret (short or non-string values are ignored).
        """
        self.http.redactor.add(value)

    def redact(self, text: object) -> str:
        """``text`` with every secret known to this client masked.

        :param text: any text (or object, turned into text).
        """
        return self.http.redactor.text(text)

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http.redactor.url(self.base_url)!r})"


def _proxy_reason(exc: requests.exceptions.ProxyError) -> str:
    """What a proxy failure was: the proxy refused the connection, or answered an error to ``CONNECT``."""
    text = str(exc)
    status = re.search(r"Tunnel connection failed: (\d{3}[^'\"),]*)", text)
    if status:
        return f"it answered {one_line(status.group(1), 100)}"
    if _connect_failure(exc) is not None or "Connection refused" in text:
        return "the proxy refused the connection or is unreachable"
    return "the proxy failed or dropped the connection"


def _urlencode(fields: Mapping[str, object]) -> str:
    """``application/x-www-form-urlencoded`` text of ``fields``, ``None`` values left out (as requests does)."""
    return urlencode([(k, v) for k, v in fields.items() if v is not None], doseq=True)


def _session_for(base_url: str) -> requests.Session:
    """A session that reads the environment (proxies, CA bundle) once, here, instead of on
    every request as ``requests`` does by default (a quarter of its per-request time)."""
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


#: The keys of an error object that may hold the server's message, in order.
_MESSAGE_KEYS = ("message", "error_description", "error", "detail", "reason", "type")
#: How deep :func:`_server_message` looks into nested error objects.
_MESSAGE_DEPTH = 4


def _server_message(payload: JSON, depth: int = 0) -> str | None:
    """Best-effort extraction of a human message from an error body (a JSON object, in nested
    objects down to :data:`_MESSAGE_DEPTH` levels, or a text; an HTML page gives its title)."""
    if isinstance(payload, Mapping):
        if depth > _MESSAGE_DEPTH:
            return None
        for key in _MESSAGE_KEYS:
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return value
            if isinstance(value, Mapping):
                nested = _server_message(value, depth + 1)
                if nested:
                    return nested
        return None
    if isinstance(payload, str):
        text = payload.strip()
        if text.startswith("<"):  # an HTML error page
            return html_title(text[:MAX_ERROR_BODY])
        return text[:MAX_ERROR_BODY] or None
    return None


server_message = _server_message
