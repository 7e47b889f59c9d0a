"""The errors of the mbed service and its devices, and the table that picks one per answer.

::

    MbedError (ServiceError)
    ├── NoChannelError        + BadRequestError        412 No notification channel
    ├── EndpointGoneError     + NotFoundError          410 (or 404) on a device request
    ├── NoCacheError          + NotFoundError          205 with cacheOnly=true
    ├── QueueModeError        + ConflictError          409 on a device request
    ├── DeviceError                                    the device answered an error status
    ├── DeviceTimeoutError    + ServiceTimeoutError    no asynchronous answer in time
    ├── NotInThisApiError     + InvalidArgumentError   the configured API has no such operation
    └── ChannelConflictError  + BadRequestError        another channel type holds the account
"""

from __future__ import annotations

from ..core.errors import (
    BadRequestError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    ServiceError,
    ServiceTimeoutError,
)
from ..core.http import ErrorDetails
from ..core.http import server_message as http_server_message
from ..core.untrusted import JSON

#: Readable meanings of the statuses of resource and subscription calls (Connector docs).
STATUS_MEANINGS = {
    205: "no cached value is available (cacheOnly=true)",
    400: "bad request",
    404: "the endpoint or resource was not found",
    409: "conflict: the endpoint is in queue mode and cannot answer synchronously, or noResp is not supported",
    410: "gone: the endpoint is not registered",
    412: "precondition failed (is there a notification channel? is the resource observable?)",
    413: "request entity too large or precondition failed",
    415: "the endpoint does not support this media type",
    429: "busy: another request for this endpoint is in progress, or its queue is full",
    502: "the connection to the endpoint cannot be established",
    503: "the endpoint is currently unavailable",
    504: "the endpoint did not answer in time",
}

#: The paths of device requests, whose statuses mean what :data:`STATUS_MEANINGS` says.
DEVICE_PATHS = ("/v2/endpoints/", "/v2/subscriptions/", "/device-requests/")


class MbedError(ServiceError):
    """An error answered by the mbed service or by a device."""


class NoChannelError(MbedError, BadRequestError):
    """No notification channel exists (``412 No notification channel``)."""


class EndpointGoneError(MbedError, NotFoundError):
    """The endpoint is not registered (``410``) or the resource is unknown (``404``)."""


class NoCacheError(MbedError, NotFoundError):
    """``cacheOnly=true`` and the service has no cached value (``205``)."""


class QueueModeError(MbedError, ConflictError):
    """The endpoint is in queue mode (``409``)."""


class DeviceError(MbedError):
    """The device answered an asynchronous request with an error status.

    :ivar status: the async response's status; ``code`` holds its ``error`` text.
    """


class DeviceTimeoutError(MbedError, ServiceTimeoutError):
    """No asynchronous answer arrived in time."""


class NotInThisApiError(MbedError, InvalidArgumentError):
    """The configured API (``connector`` or ``pelion``) has no such operation; nothing was sent."""


class ChannelConflictError(MbedError, BadRequestError):
    """Another notification channel type is registered and could not be removed (Pelion / Izuma)."""


def error_details(status: int, endpoint: str, payload: JSON) -> ErrorDetails | None:
    """The mbed error table (:data:`~platypush_ext.core.http.ErrorFactory`): the classes and meanings
    of device answers (plain text on the Connector, JSON on Pelion).

    :param status: the answer's status.
    :param endpoint: ``METHOD /path`` of the request.
    :param payload: the answer's body.
    """
    server_message = http_server_message(payload) or ""
    if status == 412 and "channel" in server_message.lower():
        return ErrorDetails(NoChannelError, "start the notification channel: long poll, callback or WebSocket")
    if not any(p in endpoint for p in DEVICE_PATHS):
        return None
    if status in (404, 410) or server_message in ("DEVICE_NOT_FOUND", "RESOURCE_NOT_FOUND"):
        cls: type[ServiceError] | None = EndpointGoneError
    else:
        cls = QueueModeError if status == 409 else None
    return ErrorDetails(cls, STATUS_MEANINGS.get(status))
