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
* secrets (keys, passwords, tokens) masked in every URL, log line and message.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import functools
import logging
import math
import os
import re
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from .backoff import exponential_delay

__all__ = [
    "AuthError",
    "BadRequestError",
    "ConflictError",
    "ErrorDetails",
    "HttpClient",
    "HTTPStatusError",
    "InvalidArgumentError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "RetryPolicy",
    "Redactor",
    "ServiceClient",
    "ServerError",
    "ServiceConnectionError",
    "ServiceError",
    "ServiceTimeoutError",
    "Timeouts",
    "error_payload",
    "html_title",
    "one_line",
    "parse_json",
    "server_message",
]

logger = logging.getLogger("platypush_ext.http")

MASK = "***"

#: Parameter and header names whose values are always secrets.
SECRET_NAMES = frozenset(
    {
        "secret",
        "secret_key",
        "api_key",
        "apikey",
        "x-api-key",
        "password",
        "token",
        "accesstoken",
        "access_token",
        "refreshtoken",
        "refresh_token",
        "authorization",
        "proxy-authorization",
        "sig",
        "signature",
    }
)
#: A signed URL's signature wherever it appears in free text (``...?sig=<value>``): masked by its
#: name, as the values of a long run's many signed URLs are not kept (each new one rebuilt the pattern).
_SIGNATURE_RE = re.compile(r"(?<![\w-])((?:sig|signature)=)[^&\s\"'<>]+", re.IGNORECASE)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class ServiceError(Exception):
    """Base class of every error raised by a platypush-ext client.

    Its text is safe to show: it never contains a secret.

    :ivar status: HTTP status of the answer, if there was one.
    :ivar endpoint: ``METHOD /path`` of the request (secrets masked).
    :ivar server_message: the service's own explanation, if it gave one.
    :ivar code: the service's own error code, if it gave one.
    """

    #: Whether trying again later may succeed (used by listeners and retries).
    transient = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        endpoint: str | None = None,
        server_message: str | None = None,
        code: Any = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.endpoint = endpoint
        self.server_message = server_message
        self.code = code


class InvalidArgumentError(ServiceError, ValueError):
    """An argument was rejected before any request was made."""


class ServiceConnectionError(ServiceError):
    """The service could not be reached, or the connection broke."""

    transient = True


class ServiceTimeoutError(ServiceConnectionError):
    """The service did not answer in time."""


class ProtocolError(ServiceError):
    """The service answered something that could not be understood."""

    transient = True


class HTTPStatusError(ServiceError):
    """The service answered with an error status."""


class BadRequestError(HTTPStatusError):
    """The service rejected the request (400 and other 4xx)."""


class AuthError(HTTPStatusError):
    """Missing or wrong credentials (401/403)."""


class NotFoundError(HTTPStatusError):
    """The resource does not exist (404/410)."""


class ConflictError(HTTPStatusError):
    """The request conflicts with the resource's state (409)."""


class RateLimitedError(HTTPStatusError):
    """The service asks to slow down (429)."""

    transient = True


class ServerError(HTTPStatusError):
    """The service failed (5xx)."""

    transient = True


_STATUS_ERRORS: dict[int, type[HTTPStatusError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    410: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}


def error_class_for_status(status: int) -> type[HTTPStatusError]:
    """The :class:`HTTPStatusError` subclass that stands for ``status``."""
    if status >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status, BadRequestError)


# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------


class Redactor:
    """Masks secrets in URLs and free text.

    It knows secret *names* (query parameters such as ``secret`` or ``api_key``)
    and secret *values* (registered with :meth:`add`, e.g. a token obtained at
    run time); every occurrence of a known value is masked wherever it appears.
    """

    def __init__(self, secrets: Iterable[str | None] = ()):
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._longest_first: tuple[str, ...] = ()
        for value in secrets:
            self.add(value)

    def add(self, value: Any) -> None:
        """Register a secret value (short or empty values are ignored)."""
        if not isinstance(value, str) or len(value) < 4:
            return
        with self._lock:
            forms = {value, quote(value, safe=""), quote_plus(value, safe="")} - self._values  # as in URLs
            if forms:
                self._values |= forms
                self._longest_first = tuple(sorted(self._values, key=len, reverse=True))

    def add_from(self, mapping: Mapping[str, Any] | None) -> None:
        """Register the values of the secret-named keys of ``mapping``."""
        if not isinstance(mapping, Mapping):
            return
        for key, value in mapping.items():
            if str(key).lower() in SECRET_NAMES:
                self.add(value)

    def text(self, text: Any) -> str:
        """``text`` with every known secret value and every URL signature (``sig=…``) masked."""
        text = _SIGNATURE_RE.sub(r"\1" + MASK, str(text))
        # only the secrets the text holds go into the pattern: a client that learnt many (a service
        # created per call, a token per login) does not pay for all of them on every line
        present = [value for value in self._longest_first if value in text]
        if not present:
            return text
        if len(present) == 1:
            return text.replace(present[0], MASK)
        return re.sub("|".join(re.escape(v) for v in present), MASK, text)

    def url(self, url: str) -> str:
        """``url`` with secret query parameters and known secret values masked."""
        parts = urlsplit(url)
        if parts.query:
            query = [
                (k, MASK if k.lower() in SECRET_NAMES else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ]
            parts = parts._replace(query=urlencode(query, safe="*"))
        if parts.password:
            parts = parts._replace(netloc=parts.netloc.replace(parts.password, MASK))
        return self.text(urlunsplit(parts))


# --------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts, in seconds."""

    connect: float = 5.0
    read: float = 15.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


#: Methods replayed after they may have reached the server (as urllib3's ``Retry.DEFAULT_ALLOWED_METHODS``).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried; immutable (adjust a copy with :meth:`replace`).

    An attempt is retried when its error is transient (connection errors,
    timeouts, 429, 5xx: :attr:`ServiceError.transient`), the request may be
    replayed (its method is in ``methods``, or it certainly did not reach the
    server), attempts are left and the delay fits in the budget.

    :ivar attempts: total attempts (1 = no retry).
    :ivar backoff: base delay; attempt *n* waits up to ``backoff * 2**n``.
    :ivar backoff_max: cap of one delay (also caps ``Retry-After``).
    :ivar budget: no retry starts after this many seconds since the first
        attempt, so that a call answers well within Platypush's 60 s limit.
    :ivar methods: methods replayed even after they may have reached the server.
    :ivar respect_retry_after: wait what a ``Retry-After`` header asks (capped).
    """

    attempts: int = 3
    backoff: float = 0.5
    backoff_max: float = 10.0
    budget: float = 30.0
    methods: frozenset[str] = IDEMPOTENT_METHODS
    respect_retry_after: bool = True

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with ``changes`` (the fields above) applied.

        :param changes: field values, e.g. ``attempts=4``.
        """
        return dataclasses.replace(self, **changes)

    def with_retries(self, retries: int) -> RetryPolicy:
        """A copy that retries ``retries`` times (a plugin's ``retries`` setting).

        :param retries: retries after the first attempt (0 = none).
        """
        return self.replace(attempts=max(1, int(retries) + 1))

    def is_idempotent(self, method: str) -> bool:
        """Whether a ``method`` request may be replayed after it may have reached the server.

        :param method: the HTTP method, upper case.
        """
        return method in self.methods

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based).

        :param attempt: how many retries came before.
        :param retry_after: what the server's ``Retry-After`` asked, if anything.
        """
        if retry_after is not None and self.respect_retry_after:
            return min(max(retry_after, 0.0), self.backoff_max)
        return exponential_delay(self.backoff, self.backoff_max, attempt)

    def next_delay(
        self, error: ServiceError, *, failures: int, elapsed: float, replayable: bool, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when ``error`` is final.

        :param error: what the last attempt failed with.
        :param failures: attempts made so far (all failed).
        :param elapsed: seconds since the first attempt started.
        :param replayable: whether the request may be sent again (see the class).
        :param retry_after: the answer's ``Retry-After``, in seconds.
        """
        if not (error.transient and replayable) or failures >= self.attempts:
            return None
        delay = self.delay(failures - 1, retry_after)
        return delay if elapsed + delay <= self.budget else None


@dataclass(frozen=True)
class ErrorDetails:
    """What a service adds to an error answer; :class:`HttpClient` builds the error.

    :ivar cls: the exception class (default: the generic one for the status).
    :ivar hint: a short advice appended in parentheses.
    :ivar code: the service's own error code.
    """

    cls: type[ServiceError] | None = None
    hint: str | None = None
    code: Any = None


#: A service's error table: ``(status, endpoint, payload)`` to :class:`ErrorDetails`,
#: or ``None`` for the generic class of the status.
ErrorFactory = Callable[[int, str, Any], "ErrorDetails | None"]


def parse_json(response: requests.Response, endpoint: str, redactor: Redactor) -> Any:
    """The JSON body of ``response`` (whatever its content type), read as untrusted input
    (:func:`platypush_ext.untrusted.loads`: UTF-8, as RFC 8259 requires): a body that is not
    JSON, not UTF-8 or nested too deeply is a one-line :class:`ProtocolError`, secrets masked."""
    from . import untrusted  # it builds on this module's errors

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


def error_payload(body: bytes) -> Any:
    """What an error answer says, for :func:`server_message` and the services' error tables: its
    JSON; else its text (an HTML page, a plain sentence); ``None`` when it is neither (not UTF-8,
    JSON too deep to read, a truncated JSON text)."""
    from . import untrusted

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


def _tell(data: Any) -> int | None:
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
    ):
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/]+", base_url):
            raise InvalidArgumentError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeouts = timeouts
        self.retry = retry
        self.redactor = Redactor(secrets)
        _redact_urllib3_logs(self.redactor)
        self.error_factory = error_factory
        self._owns_session = session is None
        self.session = session or _session_for(self.base_url)
        self.session.headers["User-Agent"] = "platypush-ext"
        if headers:
            self.session.headers.update(headers)
            self.redactor.add_from(headers)

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
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        json_body: Any = None,
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

    def _with_retries(self, send: Callable[[], requests.Response], exchange: _Exchange, data: Any) -> requests.Response:
        """``send()`` until it succeeds or the policy says the error is final."""
        started, failures = time.monotonic(), 0
        body_start = _tell(data)  # a file-like body is rewound before each retry (as requests does on redirects)
        while True:
            if failures and body_start is not None:
                data.seek(body_start)
            response, error, replayable, retry_after = self._attempt(send, exchange, started)
            if response is not None:
                return response
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
    ) -> tuple[Any, Any, bool, float | None]:
        """One attempt: ``(response, None, …)`` on success, else ``(None, error, replayable, retry_after)``."""
        try:
            response = send()
        except requests.RequestException as exc:
            error = self._transport_error(exc, exchange.endpoint, exchange.timeout)
            return None, error, exchange.idempotent or _never_connected(exc), None
        logger.debug(
            "%s -> %s in %.0f ms", exchange.endpoint, response.status_code, (time.monotonic() - started) * 1000
        )
        if response.status_code < 400:
            return response, None, True, None
        error, retry_after = self._status_error(response, exchange.endpoint), _retry_after(response)
        response.close()
        return None, error, exchange.idempotent, retry_after

    def request_json(self, method: str, path: str, *, parse: Callable[[Any], Any] | None = None, **kwargs: Any) -> Any:
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

    def parsed(self, data: Any, parse: Callable[[Any], Any], endpoint: str, status: int | None = None) -> Any:
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
        **options: Any,
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

    def add_secret(self, value: Any) -> None:
        """Mask ``value`` wherever this client could show it (errors, logs, ``repr``).

        :param value: a secret (short or non-string values are ignored).
        """
        self.http.redactor.add(value)

    def redact(self, text: Any) -> str:
        """``text`` with every secret known to this client masked.

        :param text: any text (or object, turned into text).
        """
        return self.http.redactor.text(text)

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.http.redactor.url(self.base_url)!r})"


def _urlencode(fields: Mapping[str, Any]) -> str:
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


#: Longest error text the bundle shows or logs (see :func:`one_line`).
MAX_ERROR_LENGTH = 500

_HTML_RE = re.compile(r"<(?:!doctype|html|head|body|title)\b", re.I)
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
# C0/C1 controls, DEL, line/paragraph separators, the bidirectional marks, embeddings and overrides,
# and lone surrogates (a str holds no other surrogate; escaped, the text is valid Unicode)
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


#: How far into an HTML page its ``<title>`` is looked for.
_TITLE_WINDOW = 8192


def html_title(text: str) -> str | None:
    """The ``<title>`` of an HTML page (looked for in its first 8 KiB), whitespace collapsed
    (``None`` without one)."""
    match = _TITLE_RE.search(text[:_TITLE_WINDOW])
    title = " ".join(match.group(1).split()) if match else ""
    return title or None


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")


def one_line(text: Any, limit: int = MAX_ERROR_LENGTH) -> str:
    """``text`` made safe to answer and log: one line of at most ``limit`` characters.

    An HTML page in it (a service's or a proxy's error page) is reduced to its
    title; control characters (CR, LF, NUL, bidirectional overrides…) are
    escaped (``\\n``, ``\\x00``, ``\\u202e``); a longer text keeps its start and
    its end around a note of how much was left out.
    """
    text = str(text)
    html = _HTML_RE.search(text)
    if html:
        title = html_title(text[html.start() : html.start() + 65536])
        text = text[: html.start()].rstrip() + (f" [HTML page: {title}]" if title else " [an HTML page]")
    size, window = len(text), 4 * limit  # no need to escape what will be left out
    if size > 2 * window:
        text = text[:window] + text[-window:]
    text = _CONTROL_RE.sub(_escape, text)
    if len(text) <= limit:
        return text
    note = f" …[{size:,} characters, abbreviated]… "
    head = max(0, limit - len(note)) * 3 // 4
    tail = max(0, limit - len(note) - head)
    return text[:head] + note + (text[-tail:] if tail else "")


#: The keys of an error object that may hold the server's message, in order.
_MESSAGE_KEYS = ("message", "error_description", "error", "detail", "reason", "type")
#: How deep :func:`_server_message` looks into nested error objects.
_MESSAGE_DEPTH = 4


def _server_message(payload: Any, depth: int = 0) -> str | None:
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
