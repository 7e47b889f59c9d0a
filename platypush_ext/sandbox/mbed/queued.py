"""Queued device requests and the device lifecycle of the mbed sandbox, as the 2019-11 API file
describes them (``POST /v2/device-requests/{device-id}``, ``/v3/devices/{id}/suspend``).

A request for a device that cannot answer now — asleep (``asleep``), already holding queued requests,
or failing deliveries (``drops``) — waits in the device's queue (at most 20): it is delivered in
order, one at a time, when the device is awake (or contacts the service: a registration update).
Each delivery counts one attempt (:attr:`MbedQueue.attempts`); a failed one is tried again while
attempts ≤ ``retry``, then the request ends with ``504 TIMEOUT``. A request still queued when its
``expiry-seconds`` pass ends with ``429 REQUEST_EXPIRED``; one for a suspended device with ``429
DEVICE_BLOCKED``. Those errors are ``AsyncIDResponse`` elements on the notification channel.
``time_scale`` shortens the service's seconds for tests (``0.01``: the 60-s minimum lasts 0.6 s).
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from ...core.untrusted import JSONObject
from ..core import Request, Response
from .devices import Device, MbedDevices

#: The published bounds of ``retry`` and ``expiry-seconds``.
RETRY, EXPIRY = (0, 10), (60, 2_592_000)
#: The service's defaults: (non-queue-mode device, queue-mode device).
DEFAULT_RETRY, DEFAULT_EXPIRY = (0, 2), (7200, 3 * 86400)
#: The most requests queued for one device (the service answers ``400 QUEUE_IS_FULL`` beyond).
QUEUE_LIMIT = 20
CATEGORY_RE = re.compile(r"[a-z0-9_]{1,32}")


@dataclass
class Queued:
    """One device request waiting in its device's queue."""

    async_id: str
    action: Callable[[], JSONObject]
    retry: int
    expires: float  # time.monotonic()
    attempts: int = 0
    accepted: bool = False  # its 202 was written: only then can it reach the device


def _error(async_id: str, status: int, error: str) -> JSONObject:
    return {"id": async_id, "status": status, "error": error, "ct": "text/plain", "max-age": 0}


class MbedQueue(MbedDevices):
    """Device requests queued with ``retry`` / ``expiry-seconds``; suspension and return to service."""

    #: service seconds → real seconds (``expiry-seconds`` and the queue's timing)
    time_scale: float

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.queues: dict[str, list[Queued]] = {}
        #: delivery attempts of the newest queued requests, by async id (the last 1,000)
        self.attempts: OrderedDict[str, int] = OrderedDict()
        super().__init__(host, port)

    # -- requests --------------------------------------------------------------

    def queue_params(self, query: dict[str, str]) -> tuple[int | None, int | None]:
        """``retry`` and ``expiry-seconds`` of a query (``None``: not given); ``ValueError`` out of bounds."""
        values: list[int | None] = []
        for name, (low, high) in (("retry", RETRY), ("expiry-seconds", EXPIRY)):
            text = query.get(name)
            if text is not None and not (re.fullmatch(r"\d{1,9}", text) and low <= int(text) <= high):
                raise ValueError(name)
            values.append(None if text is None else int(text))
        return values[0], values[1]

    def must_queue(self, device: Device) -> bool:
        """Whether a request for ``device`` waits in its queue rather than going out at once."""
        return device.asleep or device.drops > 0 or device.suspended or bool(self.queues.get(device.name))

    def queue_request(
        self,
        device: Device,
        async_id: str,
        action: Callable[[], JSONObject],
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> bool:
        """Queue a request (call with the condition held); ``False`` when the queue is full.

        :param device: its device.
        :param async_id: the id its answer carries.
        :param action: what the device does; returns the async-response fields.
        :param retry: its ``retry`` (``None``: the service's default).
        :param expiry_seconds: its ``expiry-seconds`` (``None``: the service's default).
        """
        queue = self.queues.setdefault(device.name, [])
        if len(queue) >= QUEUE_LIMIT:
            return False
        mode = int(device.queue_mode)
        retry = DEFAULT_RETRY[mode] if retry is None else retry
        expiry = DEFAULT_EXPIRY[mode] if expiry_seconds is None else expiry_seconds
        item = Queued(async_id, action, retry, time.monotonic() + expiry * self.time_scale)
        queue.append(item)
        self.after_response(functools.partial(setattr, item, "accepted", True))
        if not any(t.name == "mbed-queue" for t in self._threads):
            self._spawn(self._queue_loop, "mbed-queue")
        self._cond.notify_all()
        return True

    def _queue_loop(self) -> None:
        """Expires, refuses (suspended) and delivers queued requests, every 20 ms (service time scaled)."""
        while not self._stopping.wait(0.02):
            with self._cond:
                for name in list(self.queues):
                    device = self.devices.get(name)
                    self._serve_queue(name, device)
                    if not self.queues.get(name):
                        self.queues.pop(name, None)
                        if device is not None:
                            device.contact = False

    def _serve_queue(self, name: str, device: Device | None) -> None:
        """One pass over one device's queue (the condition held)."""
        queue, now = self.queues[name], time.monotonic()
        for item in [q for q in queue if q.expires <= now or device is None or device.suspended]:
            queue.remove(item)
            error = "REQUEST_EXPIRED" if item.expires <= now or device is None else "DEVICE_BLOCKED"
            self._answer_queued(_error(item.async_id, 429, error))
        if not queue or device is None or not device.registered or (device.asleep and not device.contact):
            return
        head = queue[0]  # one at a time, in order
        if not head.accepted:
            return
        head.attempts += 1
        self.attempts[head.async_id] = head.attempts
        while len(self.attempts) > 1000:
            self.attempts.popitem(last=False)
        if device.drops > 0:  # this delivery fails: tried again while retries are left
            device.drops -= 1
            if head.attempts <= head.retry:
                return
            queue.pop(0)
            self._answer_queued(_error(head.async_id, 504, "TIMEOUT"))
            return
        queue.pop(0)
        self._answer_queued({"id": head.async_id, **head.action()})

    def _answer_queued(self, element: JSONObject) -> None:
        self.transactions += 1
        self.enqueue("async-responses", element)

    # -- lifecycle ---------------------------------------------------------------

    def lifecycle_routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        """The routes of the 2019-11 file's device lifecycle (Pelion mode)."""
        return [
            ("POST", r"/v3/devices/(?P<ep>[^/]+)/suspend", self._suspend),
            ("POST", r"/v3/devices/(?P<ep>[^/]+)/resume", self._resume),
        ]

    def _suspend(self, request: Request) -> Response:
        return self._block(request, True)

    def _resume(self, request: Request) -> Response:
        return self._block(request, False)

    def _block(self, request: Request, suspend: bool) -> Response:
        """``POST /v3/devices/{id}/suspend`` or ``/resume``: ``204``; ``400`` for a bad ``Block``, ``404``."""
        try:
            block = request.json()
            if not isinstance(block, dict) or set(block) - {"category", "description"}:
                raise ValueError("not a Block")
            if not isinstance(block.get("category"), str) or not CATEGORY_RE.fullmatch(block["category"]):
                raise ValueError("category")
            description = block.get("description", "")
            if not isinstance(description, str) or len(description) > 2000:
                raise ValueError("description")
        except (ValueError, TypeError):
            return self._fail("Bad request: a Block {category, description} is required", 400)
        with self._cond:
            device = self.devices.get(request.params["ep"])
            if device is None:
                return self._fail("Not found - Could not find device", 404)
            device.operator_suspended = suspend
            device.suspension = {
                "last_operator_suspended_description": description,
                "last_operator_suspended_updated_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            }
            self._cond.notify_all()
        return Response(204)

    def queue_state(self) -> JSONObject:
        """What the control API shows of the queues: requests queued by device, attempts by async id."""
        with self._cond:
            queued = {name: [q.async_id for q in queue] for name, queue in self.queues.items() if queue}
            attempts = dict(itertools.islice(reversed(self.attempts.items()), 100))
        return {"queued_requests": queued, "attempts": attempts, "time_scale": self.time_scale}


def state_filters(query: dict[str, str]) -> list[Callable[[JSONObject], bool]]:
    """The lifecycle filters of ``GET /v3/devices/`` that the sandbox applies (``lifecycle_status__eq``,
    ``operator_suspended__eq``, ``system_suspended__eq``, and their ``__neq``).

    :param query: the request's query.
    """
    filters: list[Callable[[JSONObject], bool]] = []
    for key in ("lifecycle_status", "operator_suspended", "system_suspended"):
        for op, same in (("eq", True), ("neq", False)):
            if f"{key}__{op}" in query:
                wanted = query[f"{key}__{op}"]
                filters.append(functools.partial(_matches, key, wanted.lower(), same))
    return filters


def _matches(key: str, wanted: str, same: bool, device: JSONObject) -> bool:
    return (str(device.get(key)).lower() == wanted) == same
