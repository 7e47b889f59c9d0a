"""Ge.tt's errors: its classes in the bundle's tree (:mod:`platypush_ext.core.errors`), and its
error table.

::

    ServiceError
    └── GettError                   an error answered by Ge.tt, or a failed transfer
        ├── GettAuthError           login failed, or the token refused after a new login (also AuthError)
        ├── GettNotFoundError       no such share, file or blob (also NotFoundError)
        ├── GettBadRequestError     an argument refused by the service (also BadRequestError)
        └── TransferCancelledError  a transfer cancelled by its caller
"""

from __future__ import annotations

from ..core.errors import AuthError, BadRequestError, NotFoundError, ServiceError, error_class_for_status
from ..core.http import ErrorDetails
from ..core.untrusted import JSON


class GettError(ServiceError):
    """An error answered by the Ge.tt service, or a failed transfer."""


class GettAuthError(GettError, AuthError):
    """Login failed, or the service rejected the access token even after a new login."""


class GettNotFoundError(GettError, NotFoundError):
    """The share, file or blob does not exist (or is not uploaded yet)."""


class GettBadRequestError(GettError, BadRequestError):
    """The service rejected an argument."""


class TransferCancelledError(GettError):
    """A transfer was cancelled by its caller."""


_ERROR_CLASSES: dict[type[ServiceError], type[GettError]] = {AuthError: GettAuthError, NotFoundError: GettNotFoundError}


def error_details(status: int, endpoint: str, payload: JSON) -> ErrorDetails | None:
    """The class of an ``{"error": "<message>"}`` answer (5xx and 429 stay generic, hence retried).

    :param status: the answer's status.
    :param endpoint: ``METHOD /path`` of the request.
    :param payload: the answer's decoded JSON.
    """
    message = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(message, str) or status >= 500 or status == 429:
        return None
    return ErrorDetails(_ERROR_CLASSES.get(error_class_for_status(status), GettBadRequestError))
