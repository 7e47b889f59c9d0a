"""The bundle's one exception tree: what every client raises, with the status, endpoint and the
service's own message of an answer; framework-free.

::

    ServiceError                  its text is safe to show: never a secret
    ├── InvalidArgumentError      refused before any request (also a ValueError)
    ├── ServiceConnectionError    not reached, or the connection broke        (transient)
    │   ├── ServiceTimeoutError   no answer in time                            (transient)
    │   └── ServiceTLSError       its certificate refused, or the TLS handshake failed
    ├── ProtocolError             an answer that cannot be understood          (transient)
    └── HTTPStatusError           an error status
        ├── BadRequestError       400 and other 4xx
        ├── AuthError             401, 403
        ├── NotFoundError         404, 410
        ├── ConflictError         409
        ├── RateLimitedError      429                                          (transient)
        └── ServerError           5xx                                          (transient)

A service adds its own classes beside these (``PushjetError``, ``MbedError``, …) and picks one
per answer through its error table (:class:`platypush_ext.core.http.ErrorDetails`).
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadRequestError",
    "ConflictError",
    "HTTPStatusError",
    "InvalidArgumentError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "ServerError",
    "ServiceConnectionError",
    "ServiceError",
    "ServiceTLSError",
    "ServiceTimeoutError",
    "error_class_for_status",
]


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
        code: object = None,
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


class ServiceTLSError(ServiceConnectionError):
    """The service's certificate was not trusted, or the TLS handshake failed: trying again does not
    help until the settings (``verify``, ``client_cert``) or the server change."""

    transient = False


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
