"""The control API of the mbed sandbox (``/_sandbox/``): what tests and the demo make the simulated
devices do, and what they read of its state (see ``docs/mbed.md``)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from ..core import Request, Response, json_response
from .fleets import fleet_named, simulated
from .queued import MbedQueue

#: A route of the control API: method, path pattern, handler (its errors answered as ``{"error"}``).
ControlRoute = tuple[str, str, Callable[[Request], Response]]


class MbedControl(MbedQueue):
    """The ``/_sandbox/`` routes: devices, their values and behaviour, raw messages, settings."""

    def _control_routes(self) -> list[ControlRoute]:
        """Every route of the control API."""
        return [
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

    def _control(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
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

    def _ctl_devices(self, request: Request) -> Response:
        with self._cond:
            return json_response({"devices": [d.describe() for d in self.devices.values()]})

    def _ctl_device(self, request: Request) -> Response:
        with self._cond:
            return json_response(self._device(request.params["ep"]).describe())

    def _ctl_add_device(self, request: Request) -> Response:
        spec = request.json() or {}
        device = self.add_device(
            spec.get("name", ""),  # missing, null or "": refused by add_device
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
            specs = simulated(int(spec["count"]), str(spec.get("prefix", "sim-")))
        else:
            specs = fleet_named(str(spec.get("fleet", "home")))
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
                    **self.queue_state(),
                }
            )

    def _ctl_config(self, request: Request) -> Response:
        spec = request.json() or {}
        unknown = set(spec) - {"race", "pull_timeout", "time_scale", "round_trip"}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; use race, pull_timeout, time_scale, round_trip")
        if "round_trip" in spec:
            self.round_trip = max(0.0, float(spec["round_trip"]))
        if "time_scale" in spec:
            scale = float(spec["time_scale"])
            if not 0 < scale <= 1:
                raise ValueError("time_scale must be above 0 and at most 1")
            self.time_scale = scale
        if "race" in spec:
            self.race = bool(spec["race"])
        if "pull_timeout" in spec:
            self.pull_timeout = float(spec["pull_timeout"])
        settings = ("race", "pull_timeout", "time_scale", "round_trip")
        return json_response({name: getattr(self, name) for name in settings})
