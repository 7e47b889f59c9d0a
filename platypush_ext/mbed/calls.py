"""Device calls (framework-free): the requests whose answer a device sends later, on the notification
channel. :class:`DeviceCalls` waits for the consumer's channel while it starts (a ``412 No notification
channel`` is tried again meanwhile), reads the ``async-response-id`` of a ``202``, and waits for the
answer (:class:`~platypush_ext.mbed.registry.AsyncRegistry`) within the caller's whole timeout.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import requests

from ..core.http import HttpClient, parse_json
from ..core.text import one_line
from .errors import STATUS_MEANINGS, DeviceError, DeviceTimeoutError, NoChannelError
from .messages import AsyncResponse
from .models import async_response_id
from .registry import AsyncRegistry

#: What a device request gives back: the device's answer, the async id (``wait=False``) or ``None``
#: (nothing to wait for, e.g. ``noResp``).
Answer = AsyncResponse | str | None


class ChannelGate(Protocol):
    """What device calls wait for: the channel that consumes the notifications (a
    :class:`~platypush_ext.mbed.channels.Channel`, or the plugin's own gate)."""

    def wait_ready(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the channel to exist on the service; whether it does."""
        ...

    def why_down(self) -> str | None:
        """Why the channel does not run (one line), or ``None`` while it runs or starts."""
        ...


@dataclass(frozen=True)
class ResourceRequest:
    """One request to a device's resource, its arguments checked.

    :ivar method: ``GET``, ``PUT``, ``POST`` or ``DELETE``.
    :ivar endpoint: the endpoint name, as the caller gave it.
    :ivar path: the resource path (with Pelion's notification rules: and their query).
    :ivar what: the call in one line, for errors (``GET node-001/3303/0/5700``).
    :ivar limit: the most seconds the whole call may take.
    :ivar started: ``time.monotonic()`` when the call began.
    :ivar body: what to send (``None``: no body).
    :ivar content_type: the body's MIME type.
    :ivar no_resp: ``noResp=true``: the device answers nothing.
    :ivar cache_only: ``cacheOnly=true``: the service's cache, never the device.
    :ivar wait: wait for the device's answer (else the async id is returned at once).
    :ivar retry: Pelion / Izuma: the device request's ``retry`` (``None``: the service's default).
    :ivar expiry_seconds: Pelion / Izuma: its ``expiry-seconds`` (``None``: the service's default).
    """

    method: str
    endpoint: str
    path: str
    what: str
    limit: float
    started: float
    body: bytes | None = None
    content_type: str = "text/plain"
    no_resp: bool = False
    cache_only: bool = False
    wait: bool = True
    retry: int | None = None
    expiry_seconds: int | None = None

    def queue_params(self) -> dict[str, str]:
        """The queueing parameters of ``POST /v2/device-requests`` that are set (``retry``, ``expiry-seconds``)."""
        given = (("retry", self.retry), ("expiry-seconds", self.expiry_seconds))
        return {name: str(value) for name, value in given if value is not None}


class DeviceCalls:
    """Sends device requests and waits for their answers.

    :param http: the client's connection.
    :param registry: where the channel's async responses arrive.
    :param gate: the channel device calls wait for (``None``: nobody here consumes one).
    :param consumed: whether someone consumes the channel (a timeout's message says so otherwise).
    """

    #: Pauses between two tries of a request answered ``412 No notification channel`` while the channel starts.
    NO_CHANNEL_PAUSES = (0.1, 0.2, 0.4, 0.8, 1.0)

    def __init__(
        self,
        http: HttpClient,
        registry: AsyncRegistry,
        gate: Callable[[], ChannelGate | None],
        consumed: Callable[[], bool],
    ):
        self.http, self.registry, self._gate, self._consumed = http, registry, gate, consumed

    def with_channel(self, send: Callable[[], requests.Response], limit: float, started: float) -> requests.Response:
        """``send()`` a request that needs the notification channel. While the consumer's channel is
        starting, it is waited for (within ``limit`` seconds from ``started``), and a ``412 No notification
        channel`` is tried again; a ``412`` while the channel is really down says why, in one line.

        :param send: sends the request.
        :param limit: the most seconds the whole call may take.
        :param started: ``time.monotonic()`` when the call began.
        """
        gate = self._gate()
        if gate is not None and gate.why_down() is None:
            gate.wait_ready(max(0.0, limit - (time.monotonic() - started)))
        for attempt in itertools.count():
            try:
                return send()
            except NoChannelError as exc:
                if gate is None:  # nobody here consumes a channel: the service's answer says it all
                    raise
                pause = self.NO_CHANNEL_PAUSES[min(attempt, len(self.NO_CHANNEL_PAUSES) - 1)]
                why = gate.why_down()
                if why is None and limit - (time.monotonic() - started) <= pause:
                    why = f"the notification channel was not ready within {limit:g} s"
                if why is not None:
                    raise NoChannelError(
                        one_line(f"{exc}; {why}"),
                        status=exc.status,
                        endpoint=exc.endpoint,
                        server_message=exc.server_message,
                        code=exc.code,
                    ) from None
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count() never ends

    def answer(
        self, response: requests.Response, what: str, limit: float, started: float, wait: bool
    ) -> AsyncResponse | str | None:
        """After a device request: ``None`` unless the service answered ``202 {"async-response-id"}``;
        then the device's answer (``wait``), else the async id.

        :param response: the service's answer.
        :param what: the call in one line, for errors.
        :param limit: the most seconds the whole call may take.
        :param started: ``time.monotonic()`` when the call began.
        :param wait: wait for the device's answer.
        """
        if response.status_code != 202:
            return None
        endpoint = self.http.endpoint(response.request.method or "", response.url)
        body = parse_json(response, endpoint, self.http.redactor)
        async_id = self.http.parsed(body, async_response_id, endpoint, response.status_code)
        self.registry.expect(async_id)  # picks an answer that came before the 202
        if not wait:  # forgotten here: the answer arrives as an event (keeping it leaked one entry per call)
            self.registry.wait(async_id, 0)
            return async_id
        return self.await_answer(async_id, what, limit, started)

    def await_answer(self, async_id: str, what: str, limit: float, started: float) -> AsyncResponse:
        """Wait for the async response: ``limit`` bounds the whole call from ``started``, the request
        included, so that an action that asked for at most 55 s answers within Platypush's 60 s
        however slow the request was.

        :raises DeviceTimeoutError: no answer in time.
        :raises DeviceError: the device answered an error status.
        """
        response = self.registry.wait(async_id, max(0.0, limit - (time.monotonic() - started)))
        if response is None:
            hint = "" if self._consumed() else " (is the notification channel being consumed?)"
            raise DeviceTimeoutError(f"{what}: no answer from the device within {limit:g} s{hint}", endpoint=what)
        if not response.ok:
            meaning = STATUS_MEANINGS.get(response.status, "")
            text = f"{what}: the device answered {response.status}"
            if response.error:
                text += f" {response.error}"
            if meaning:
                text += f" ({meaning})"
            raise DeviceError(
                self.http.redactor.text(text),
                status=response.status,
                endpoint=what,
                server_message=response.error,
                code=response.error,
            )
        return response
