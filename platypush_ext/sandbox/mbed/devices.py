"""The simulated endpoints of the mbed sandbox: their resources and values, registrations,
subscriptions and notification rules, how they answer requests (slow, silent, failing), and the
fleets they come in (:mod:`.fleets`)."""

from __future__ import annotations

import base64
import functools
import hashlib
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ...core.untrusted import JSON, JSONObject
from .delivery import MbedDelivery
from .fleets import fleet_named

logger = logging.getLogger("platypush_ext.sandbox")


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

    def as_listing(self) -> JSONObject:
        return {"uri": self.path, "rt": self.rt, "obs": self.obs, "type": self.ct}

    def as_registration(self) -> JSONObject:
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
    asleep: bool = False  # requests wait in its queue until it wakes or contacts the service (.queued)
    contact: bool = False  # it contacted the service (a registration update): its queue is delivered
    drops: int = 0  # the next deliveries of queued requests that fail (each counts one attempt)
    operator_suspended: bool = False  # POST /v3/devices/{id}/suspend (and /resume)
    system_suspended: bool = False
    suspension: dict[str, str] = field(default_factory=dict)  # last_operator_suspended_description, _updated_at

    @property
    def suspended(self) -> bool:
        """Suspended by the operator or the system (``lifecycle_status: blocked``)."""
        return self.operator_suspended or self.system_suspended

    def as_listing(self) -> JSONObject:
        data: JSONObject = {"name": self.name, "type": self.type, "status": "ACTIVE"}
        if self.queue_mode:
            data["q"] = True
        return data

    def as_registration(self) -> JSONObject:
        data = {
            "ep": self.name,
            "ept": self.type,
            "q": self.queue_mode,
            "resources": [r.as_registration() for r in self.resources.values()],
        }
        if self.label:
            data["original-ep"] = self.label
        return data

    def as_device_data(self) -> JSONObject:
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
            "lifecycle_status": "blocked" if self.suspended else "enabled",
            "operator_suspended": self.operator_suspended,
            "system_suspended": self.system_suspended,
            **self.suspension,
        }

    def describe(self) -> JSONObject:
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
            "asleep": self.asleep,
            "drops": self.drops,
            "operator_suspended": self.operator_suspended,
            "system_suspended": self.system_suspended,
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


def _b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode("ascii")


def _number(value: bytes) -> float | None:
    """A resource value as a number, or ``None`` when it is not one."""
    try:
        return float(value)
    except ValueError:
        return None


def _matches(pattern: str, value: str) -> bool:
    """Pre-subscription matching: exact, or a prefix with a trailing ``*``."""
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


class MbedDevices(MbedDelivery):
    """The simulated devices (the Python side of the control API) and what they do."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.race = False  # deliver async responses before answering 202
        self._due: list[tuple[float, int, Callable[[], None]]] = []  # scheduled answers (a heap)
        self._due_order = itertools.count()
        self.devices: dict[str, Device] = {}
        self.presubscriptions: list[JSONObject] = []
        self.transactions = 0
        super().__init__(host, port)

    def add_demo_devices(self, fleet: str = "basic") -> None:
        """Add a fleet of :mod:`.fleets`: ``basic`` (a light, a temperature sensor, a queue-mode
        node) or ``home`` (sensors, a dimmable light, a smart plug, presence, batteries).

        :param fleet: the fleet's name.
        """
        self.add_fleet(fleet_named(fleet))

    def add_fleet(self, specs: list[JSONObject], announce: bool = True) -> None:
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
        resources: list[JSONObject] | None = None,
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
    def _resource_from(spec: JSONObject) -> Resource:
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

    def _device(self, name: str) -> Device:
        """A device by its name (its id in Pelion mode) or its label."""
        device = self.devices.get(name) or self.devices.get(self.device_id(name))
        if device is None:
            raise KeyError(name)
        return device

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
            device.registered = device.contact = True  # a queue-mode device's requests go out now
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

    def set_behaviour(self, name: str, **behaviour: JSON) -> Device:
        """Make a device slow (``delay``), ``silent`` (optionally with ``timeout_after``),
        failing (``fail_status``, ``fail_error``), ``asleep`` (requests are queued), failing its next
        ``drops`` queued deliveries, or ``system_suspended``; ``None``/``False`` values reset."""
        allowed = {
            "delay",
            "silent",
            "timeout_after",
            "fail_status",
            "fail_error",
            "asleep",
            "drops",
            "system_suspended",
        }
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
                elif key in ("silent", "asleep", "system_suspended"):
                    value = bool(value)
                elif key == "drops":
                    value = int(value or 0)
                elif value is not None:
                    value = int(value) if key == "fail_status" else float(value)
                setattr(device, key, value)
            if not device.silent:
                device.pending = 0  # requests it never answered are forgotten
            return device

    def set_value(self, name: str, path: str, value: object, count: int = 1, numbered_from: int | None = None) -> int:
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
                    if device is None or not device.registered:
                        continue
                    resource = device.resources.get(path)
                    if resource is None or not resource.rules:
                        continue
                    since = now - (resource.notified_at or now)
                    pmin, pmax = resource.rules.get("pmin", 0.0), resource.rules.get("pmax")
                    if (resource.held and since >= pmin) or (pmax is not None and since >= max(pmax, pmin)):
                        self._notify(device, resource)

    def _auto_change_loop(self) -> None:
        value = 21.5
        while not self._stopping.wait(self.auto_change):
            value = round(min(30.0, max(15.0, value + random.uniform(-0.5, 0.5))), 1)
            try:
                self.set_value("temp-sensor-01", "/3303/0/5700", f"{value}")
            except KeyError:
                pass

    # -- answering requests ----------------------------------------------------

    def _respond_later(self, device: Device, async_id: str, action: Callable[[], JSONObject]) -> None:
        """Run ``action`` (returns the async-response element fields) after the device's delay, counted
        from the moment its ``202`` is written and at least ``round_trip`` (a device answers a network
        round trip later at the least; a client that learns the async id from the ``202`` must have read
        it first). Answers due at the same time are queued in the order of their requests."""
        device.pending += 1
        delay, silent, timeout_after = device.delay, device.silent, device.timeout_after
        fail_status, fail_error = device.fail_status, device.fail_error
        if silent and timeout_after is None:
            return  # never answered: stays pending (until the device's behaviour changes)

        def answer() -> None:
            try:
                if silent or fail_status:
                    status, error = (504, "TIMEOUT") if silent else (fail_status, fail_error or "FAILED")
                    element = {"id": async_id, "status": status, "error": error, "ct": "text/plain", "max-age": 0}
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
        wait = max(delay, self.round_trip) + ((timeout_after or 0.0) if silent else 0.0)
        self.after_response(functools.partial(self._schedule, wait, answer))

    def _schedule(self, delay: float, job: Callable[[], None]) -> None:
        """Run ``job`` in the answers' thread ``delay`` seconds from now (jobs due together in order).

        :param delay: seconds.
        :param job: what to run.
        """
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._due_order), job))
            if not any(t.name == "mbed-answers" for t in self._threads):
                self._spawn(self._answers_loop, "mbed-answers")
            self._cond.notify_all()

    def _answers_loop(self) -> None:
        """Runs the scheduled answers when they are due, one at a time, until the server stops."""
        while not self._stopping.is_set():
            with self._cond:
                wait = self._due[0][0] - time.monotonic() if self._due else 0.05
                if wait > 0:
                    self._cond.wait(min(wait, 0.05))
                    continue
                job = heapq.heappop(self._due)[2]
            try:
                job()
            except Exception:  # noqa: BLE001 - a bug of one answer: logged, the others are still answered
                logger.exception("mbed sandbox: a device's answer failed")

    def _apply(self, device: Device, method: str, path: str, body: bytes) -> JSONObject:
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
