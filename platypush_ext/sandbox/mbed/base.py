"""What every section of the mbed sandbox shares: the options it was started with, its lock
and background threads, the error answers of both dialects, the recorded exchanges."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core import Request, Response, SandboxServer, json_response, text_response

if TYPE_CHECKING:
    from ..core import _RequestHandler

#: The ``type`` of Pelion's ``ErrorResponse`` by status.
ERROR_TYPES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "gone",
    412: "precondition_failed",
    429: "too_many_requests",
}


@dataclass(frozen=True)
class Exchange:
    """One API request and its answer, as recorded with ``record=True``."""

    method: str
    path: str  # as sent (percent-encoded)
    query: dict[str, str]
    request_type: str
    request_body: bytes
    status: int  # 101: a WebSocket upgrade; 0: a message the service pushed (method ``MESSAGE``)
    response_type: str
    response_body: bytes


def pelion_error(status: int, kind: str, message: str) -> Response:
    """An ``ErrorResponse`` of Pelion's schema.

    :param status: the HTTP status.
    :param kind: its ``type`` (see :data:`ERROR_TYPES`).
    :param message: its ``message``.
    """
    return json_response(
        {
            "object": "error",
            "code": status,
            "type": kind,
            "message": message,
            "request_id": uuid.uuid4().hex,
            "fields": [],
        },
        status,
    )


def flag(value: str | None) -> bool:
    """A query's boolean parameter (``noResp=true``)."""
    return str(value).lower() == "true"


class MbedBase(SandboxServer):
    """The state every section of :class:`~platypush_ext.sandbox.mbed.MbedServer` uses: its
    options (set by its constructor), the condition that guards the devices and the queue, the
    background threads."""

    #: ``api="pelion"``: only what the published Pelion / Izuma API has
    pelion: bool
    #: the access key accepted as ``Authorization: Bearer <key>``
    api_key: str
    #: how long a long poll is held before ``204``
    pull_timeout: float
    #: cap (seconds) of the callback delivery backoff
    callback_retry_max: float
    #: seconds between two changes of the demo temperature (``0`` = never)
    auto_change: float
    #: with ``record``: one :class:`Exchange` per API request
    exchanges: list[Exchange] | None

    #: service seconds → real seconds (queued requests' ``expiry-seconds``; ``0.01`` in tests)
    time_scale: float
    #: the least seconds between a device request's ``202`` and the device's answer (a network round trip)
    round_trip: float

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._after = threading.local()  # what runs once the current request's answer is written
        self._cond = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        super().__init__(host, port)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def after_response(self, job: Callable[[], None]) -> None:
        """Run ``job`` once the answer of the request being handled is written (a device's answer
        comes a round trip after the ``202``, never before it); outside a request, in a new thread.

        :param job: what to run.
        """
        pending: list[Callable[[], None]] | None = getattr(self._after, "jobs", None)
        if pending is None:
            threading.Thread(target=job, name="mbed-answer", daemon=True).start()
        else:
            pending.append(job)

    def _handle(self, handler: _RequestHandler) -> None:
        """Serve one request (paths normalised: ``//`` is ``/``, as the service's front end does), then
        run what waits for its answer to be written (:meth:`after_response`)."""
        target, sep, query = handler.path.partition("?")
        handler.path = re.sub(r"/{2,}", "/", target) + sep + query
        self._after.jobs = []
        try:
            super()._handle(handler)
        finally:
            jobs, self._after.jobs = self._after.jobs, None
            for job in jobs:
                job()

    def _authorized(self, request: Request) -> bool:
        return not self.credentials_revoked and request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    def refused(self, request: Request) -> Response | None:
        return None  # the key is checked by each route (_authorized, _ws_key_ok): a revoked one fails there

    def _fail(self, text: str, status: int) -> Response:
        """An error answer: plain text on the Connector, an ``ErrorResponse`` object in Pelion mode."""
        if self.pelion:
            return pelion_error(status, ERROR_TYPES.get(status, "error"), text)
        return _plain(text, status)


def _plain(text: str, status: int) -> Response:
    return text_response(text, status, "text/plain")
