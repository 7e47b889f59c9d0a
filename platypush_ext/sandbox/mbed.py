"""A local mbed Device Connector (REST API v2) server, faithful to ``protocols/mbed.md``.

What it reproduces:

* Bearer-key authentication on every API route (``401 Unauthorized`` otherwise);
* ``GET /``, ``/rest-versions``, ``/v2/limits``, ``/v2/endpoints[?type=]``,
  ``/v2/endpoints/{ep}`` (also unversioned, as "unversioned = latest");
* resource ``GET``/``PUT``/``POST``/``DELETE`` answering ``202
  {"async-response-id"}`` with the result delivered later on the notification
  channel (base64 payload), ``200`` from the cache, ``205`` with
  ``cacheOnly``, ``204`` with ``noResp``, ``409`` for ``noResp`` on queue-mode
  endpoints, ``410`` for unknown endpoints, ``404`` unknown resources,
  ``412 No notification channel`` when there is no channel, ``429`` when too many
  requests for one endpoint are pending;
* subscriptions (per resource, per endpoint, all; ``text/uri-list``),
  pre-subscriptions with wildcards (replace-all, applied on registration,
  removing every subscription when changed);
* one notification channel: long poll (held ``pull_timeout`` s, ``200`` batch
  or ``204``, ``noWait``, ``409`` for a concurrent poll), callback (a test
  ``PUT`` with an empty body when registered, then one ``PUT`` per batch with
  the registered headers, retried with backoff while the receiver fails), or —
  as on Pelion / Izuma — a WebSocket (``/v2/notification/websocket[-connect]``);
* Pelion's ``POST /v2/device-requests/{device-id}?async-id=`` with JSON errors;
* simulated devices driven by a control API under ``/_sandbox/`` (see
  :meth:`MbedServer.setup_routes` and ``docs/mbed.md``), which can register,
  update, de-register, expire, change values, answer slowly, fail or stay silent,
  and a "race" switch that delivers an async response *before* its ``202``; raw messages
  (``POST /_sandbox/raw-notification``: bytes sent exactly as given, for hostile-data tests).

Run it alone with ``python -m platypush_ext.sandbox mbed --port 8082 [--api-key KEY]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import random
import re
import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import requests

from ..core.backoff import Backoff
from . import mbed_fleet
from .core import Request, Response, SandboxServer, json_response, reset_connection, text_response
from .websocket import accept_upgrade, is_upgrade, ws_close, ws_frame, ws_read

DEFAULT_API_KEY = "mbed-sandbox-key-0123456789"
VERSION_TEXT = "DeviceServer v3.0.0-520\nREST version = v2"
EVENT_KINDS = (
    "notifications",
    "registrations",
    "reg-updates",
    "de-registrations",
    "registrations-expired",
    "async-responses",
)
ASYNC_ID_RE = re.compile(r"^[\w-]{1,40}$")
#: The kind under which :meth:`MbedServer.enqueue_raw` queues a whole message, sent as it is.
RAW = "<raw message>"
V2 = r"(?:/v2)?"  # unversioned paths are the latest version


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


@dataclass
class Resource:
    """A simulated LwM2M resource."""

    path: str
    value: bytes = b""
    rt: str = ""
    ct: str = "text/plain"
    obs: bool = True
    max_age: int = 60
    cached_at: float | None = None  # when the Connector last learned the value
    rules: dict[str, float] = field(default_factory=dict)  # notification rules (pmin, pmax, gt, lt, st)
    notified_at: float | None = None  # when the last notification under rules was sent
    notified_value: float | None = None  # the value it carried (for st), numeric
    held: bool = False  # a change waits for pmin to pass

    def as_listing(self) -> dict[str, Any]:
        return {"uri": self.path, "rt": self.rt, "obs": self.obs, "type": self.ct}

    def as_registration(self) -> dict[str, Any]:
        return {"path": self.path, "if": "", "rt": self.rt, "ct": self.ct, "obs": self.obs}


@dataclass
class Device:
    """A simulated endpoint and how it behaves."""

    name: str
    type: str = ""
    queue_mode: bool = False
    resources: dict[str, Resource] = field(default_factory=dict)
    registered: bool = False
    delay: float = 0.0  # seconds before answering a request
    silent: bool = False  # never answers
    timeout_after: float | None = None  # a silent device: the service reports 504 TIMEOUT after this
    fail_status: int | None = None  # answer every request with this async status
    fail_error: str = ""
    pending: int = 0
    label: str = ""  # Pelion mode: the device's own endpoint name (``name`` is the platform's id)

    def as_listing(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type, "status": "ACTIVE"}
        if self.queue_mode:
            data["q"] = True
        return data

    def as_registration(self) -> dict[str, Any]:
        data = {
            "ep": self.name,
            "ept": self.type,
            "q": self.queue_mode,
            "resources": [r.as_registration() for r in self.resources.values()],
        }
        if self.label:
            data["original-ep"] = self.label
        return data

    def as_device_data(self) -> dict[str, Any]:
        """A ``DeviceData`` of the Pelion device directory (``GET /v3/devices/``)."""
        return {
            "object": "device",
            "id": self.name,
            "name": self.label,
            "endpoint_name": self.label,
            "endpoint_type": self.type,
            "state": "registered" if self.registered else "deregistered",
            "mechanism": "connector",
            "deployed_state": "development",
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "queue_mode": self.queue_mode,
            "registered": self.registered,
            "delay": self.delay,
            "silent": self.silent,
            "timeout_after": self.timeout_after,
            "fail_status": self.fail_status,
            "fail_error": self.fail_error,
            "resources": [
                {
                    "path": r.path,
                    "value": r.value.decode("utf-8", "replace"),
                    "rt": r.rt,
                    "ct": r.ct,
                    "obs": r.obs,
                    "max_age": r.max_age,
                }
                for r in self.resources.values()
            ],
        }


def _body(message: dict[str, Any] | bytes) -> bytes:
    """A NotificationMessage's bytes on the wire (a raw one as it is)."""
    return message if isinstance(message, bytes) else json.dumps(message).encode()


def _b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode("ascii")


def _flag(value: str | None) -> bool:
    return str(value).lower() == "true"


def _plain(text: str, status: int) -> Response:
    return text_response(text, status, "text/plain")


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
#: The notification rules of a resource (LwM2M write attributes), as in ``/5/0/1?pmax=120``.
RULES = ("pmin", "pmax", "gt", "lt", "st")


def _pelion_error(status: int, kind: str, message: str) -> Response:
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


def _rules_of(query: dict[str, str]) -> dict[str, float] | None:
    """The notification rules of a query (``None`` without any); raises ``ValueError`` on a bad one."""
    given = {k: v for k, v in query.items() if k in RULES}
    if not given:
        return None
    rules = {k: float(v) for k, v in given.items()}
    if any(rules.get(k, 0) < 0 for k in ("pmin", "pmax")) or rules.get("st", 1) <= 0:
        raise ValueError("pmin/pmax must not be negative, st must be positive")
    return rules


def _number(value: bytes) -> float | None:
    """A resource value as a number, or ``None`` when it is not one."""
    try:
        return float(value)
    except ValueError:
        return None


def _readable(sock: socket.socket) -> bool:
    """Whether the client sent something (data, a close, an EOF or a reset) that waits to be read."""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):  # a closed socket (fileno -1)
        return True


def client_gone(sock: socket.socket) -> bool:
    """Whether the client closed or reset the connection (an EOF waits to be read), without reading.

    What an event-driven server learns from its event loop before it writes to a connection; the
    sandbox checks it while it holds a long poll and right before it takes a batch for one, so that
    a batch meant for a client that went away stays queued for the next poll."""
    if not _readable(sock):
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:  # reset, or closed here
        return True


def _matches(pattern: str, value: str) -> bool:
    """Pre-subscription matching: exact, or a prefix with a trailing ``*``."""
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


class MbedServer(SandboxServer):
    """The mbed Device Connector REST API v2, with simulated devices, in memory.

    :param api_key: the access key accepted as ``Authorization: Bearer <key>``.
    :param pull_timeout: how long a long poll is held before ``204`` (the
        Connector holds it ~30 s).
    :param demo_devices: create a few demo devices (a light, a temperature
        sensor whose value changes by itself, a queue-mode node).
    :param auto_change: seconds between two changes of the demo temperature
        (``0`` = never).
    :param callback_retry_max: cap (seconds) of the callback delivery backoff.
    :param api: ``"connector"`` (the Connector's v2 API, plus Pelion's device requests
        and WebSocket) or ``"pelion"`` (only what the published Pelion / Izuma API has:
        32-hex device ids, ``/v3/devices/``, one channel type at a time, JSON errors;
        see ``docs/mbed.md``).
    :param record: keep every API exchange in :attr:`exchanges` (for conformance checks).
    :param fleet: which demo devices (``basic`` or ``home``, see ``mbed_fleet``).
    """

    name = "mbed"
    default_port = 8082
    api_prefix = "/"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        pull_timeout: float = 30.0,
        demo_devices: bool = False,
        auto_change: float = 0.0,
        callback_retry_max: float = 2.0,
        api: str = "connector",
        record: bool = False,
        fleet: str = "basic",
    ):
        if api not in ("connector", "pelion"):
            raise ValueError(f"api must be 'connector' or 'pelion', got {api!r}")
        self.pelion = api == "pelion"
        #: with ``record``: one :class:`Exchange` per API request
        self.exchanges: list[Exchange] | None = [] if record else None
        self.api_key = api_key
        self.pull_timeout = pull_timeout
        self.callback_retry_max = callback_retry_max
        self.race = False  # deliver async responses before answering 202
        self.devices: dict[str, Device] = {}
        self.subscriptions: set[tuple[str, str]] = set()
        self.presubscriptions: list[dict[str, Any]] = []
        self.channel: str | None = None  # "long_poll" | "callback" | "websocket"
        self.callback: dict[str, Any] | None = None
        self.callback_deliveries: list[int] = []  # statuses answered by the receiver
        self.transactions = 0
        self._events: list[tuple[str, Any]] = []  # queued (kind, element), in order
        self._cond = threading.Condition(threading.RLock())
        self._polling: object = False  # the token of the poll being held
        self._poll_socket: socket.socket | None = None  # its connection
        self._channel_generation = 0  # changes whenever the channel is replaced or removed
        self._ws_generation = 0
        self._ids = itertools.count(1073741825)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.auto_change = auto_change
        super().__init__(host, port)
        if demo_devices:
            self.add_demo_devices(fleet)

    # -- CLI -----------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--api-key", default=DEFAULT_API_KEY, help=f"access key to accept (default: {DEFAULT_API_KEY})"
        )
        parser.add_argument(
            "--pull-timeout", type=float, default=30.0, help="seconds a long poll is held before 204 (default: 30)"
        )
        parser.add_argument(
            "--auto-change",
            type=float,
            default=5.0,
            help="seconds between changes of the demo temperature (default: 5; 0 = never)",
        )
        parser.add_argument("--no-demo-devices", action="store_true", help="start without demo devices")
        parser.add_argument(
            "--api",
            choices=("connector", "pelion"),
            default="connector",
            help="which API to serve (default: connector)",
        )
        parser.add_argument(
            "--fleet", choices=sorted(mbed_fleet.FLEETS), default="basic", help="the demo devices (default: basic)"
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, host: str, port: int) -> MbedServer:
        return cls(
            host=host,
            port=port,
            api_key=args.api_key,
            pull_timeout=args.pull_timeout,
            demo_devices=not args.no_demo_devices,
            auto_change=args.auto_change,
            api=args.api,
            fleet=args.fleet,
        )

    def describe(self) -> str:
        return (
            f"mbed: {self.base_url} (Authorization: Bearer {self.api_key}; "
            f"devices: {', '.join(self.devices) or 'none'}; control API {self.url}/_sandbox/devices)"
        )

    # -- life cycle ----------------------------------------------------------

    def start(self) -> MbedServer:
        super().start()
        self._stopping.clear()
        self._spawn(self._callback_loop, "mbed-callback")
        if self.auto_change > 0:
            self._spawn(self._auto_change_loop, "mbed-auto-change")
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        super().stop()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- simulated devices (the Python side of the control API) ---------------

    def add_demo_devices(self, fleet: str = "basic") -> None:
        """Add a fleet of ``mbed_fleet``: ``basic`` (a light, a temperature sensor, a queue-mode
        node) or ``home`` (sensors, a dimmable light, a smart plug, presence, batteries).

        :param fleet: the fleet's name.
        """
        self.add_fleet(mbed_fleet.fleet(fleet))

    def add_fleet(self, specs: list[dict[str, Any]], announce: bool = True) -> None:
        """Add (and register) devices given as :meth:`add_device` specs.

        :param specs: ``[{"name", "type", "queue_mode", "resources"}]``.
        :param announce: queue their ``registrations`` events (``False``: they registered
            before any channel existed, as a fleet found by a restarted client).
        """
        for spec in specs:
            self.add_device(spec["name"], spec.get("type", ""), spec.get("queue_mode", False), spec["resources"], False)
            self.register(spec["name"], announce)

    def add_device(
        self,
        name: str,
        type: str = "",
        queue_mode: bool = False,
        resources: list[dict[str, Any]] | None = None,
        register: bool = True,
    ) -> Device:
        """Create a device (and register it, which sends a ``registrations`` event)."""
        if not isinstance(name, str) or not name:
            raise ValueError("a device needs a non-empty name")
        device = Device(name=name, type=type, queue_mode=bool(queue_mode))
        if self.pelion:  # the platform assigns the id; the device's own name is its label
            device.name, device.label = self.device_id(name), name
        for spec in resources or []:
            resource = self._resource_from(spec)
            device.resources[resource.path] = resource
        with self._cond:
            self.devices[device.name] = device
        if register:
            self.register(device.name)
        return device

    @staticmethod
    def device_id(name: str) -> str:
        """The 32-hex device id that Pelion mode gives the device called ``name``."""
        return hashlib.md5(name.encode()).hexdigest()

    @staticmethod
    def _resource_from(spec: dict[str, Any]) -> Resource:
        path = spec.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError("a resource needs a path starting with '/'")
        value = spec.get("value", "")
        value = value if isinstance(value, bytes) else str(value).encode()
        return Resource(
            path=path,
            value=value,
            rt=str(spec.get("rt", "")),
            ct=str(spec.get("ct", "text/plain")),
            obs=bool(spec.get("obs", True)),
            max_age=int(spec.get("max_age", 60)),
        )

    def remove_device(self, name: str) -> None:
        """Forget a device (de-registering it first)."""
        device = self._device(name)
        if device.registered:
            self.deregister(device.name)
        with self._cond:
            self.devices.pop(device.name, None)

    def register(self, name: str, announce: bool = True) -> None:
        """A full (re-)registration: manual subscriptions are dropped, pre-subscriptions applied.

        :param name: the device.
        :param announce: queue the ``registrations`` event (default).
        """
        with self._cond:
            device = self._device(name)
            device.registered, name = True, device.name
            self.subscriptions = {(ep, p) for ep, p in self.subscriptions if ep != name}
            for resource in device.resources.values():
                if resource.obs and self._presubscribed(device, resource.path):
                    self.subscriptions.add((name, resource.path))
            self.transactions += 1
            if announce:
                self.enqueue("registrations", device.as_registration())

    def update_registration(self, name: str) -> None:
        """A registration update (``reg-updates``)."""
        with self._cond:
            device = self._device(name)
            device.registered = True
            self.transactions += 1
            self.enqueue("reg-updates", device.as_registration())

    def deregister(self, name: str) -> None:
        """A controlled de-registration (``de-registrations``)."""
        self._unregister(name, "de-registrations")

    def expire(self, name: str) -> None:
        """The registration expires (``registrations-expired``)."""
        self._unregister(name, "registrations-expired")

    def _unregister(self, name: str, kind: str) -> None:
        with self._cond:
            device = self._device(name)
            device.registered, name = False, device.name
            self.subscriptions = {(ep, p) for ep, p in self.subscriptions if ep != name}
            self.enqueue(kind, name)

    def set_behaviour(self, name: str, **behaviour: Any) -> Device:
        """Make a device slow (``delay``), ``silent`` (optionally with ``timeout_after``),
        or failing (``fail_status``, ``fail_error``); ``None``/``False`` values reset."""
        allowed = {"delay", "silent", "timeout_after", "fail_status", "fail_error"}
        unknown = set(behaviour) - allowed
        if unknown:
            raise ValueError(f"unknown behaviour {sorted(unknown)}; use {sorted(allowed)}")
        with self._cond:
            device = self._device(name)
            for key, value in behaviour.items():
                if key == "delay":
                    value = float(value or 0)
                elif key == "fail_error":
                    value = str(value or "")
                elif key == "silent":
                    value = bool(value)
                elif value is not None:
                    value = int(value) if key == "fail_status" else float(value)
                setattr(device, key, value)
            if not device.silent:
                device.pending = 0  # requests it never answered are forgotten
            return device

    def set_value(self, name: str, path: str, value: Any, count: int = 1, numbered_from: int | None = None) -> int:
        """The device's resource changes ``count`` times (the last value stays);
        each change of a subscribed resource is one ``notifications`` element,
        unless the resource's notification rules hold it back (see :meth:`_passes`).
        With ``numbered_from``, the *i*-th value is ``f"{value}{numbered_from + i}"``
        (for load tests that check that nothing is lost).
        Returns how many notifications were queued."""
        raw = value if isinstance(value, bytes) else str(value).encode()
        with self._cond:
            device = self._device(name)
            resource = device.resources.get(path)
            if resource is None:
                resource = device.resources[path] = Resource(path=path)
            resource.value = raw
            if not ((device.name, path) in self.subscriptions and device.registered):
                return 0
            resource.cached_at = time.monotonic()
            queued = 0
            for i in range(count):
                if numbered_from is not None:
                    resource.value = f"{value}{numbered_from + i}".encode()
                if not resource.rules or self._passes(resource):
                    self._notify(device, resource)
                    queued += 1
            return queued

    def _notify(self, device: Device, resource: Resource) -> None:
        """Queue one ``notifications`` element with the resource's current value."""
        self.transactions += 1
        element = {
            "ep": device.name,
            "path": resource.path,
            "ct": resource.ct,
            "payload": _b64(resource.value),
            "max-age": resource.max_age,
        }
        self._events.append(("notifications", element))
        if resource.rules:
            resource.notified_at, resource.held = time.monotonic(), False
            resource.notified_value = _number(resource.value)
        self._cond.notify_all()

    @staticmethod
    def _passes(resource: Resource) -> bool:
        """Whether a change is notified at once under the resource's rules: a numeric
        value must be above ``gt``, below ``lt`` or ``st`` away from the last notified
        one (when any of them is set); within ``pmin`` of the last notification it is
        held, and the rules loop sends the latest value once ``pmin`` has passed."""
        rules, number = resource.rules, _number(resource.value)
        if number is not None and any(k in rules for k in ("gt", "lt", "st")):
            last = resource.notified_value
            if not (
                ("gt" in rules and number > rules["gt"])
                or ("lt" in rules and number < rules["lt"])
                or ("st" in rules and (last is None or abs(number - last) >= rules["st"]))
            ):
                return False
        since = time.monotonic() - (resource.notified_at or 0.0)
        if "pmin" in rules and since < rules["pmin"]:
            resource.held = True
            return False
        return True

    def set_rules(self, name: str, path: str, rules: dict[str, float]) -> None:
        """Set a resource's notification rules (``{}`` clears them); ``pmax`` starts counting now."""
        with self._cond:
            resource = self._device(name).resources[path]
            resource.rules = dict(rules)
            resource.notified_at, resource.held = time.monotonic(), False
            if rules and not any(t.name == "mbed-rules" for t in self._threads):
                self._spawn(self._rules_loop, "mbed-rules")

    def _rules_loop(self) -> None:
        """Sends what ``pmin`` held back once it passed, and the value of a silent resource after ``pmax``."""
        while not self._stopping.wait(0.05):
            with self._cond:
                now = time.monotonic()
                for ep, path in sorted(self.subscriptions):
                    device = self.devices.get(ep)
                    resource = device.resources.get(path) if device and device.registered else None
                    if resource is None or not resource.rules:
                        continue
                    since = now - (resource.notified_at or now)
                    pmin, pmax = resource.rules.get("pmin", 0.0), resource.rules.get("pmax")
                    if (resource.held and since >= pmin) or (pmax is not None and since >= max(pmax, pmin)):
                        self._notify(device, resource)

    def enqueue(self, kind: str, element: Any) -> None:
        """Queue one raw element of a NotificationMessage (anything, even malformed)."""
        with self._cond:
            self._events.append((kind, element))
            self._cond.notify_all()

    def enqueue_raw(self, body: bytes) -> None:
        """Queue a whole NotificationMessage as bytes, sent exactly as given (even when it is not JSON,
        not UTF-8 or huge): the next pull answers it, the callback ``PUT``s it, the WebSocket pushes it
        as one text frame. It is never merged with other queued elements.

        :param body: the message's bytes.
        """
        with self._cond:
            self._events.append((RAW, bytes(body)))
            self._cond.notify_all()

    def queued(self) -> int:
        with self._cond:
            return len(self._events)

    def _device(self, name: str) -> Device:
        """A device by its name (its id in Pelion mode) or its label."""
        device = self.devices.get(name) or self.devices.get(self.device_id(name))
        if device is None:
            raise KeyError(name)
        return device

    def _fail(self, text: str, status: int) -> Response:
        """An error answer: plain text on the Connector, an ``ErrorResponse`` object in Pelion mode."""
        if self.pelion:
            return _pelion_error(status, ERROR_TYPES.get(status, "error"), text)
        return _plain(text, status)

    def _presubscribed(self, device: Device, path: str) -> bool:
        for rule in self.presubscriptions:
            if "endpoint-name" in rule and not _matches(rule["endpoint-name"], device.name):
                continue
            if "endpoint-type" in rule and rule["endpoint-type"] != device.type:
                continue
            paths = rule.get("resource-path")
            if paths and not any(_matches(p, path) for p in paths):
                continue
            return True
        return False

    def _auto_change_loop(self) -> None:
        value = 21.5
        while not self._stopping.wait(self.auto_change):
            value = round(min(30.0, max(15.0, value + random.uniform(-0.5, 0.5))), 1)
            try:
                self.set_value("temp-sensor-01", "/3303/0/5700", f"{value}")
            except KeyError:
                pass

    # -- notification channel ------------------------------------------------

    def _take_batch(self, limit: int = 100000) -> dict[str, list[Any]] | bytes | None:
        """Pop queued events into one NotificationMessage (``None`` if none); a raw message
        (:meth:`enqueue_raw`) is taken alone, as its bytes."""
        with self._cond:
            if not self._events:
                return None
            if self._events[0][0] == RAW:
                self._cond.notify_all()
                return self._events.pop(0)[1]
            end = next((i for i, (kind, _) in enumerate(self._events[:limit]) if kind == RAW), limit)
            taken, self._events = self._events[:end], self._events[end:]
            self._cond.notify_all()
        message: dict[str, list[Any]] = {}
        for kind, element in taken:
            if self.pelion and isinstance(element, dict) and isinstance(element.get("max-age"), int):
                element = {**element, "max-age": str(element["max-age"])}  # a string in Pelion's schema
            message.setdefault(kind, []).append(element)
        return message

    def _requeue(self, message: dict[str, list[Any]] | bytes) -> None:
        with self._cond:
            if isinstance(message, bytes):
                self._events.insert(0, (RAW, message))
            else:
                self._events[:0] = [(k, e) for k, elements in message.items() for e in elements]

    def _has_channel(self) -> bool:
        return self.channel is not None

    def _callback_loop(self) -> None:
        session = requests.Session()
        backoff = Backoff(base=0.1, cap=self.callback_retry_max, jitter=False)
        while not self._stopping.is_set():
            with self._cond:
                while not self._stopping.is_set() and not (self.channel == "callback" and self._events):
                    self._cond.wait(0.5)
                if self._stopping.is_set():
                    return
                target = dict(self.callback or {})
                message = self._take_batch()  # under the lock: never for a channel replaced meanwhile
            if not message:
                continue
            self._record_message("callback", message)
            try:
                answer = session.put(
                    target["url"],
                    data=_body(message),
                    timeout=(2, 5),
                    headers={"Content-Type": "application/json", **target.get("headers", {})},
                )
                status = answer.status_code
            except requests.RequestException:
                status = 0
            self.callback_deliveries.append(status)
            if status in (200, 204):
                backoff.reset()
                continue
            self._requeue(message)
            self._stopping.wait(backoff.next_delay())

    # -- helpers for routes --------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    def _new_async_id(self, ep: str, path: str) -> str:
        return f"{next(self._ids)}#{ep}@sandbox.mbed{path}"

    def _respond_later(self, device: Device, async_id: str, action: Any) -> None:
        """Run ``action`` (returns the async-response element fields) after the device's delay."""
        device.pending += 1
        delay, silent, timeout_after = device.delay, device.silent, device.timeout_after
        fail_status, fail_error = device.fail_status, device.fail_error

        def answer() -> None:
            if silent and timeout_after is None:
                return  # never answered: stays pending (until the device's behaviour changes)
            try:
                if silent:
                    if self._stopping.wait(timeout_after):
                        return
                    element = {"id": async_id, "status": 504, "error": "TIMEOUT", "ct": "text/plain", "max-age": 0}
                elif fail_status:
                    element = {
                        "id": async_id,
                        "status": fail_status,
                        "error": fail_error or "FAILED",
                        "ct": "text/plain",
                        "max-age": 0,
                    }
                else:
                    with self._cond:
                        element = {"id": async_id, **action()}
                self.transactions += 1
                self.enqueue("async-responses", element)
            finally:
                device.pending -= 1

        if self.race and not silent:
            answer()
            deadline = time.monotonic() + 2.0
            with self._cond:  # hold the 202 back until the async response has been delivered
                while self._events and time.monotonic() < deadline:
                    self._cond.wait(0.05)
            return
        if delay <= 0 and not silent:
            answer()
            return
        timer = threading.Timer(delay, answer)
        timer.daemon = True
        timer.start()

    def _resource_request(
        self, method: str, ep: str, path: str, body: bytes, no_resp: bool, cache_only: bool
    ) -> tuple[int, Any]:
        """The common part of the Connector and the Pelion device requests.

        Returns ``(status, detail)``: ``(202, async_id_factory)``, ``(200, bytes)``,
        ``(204, None)`` or an error status with its text.
        """
        device = self.devices.get(ep)
        if device is None or not device.registered:
            return 410, "Endpoint not found"
        resource = device.resources.get(path)
        if resource is None and method != "PUT":
            return 404, "Resource not found"
        if method == "GET" and resource is not None:
            fresh = resource.cached_at is not None and time.monotonic() - resource.cached_at < resource.max_age
            if fresh:
                return 200, resource
            if cache_only:
                return 205, "No cache available"
        if no_resp:
            if device.queue_mode:
                return 409, "Endpoint is in queue mode; noResp is not supported"
            self._apply(device, method, path, body)
            return 204, None
        if not self._has_channel():
            return 412, "No notification channel"
        if device.pending >= 20:
            return 429, "Too many requests pending for this endpoint"
        return 202, None

    def _apply(self, device: Device, method: str, path: str, body: bytes) -> dict[str, Any]:
        """What the device does; returns the async-response fields."""
        resource = device.resources.get(path)
        if method == "GET":
            if resource is None:
                return {"status": 404, "error": "NOT_FOUND", "ct": "text/plain", "max-age": 0}
            resource.cached_at = time.monotonic()
            return {"status": 200, "payload": _b64(resource.value), "ct": resource.ct, "max-age": resource.max_age}
        if method == "PUT":
            if resource is not None:
                resource.cached_at = None
            self.set_value(device.name, path, body)  # a subscriber is notified of the written value
        elif method == "DELETE":
            if path in device.resources:
                del device.resources[path]
            self.subscriptions.discard((device.name, path))
        return {"status": 200, "payload": "", "ct": "text/plain", "max-age": 60}

    # -- routes --------------------------------------------------------------

    def setup_routes(self) -> None:
        api = [
            ("GET", r"/", self._version),
            ("GET", r"/rest-versions", self._rest_versions),
            ("GET", V2 + r"/limits", self._limits),
            ("GET", V2 + r"/endpoints", self._endpoints),
            ("GET", V2 + r"/endpoints/(?P<ep>[^/]+)", self._endpoint_resources),
            ("DELETE", V2 + r"/endpoints/(?P<ep>[^/]+)", self._delete_endpoint),
            ("GET", V2 + r"/endpoints/(?P<ep>[^/]+)(?P<path>/.+)", self._resource),
            ("PUT", V2 + r"/endpoints/(?P<ep>[^/]+)(?P<path>/.+)", self._resource),
            ("POST", V2 + r"/endpoints/(?P<ep>[^/]+)(?P<path>/.+)", self._resource),
            ("DELETE", V2 + r"/endpoints/(?P<ep>[^/]+)(?P<path>/.+)", self._resource),
            ("PUT", V2 + r"/subscriptions", self._put_presubscriptions),
            ("GET", V2 + r"/subscriptions", self._get_presubscriptions),
            ("DELETE", V2 + r"/subscriptions/?", self._delete_all_subscriptions),
            ("GET", V2 + r"/subscriptions/(?P<ep>[^/]+)", self._endpoint_subscriptions),
            ("DELETE", V2 + r"/subscriptions/(?P<ep>[^/]+)", self._delete_endpoint_subscriptions),
            ("PUT", V2 + r"/subscriptions/(?P<ep>[^/]+)(?P<path>/.+)", self._subscribe),
            ("GET", V2 + r"/subscriptions/(?P<ep>[^/]+)(?P<path>/.+)", self._subscription),
            ("DELETE", V2 + r"/subscriptions/(?P<ep>[^/]+)(?P<path>/.+)", self._unsubscribe),
            ("PUT", V2 + r"/notification/callback", self._put_callback),
            ("GET", V2 + r"/notification/callback", self._get_callback),
            ("DELETE", V2 + r"/notification/callback", self._delete_callback),
            ("GET", V2 + r"/notification/pull", self._pull),
            ("DELETE", V2 + r"/notification/pull", self._delete_pull),
            ("GET", V2 + r"/notification/channel", self._get_channel),
            ("PUT", V2 + r"/notification/websocket", self._put_websocket),
            ("GET", V2 + r"/notification/websocket", self._get_websocket),
            ("DELETE", V2 + r"/notification/websocket", self._delete_websocket),
            ("GET", V2 + r"/notification/websocket-connect", self._websocket_connect),
            ("POST", V2 + r"/device-requests/(?P<ep>[^/]+)", self._device_request),
        ]
        for method, pattern, handler in self._mode_routes(api):
            self.route(method, pattern, self._authenticated(handler))
        control = [
            ("GET", r"/_sandbox/devices", self._ctl_devices),
            ("POST", r"/_sandbox/devices", self._ctl_add_device),
            ("GET", r"/_sandbox/devices/(?P<ep>[^/]+)", self._ctl_device),
            ("PATCH", r"/_sandbox/devices/(?P<ep>[^/]+)", self._ctl_behaviour),
            ("DELETE", r"/_sandbox/devices/(?P<ep>[^/]+)", self._ctl_remove_device),
            ("POST", r"/_sandbox/devices/(?P<ep>[^/]+)/(?P<op>register|update|deregister|expire)", self._ctl_lifecycle),
            ("PUT", r"/_sandbox/devices/(?P<ep>[^/]+)/values(?P<path>/.+)", self._ctl_set_value),
            ("POST", r"/_sandbox/notifications", self._ctl_inject),
            ("POST", r"/_sandbox/raw-notification", self._ctl_inject_raw),
            ("POST", r"/_sandbox/fleet", self._ctl_fleet),
            ("GET", r"/_sandbox/state", self._ctl_state),
            ("PATCH", r"/_sandbox/config", self._ctl_config),
        ]
        for method, pattern, handler in control:
            self.route(method, pattern, self._control(handler))

    def _mode_routes(self, api: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
        """The routes of the mode: in Pelion mode, ``/v2`` paths only, without what that API
        lacks (``/``, ``/rest-versions``, limits, the endpoint listing and delete), plus the
        device directory ``/v3/devices/``."""
        if not self.pelion:
            return api
        gone = {self._version, self._rest_versions, self._limits, self._endpoints, self._delete_endpoint}
        routes = [(m, p.replace(V2, "/v2"), h) for m, p, h in api if h not in gone]
        return routes + [("GET", r"/v3/devices/", self._device_directory)]

    def _device_directory(self, request: Request) -> Response:
        """``GET /v3/devices/``: a ``DevicePage`` (``limit``, ``after``, ``order``, ``include=total_count``,
        and the ``state__eq`` / ``endpoint_type__eq`` / ``id__eq`` filters)."""
        query = request.query
        try:
            limit = min(1000, max(2, int(query.get("limit", "50"))))
        except ValueError:
            return self._fail("limit must be an integer", 400)
        order = query.get("order", "ASC").upper()
        with self._cond:
            data = [d.as_device_data() for d in self.devices.values()]
        if order == "DESC":
            data.reverse()
        for key in ("state", "endpoint_type", "id"):
            if f"{key}__eq" in query:
                data = [d for d in data if d[key] == query[f"{key}__eq"]]
        total = len(data)
        if "after" in query:
            ids = [d["id"] for d in data]
            data = data[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
        page = {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "limit": limit, "order": order}
        if "after" in query:
            page["after"] = query["after"]
        if "total_count" in query.get("include", ""):
            page["total_count"] = total
        return json_response(page)

    def not_found(self, request: Request) -> Response:
        return self._fail("Not Found", 404)

    def method_not_allowed(self, request: Request) -> Response:
        return self._fail("Method Not Allowed", 405)

    def _authenticated(self, handler: Any) -> Any:
        def run(request: Request) -> Response | None:
            response = serve(request)
            if self.exchanges is not None:
                self._record_exchange(request, response)
            return response

        def serve(request: Request) -> Response | None:
            if self._stopping.is_set():  # a stopped server: kept-alive connections die too
                reset_connection(request.handler)
                return None
            for key in ("ep", "path"):
                if key in request.params:
                    request.params[key] = unquote(request.params[key])
            if request.path.endswith("/websocket-connect") and (self._ws_key_ok(request) or self.pelion):
                return handler(request)
            if not self._authorized(request):
                return self._fail("Unauthorized", 401)
            with self.lock:
                self.transactions += 1
            return handler(request)

        return run

    def _record_exchange(self, request: Request, response: Response | None) -> None:
        body = response.body if response is not None and isinstance(response.body, bytes) else b""
        exchange = Exchange(
            request.method,
            request.path,
            dict(request.query),
            request.headers.get("Content-Type", ""),
            request.body if response is not None else b"",
            101 if response is None else response.status,
            "" if response is None else response.headers.get("Content-Type", ""),
            body,
        )
        with self.lock:
            assert self.exchanges is not None
            self.exchanges.append(exchange)

    def _record_message(self, channel: str, message: dict[str, Any] | bytes) -> None:
        """With ``record``: a NotificationMessage pushed on a callback or WebSocket, as ``MESSAGE <channel>``."""
        if self.exchanges is not None:
            body = _body(message)
            with self.lock:
                self.exchanges.append(Exchange("MESSAGE", channel, {}, "", b"", 0, "application/json", body))

    def _control(self, handler: Any) -> Any:
        def run(request: Request) -> Response:
            for key in ("ep", "path"):
                if key in request.params:
                    request.params[key] = unquote(request.params[key])
            try:
                return handler(request)
            except KeyError as exc:
                return json_response({"error": f"no device {exc.args[0]!r}"}, 404)
            except (TypeError, ValueError, AttributeError) as exc:
                return json_response({"error": str(exc)}, 400)

        return run

    # versions, limits, directory

    def _version(self, request: Request) -> Response:
        return text_response(VERSION_TEXT, 200, "text/plain")

    def _rest_versions(self, request: Request) -> Response:
        return json_response(["v1", "v2"], compact=False)

    def _limits(self, request: Request) -> Response:
        with self._cond:
            count = sum(1 for d in self.devices.values() if d.registered)
        return json_response(
            {
                "transaction-quota": 10000,
                "transaction-count": self.transactions,
                "endpoint-quota": 100,
                "endpoint-count": count,
            },
            compact=False,
        )

    def _endpoints(self, request: Request) -> Response:
        wanted = request.query.get("type")
        with self._cond:
            listing = [
                d.as_listing() for d in self.devices.values() if d.registered and (wanted is None or d.type == wanted)
            ]
        return json_response(listing, compact=False)

    def _endpoint_resources(self, request: Request) -> Response:
        with self._cond:
            device = self.devices.get(request.params["ep"])
            if device is None or not device.registered:
                return self._fail("Endpoint not found", 404)
            return json_response([r.as_listing() for r in device.resources.values()], compact=False)

    def _delete_endpoint(self, request: Request) -> Response:
        with self._cond:
            device = self.devices.get(request.params["ep"])
            if device is None or not device.registered:
                return self._fail("Endpoint not found", 404)
            if not self._has_channel():
                return self._fail("No notification channel", 412)
            async_id = self._new_async_id(device.name, "")

            def action() -> dict[str, Any]:
                self._unregister(device.name, "de-registrations")
                return {"status": 200, "payload": "", "ct": "text/plain", "max-age": 0}

        self._respond_later(device, async_id, action)
        return json_response({"async-response-id": async_id}, 202)

    # resources

    def _resource(self, request: Request) -> Response:
        ep, path, method = request.params["ep"], request.params["path"], request.method
        body = request.body
        try:
            rules = _rules_of(request.query) if method == "PUT" else None
        except ValueError:
            return self._fail("Malformed notification rules", 400)
        if rules is not None:  # write attributes: notification rules, not a write
            return self._rules_request(ep, path, rules, lambda: self._new_async_id(ep, path))
        if self.pelion and method == "PUT" and not body:
            return self._fail("The value to write is required (an empty body)", 400)
        with self._cond:
            status, detail = self._resource_request(
                method, ep, path, body, _flag(request.query.get("noResp")), _flag(request.query.get("cacheOnly"))
            )
            if status == 200:
                return Response(200, detail.value, {"Content-Type": detail.ct})
            if status in (204, 205):  # neither carries a body
                return Response(status)
            if status != 202:
                return self._fail(detail, status)
            device = self.devices[ep]
            async_id = self._new_async_id(ep, path)
        self._respond_later(device, async_id, lambda: self._apply(device, method, path, body))
        return json_response({"async-response-id": async_id}, 202)

    def _device_request(self, request: Request) -> Response:
        ep = request.params["ep"]
        async_id = request.query.get("async-id", "")
        if not ASYNC_ID_RE.match(async_id):
            return self._request_error(400, "MALFORMED_ASYNC_ID")
        try:
            spec = request.json()
            method = str(spec["method"]).upper()
            uri, _, query = str(spec["uri"]).partition("?")
            body = base64.standard_b64decode(spec.get("payload-b64") or "")
            rules = _rules_of(dict(parse_qsl(query, keep_blank_values=True))) if method == "PUT" else None
            if method not in ("GET", "PUT", "POST", "DELETE") or not uri.startswith("/"):
                raise ValueError(method)
            if self.pelion and method == "PUT" and not body and rules is None:
                raise ValueError("a write needs payload-b64")
        except (ValueError, TypeError, KeyError):
            return self._request_error(400, "MALFORMED_JSON_CONTENT")
        with self._cond:
            device = self.devices.get(ep)
            if device is None:
                return self._request_error(404, "DEVICE_NOT_FOUND")
            if not device.registered:
                return self._request_error(400, "DEVICE_NOT_CONNECTED")
            if uri not in device.resources and (method != "PUT" or rules is not None):
                return self._request_error(400, "RESOURCE_NOT_FOUND")
            if device.pending >= 20:
                return self._request_error(400, "TOO_MANY_REQUESTS")
        # accepted whatever the channel's state: the answer waits in the queue for a channel
        if rules is not None:
            return self._rules_request(ep, uri, rules, lambda: async_id, Response(202))
        self._respond_later(device, async_id, lambda: self._apply(device, method, uri, body))
        return Response(202)

    def _request_error(self, status: int, code: str) -> Response:
        """A device request's error: the code as a JSON string (Pelion's schema), an object otherwise."""
        if self.pelion:
            return json_response(code, status)
        return _pelion_error(status, ERROR_TYPES[status], code)

    def _rules_request(
        self, ep: str, path: str, rules: dict[str, float], new_id: Any, accepted: Response | None = None
    ) -> Response:
        """Set notification rules (``PUT`` with ``pmin``/``pmax``/``gt``/``lt``/``st``): ``202``, then the device's answer."""
        with self._cond:
            device = self.devices.get(ep)
            if device is None or not device.registered:
                return self._fail("Endpoint not found", 410)
            if path not in device.resources:
                return self._fail("Resource not found", 404)
            async_id = new_id()

        def action() -> dict[str, Any]:
            self.set_rules(ep, path, rules)
            return {"status": 200, "payload": "", "ct": "text/plain", "max-age": 0}

        self._respond_later(device, async_id, action)
        return accepted or json_response({"async-response-id": async_id}, 202)

    # subscriptions

    def _subscribe(self, request: Request) -> Response:
        ep, path = request.params["ep"], request.params["path"]
        with self._cond:
            device = self.devices.get(ep)
            if device is None or not device.registered or path not in device.resources:
                return self._fail("Endpoint or resource not found", 404)
            if not device.resources[path].obs:
                return self._fail("Resource is not observable", 412)
            if not self._has_channel():
                return self._fail("No notification channel", 412)
            async_id = self._new_async_id(ep, path)

        def action() -> dict[str, Any]:
            self.subscriptions.add((ep, path))
            return {"status": 200, "payload": "", "ct": "text/plain", "max-age": 60}

        self._respond_later(device, async_id, action)
        return json_response({"async-response-id": async_id}, 202)

    def _subscription(self, request: Request) -> Response:
        ep, path = request.params["ep"], request.params["path"]
        with self._cond:
            if (ep, path) not in self.subscriptions:
                return self._fail("Not subscribed", 404)
        return text_response(f"/subscriptions/{quote(ep, safe='')}{path}", 200, "text/uri-list")

    def _endpoint_subscriptions(self, request: Request) -> Response:
        ep = request.params["ep"]
        with self._cond:
            paths = sorted(p for e, p in self.subscriptions if e == ep)
        if not paths:
            return self._fail("Endpoint not found or no subscriptions", 404)
        lines = "\n".join(f"/subscriptions/{quote(ep, safe='')}{p}" for p in paths)
        return text_response(lines, 200, "text/uri-list")

    def _unsubscribe(self, request: Request) -> Response:
        ep, path = request.params["ep"], request.params["path"]
        with self._cond:
            device = self.devices.get(ep)
            if device is None or path not in device.resources:
                return self._fail("Endpoint or resource not found", 404)
            self.subscriptions.discard((ep, path))
        return Response(204)

    def _delete_endpoint_subscriptions(self, request: Request) -> Response:
        ep = request.params["ep"]
        with self._cond:
            if ep not in self.devices and not self.pelion:  # Pelion answers 204 only
                return self._fail("Endpoint not found", 404)
            self.subscriptions = {(e, p) for e, p in self.subscriptions if e != ep}
        return Response(204)

    def _delete_all_subscriptions(self, request: Request) -> Response:
        with self._cond:
            if self.pelion:  # Pelion's DELETE /v2/subscriptions removes the pre-subscriptions
                self.presubscriptions = []
            else:
                self.subscriptions.clear()
        return Response(204)

    def _put_presubscriptions(self, request: Request) -> Response:
        try:
            rules = request.json()
            if not isinstance(rules, list):
                raise TypeError("not an array")
            for rule in rules:
                if not isinstance(rule, dict) or set(rule) - {"endpoint-name", "endpoint-type", "resource-path"}:
                    raise ValueError("unknown field")
                for key in ("endpoint-name", "endpoint-type"):
                    if key in rule and not isinstance(rule[key], str):
                        raise ValueError(key)
                paths = rule.get("resource-path", [])
                if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                    raise ValueError("resource-path")
        except (ValueError, TypeError):
            return self._fail("Malformed content", 400)
        with self._cond:
            self.presubscriptions = rules
            self.subscriptions.clear()
        return Response(204)

    def _get_presubscriptions(self, request: Request) -> Response:
        with self._cond:
            return json_response(self.presubscriptions, compact=False)

    # notification channel

    def _put_callback(self, request: Request) -> Response:
        try:
            spec = request.json()
            url, headers = spec["url"], spec.get("headers") or {}
            if not isinstance(url, str) or not isinstance(headers, dict):
                raise TypeError("url must be a string, headers an object")
        except (ValueError, TypeError, KeyError):
            return self._fail("Malformed content", 400)
        with self._cond:
            refused = self._other_channel("callback")
        if refused is not None:
            return refused
        if len(url) + sum(len(str(v)) for v in headers.values()) > 400:
            return self._fail("Callback URL and headers are too long (400 characters at most)", 400)
        try:  # the test PUT, with an empty body
            answer = requests.put(url, data=b"", headers={str(k): str(v) for k, v in headers.items()}, timeout=(2, 5))
            if answer.status_code not in (200, 204):
                return self._fail(f"Callback URL answered {answer.status_code} to the test request", 400)
        except requests.RequestException:
            return self._fail("Callback URL is not reachable", 400)
        with self._cond:
            refused = self._other_channel("callback")  # created while the test PUT ran
            if refused is not None:
                return refused
            self.callback = {"url": url, "headers": {str(k): str(v) for k, v in headers.items()}}
            self._set_channel("callback")
        return Response(204)

    def _get_callback(self, request: Request) -> Response:
        with self._cond:
            if self.callback is None:
                return self._fail("No callback URL", 404)
            return json_response(self.callback, compact=False)

    def _delete_callback(self, request: Request) -> Response:
        with self._cond:
            if self.callback is None:
                return self._fail("No callback URL", 404)
            self.callback = None
            self._set_channel(None)
            if not self.pelion:  # the Connector also removed every subscription
                self.subscriptions.clear()
        return Response(204)

    def _get_channel(self, request: Request) -> Response:
        names = {"long_poll": "LONG_POLLING", "callback": "CALLBACK", "websocket": "WEB_SOCKET"}
        with self._cond:
            if self.channel is None:
                return _pelion_error(404, "not_found", "No notification channel")
            return json_response({"delivery_mechanism": names[self.channel]})

    def _pull(self, request: Request) -> Response:
        sock: socket.socket = request.handler.connection
        with self._cond:
            if self.channel in ("callback", "websocket"):
                return self._fail(f"Another channel type exists ({self.channel})", 400)
            holder = self._poll_socket
            if self._polling and not (holder is not None and client_gone(holder)):
                return self._fail("A long-poll request is already open", 409)
            self._set_channel("long_poll")
            token = object()  # a held poll whose client went away is replaced by this one
            self._polling, self._poll_socket = token, sock
            self._cond.notify_all()
            try:
                message = self._hold(sock, token, wait=not _flag(request.query.get("noWait")))
            finally:
                if self._polling is token:
                    self._polling = False
        if message is None:
            return Response(204)
        if isinstance(message, bytes):
            return Response(200, message, {"Content-Type": "application/json"})
        return json_response(message, compact=False)

    def _hold(self, sock: socket.socket, token: object, wait: bool) -> dict[str, list[Any]] | bytes | None:
        """Hold a poll (under the lock) until events come, ``pull_timeout`` passes, the channel is
        replaced, another poll replaces it or its client goes away; then the batch, or ``None``."""
        generation, deadline = self._channel_generation, time.monotonic() + self.pull_timeout
        while wait and not self._events and not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._channel_generation != generation or self._polling is not token:
                break
            if client_gone(sock):
                return None
            self._cond.wait(min(left, 0.1))
        # a poll whose channel was replaced or deleted while it waited, or whose client went away, takes nothing
        if self._channel_generation != generation or self._polling is not token or client_gone(sock):
            return None
        return self._take_batch()

    def _set_channel(self, kind: str | None) -> None:
        """The channel becomes ``kind``: a replaced or removed one gets nothing more."""
        with self._cond:
            if self.channel != kind:
                self.channel = kind
                self._channel_generation += 1
                self._polling = False  # a poll of the replaced channel no longer blocks the next one
                self._cond.notify_all()

    def _other_channel(self, kind: str) -> Response | None:
        """Pelion mode: ``400`` while a channel of another type exists (one type at a time)."""
        if self.pelion and self.channel not in (None, kind):
            return self._fail(f"Another channel type exists ({self.channel}); delete it first", 400)
        return None

    def _delete_pull(self, request: Request) -> Response:
        with self._cond:
            if self.channel != "long_poll":
                return json_response({"status": "ALREADY_DELETED"})
            self._set_channel(None)
        return json_response({"status": "REMOVED"})

    def _ws_status(self) -> dict[str, Any]:
        return {
            "queueSize": len(self._events) if self.channel == "websocket" else 0,
            "status": "connected" if self._ws_generation and self._ws_connected else "disconnected",
        }

    _ws_connected = False

    def _put_websocket(self, request: Request) -> Response:
        with self._cond:
            if self.channel == "websocket":
                return json_response(self._ws_status(), 200)
            if self.channel == "callback" or (self.pelion and self.channel is not None):
                return _pelion_error(400, "validation_error", f"Another channel type exists ({self.channel})")
            self._set_channel("websocket")
            return json_response(self._ws_status(), 201)

    def _get_websocket(self, request: Request) -> Response:
        with self._cond:
            if self.channel != "websocket":
                return _pelion_error(404, "not_found", "No WebSocket channel")
            return json_response(self._ws_status())

    def _delete_websocket(self, request: Request) -> Response:
        with self._cond:
            if self.channel != "websocket":
                return _pelion_error(404, "not_found", "No WebSocket channel")
            self._set_channel(None)
            self._ws_generation += 1  # closes the open socket with 1001
            self._cond.notify_all()
        return Response(204)

    def _ws_key_ok(self, request: Request) -> bool:
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        return f"pelion_ak_{self.api_key}" in protocols

    def _websocket_connect(self, request: Request) -> Response | None:
        if not is_upgrade(request):
            return self._fail("Upgrade Required", 426)
        sock = accept_upgrade(request, "wss" if request.headers.get("Sec-WebSocket-Protocol") else None)
        if not (self._authorized(request) or self._ws_key_ok(request)):  # Pelion: the upgrade, then 1008
            ws_close(sock, 1008, "Policy violation: missing or invalid API key")
            return None
        with self._cond:
            if self.channel != "websocket":
                ws_close(sock, 1011, "No WebSocket channel registered")
                return None
            self._ws_generation += 1
            self._cond.notify_all()
            generation = self._ws_generation
            self._ws_connected = True
        try:
            self._ws_serve(sock, generation)
        finally:
            with self._cond:
                if self._ws_generation == generation:
                    self._ws_connected = False
        return None

    def _ws_serve(self, sock: socket.socket, generation: int) -> None:
        """Push each batch as a text frame; what the client sends (a ping, a close, an EOF) is read
        first, and nothing is taken for a client whose close or EOF waits to be read."""
        while True:
            if _readable(sock) and not self._ws_answer(sock):
                return  # the client closed: what is queued stays queued for its next connection
            with self._cond:
                if self._stopping.is_set() or self._ws_generation != generation or self.channel != "websocket":
                    ws_close(sock, 1001, "Going away")
                    return
                if not self._events:
                    self._cond.wait(0.2)
                # right before taking a batch: nothing from the client waits (a close frame, an EOF)
                message = self._take_batch() if self._events and not _readable(sock) else None
            if message is not None:
                try:
                    self._record_message("websocket", message)
                    sock.sendall(ws_frame(_body(message), 0x1))
                except OSError:
                    self._requeue(message)
                    return

    @staticmethod
    def _ws_answer(sock: socket.socket) -> bool:
        """Read one client frame and answer a ping; ``False`` when the client closed or reset."""
        try:
            opcode, payload = ws_read(sock)
            if opcode == 0x9:
                sock.sendall(ws_frame(payload, 0xA))
        except OSError:
            return False
        if opcode in (None, 0x8):
            if opcode == 0x8:
                ws_close(sock, 1000, "")
            return False
        return True

    # -- control API ---------------------------------------------------------

    def _ctl_devices(self, request: Request) -> Response:
        with self._cond:
            return json_response({"devices": [d.describe() for d in self.devices.values()]})

    def _ctl_device(self, request: Request) -> Response:
        with self._cond:
            return json_response(self._device(request.params["ep"]).describe())

    def _ctl_add_device(self, request: Request) -> Response:
        spec = request.json() or {}
        device = self.add_device(
            spec.get("name"),
            spec.get("type", ""),
            spec.get("queue_mode", False),
            spec.get("resources"),
            spec.get("register", True),
        )
        return json_response(device.describe(), 201)

    def _ctl_remove_device(self, request: Request) -> Response:
        self.remove_device(request.params["ep"])
        return Response(204)

    def _ctl_behaviour(self, request: Request) -> Response:
        device = self.set_behaviour(request.params["ep"], **(request.json() or {}))
        return json_response(device.describe())

    def _ctl_lifecycle(self, request: Request) -> Response:
        ops = {
            "register": self.register,
            "update": self.update_registration,
            "deregister": self.deregister,
            "expire": self.expire,
        }
        ops[request.params["op"]](request.params["ep"])
        return json_response(self._device(request.params["ep"]).describe())

    def _ctl_set_value(self, request: Request) -> Response:
        spec = request.json() or {}
        if "value" not in spec:
            raise ValueError('give {"value": ...}')
        numbered = spec.get("numbered_from")
        queued = self.set_value(
            request.params["ep"],
            request.params["path"],
            spec["value"],
            int(spec.get("count", 1)),
            None if numbered is None else int(numbered),
        )
        return json_response({"notifications": queued})

    def _ctl_fleet(self, request: Request) -> Response:
        spec = request.json() or {}
        if "count" in spec:
            specs = mbed_fleet.simulated(int(spec["count"]), str(spec.get("prefix", "sim-")))
        else:
            specs = mbed_fleet.fleet(str(spec.get("fleet", "home")))
        self.add_fleet(specs, bool(spec.get("announce", True)))
        return json_response({"devices": len(self.devices)}, 201)

    def _ctl_inject(self, request: Request) -> Response:
        message = request.json()
        if not isinstance(message, dict):
            raise TypeError("give a NotificationMessage object")
        for kind, elements in message.items():
            for element in elements if isinstance(elements, list) else [elements]:
                self.enqueue(kind, element)
        return json_response({"queued": self.queued()})

    def _ctl_inject_raw(self, request: Request) -> Response:
        self.enqueue_raw(request.body)
        return json_response({"queued": self.queued()})

    def _ctl_state(self, request: Request) -> Response:
        with self._cond:
            return json_response(
                {
                    "channel": self.channel,
                    "callback": self.callback,
                    "queued": len(self._events),
                    "subscriptions": sorted(f"{ep}{p}" for ep, p in self.subscriptions),
                    "presubscriptions": self.presubscriptions,
                    "race": self.race,
                    "pull_timeout": self.pull_timeout,
                    "callback_deliveries": self.callback_deliveries[-50:],
                }
            )

    def _ctl_config(self, request: Request) -> Response:
        spec = request.json() or {}
        unknown = set(spec) - {"race", "pull_timeout"}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; use race, pull_timeout")
        if "race" in spec:
            self.race = bool(spec["race"])
        if "pull_timeout" in spec:
            self.pull_timeout = float(spec["pull_timeout"])
        return json_response({"race": self.race, "pull_timeout": self.pull_timeout})


SERVER = MbedServer
