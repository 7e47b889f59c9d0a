"""The mbed sandbox assembled: :class:`MbedServer`, its constructor options and command line."""

from __future__ import annotations

import argparse

from .api import MbedApi
from .control import MbedControl
from .fleets import FLEETS

DEFAULT_API_KEY = "mbed-sandbox-key-0123456789"


class MbedServer(MbedApi, MbedControl):
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
    :param fleet: which demo devices (``basic`` or ``home``, see :mod:`.fleets`).
    :param round_trip: the least seconds between a device request's ``202`` and the device's answer
        (default 0.02: a device answers at least a network round trip later; ``0``: at once after the 202).
    :param time_scale: service seconds → real seconds for queued requests (``expiry-seconds``; tests
        use e.g. ``0.01``, so that the 60-s minimum lasts 0.6 s; see :mod:`.queued`).
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
        callback_ca: str | None = None,
        time_scale: float = 1.0,
        round_trip: float = 0.02,
    ):
        if api not in ("connector", "pelion"):
            raise ValueError(f"api must be 'connector' or 'pelion', got {api!r}")
        self.pelion = api == "pelion"
        self.exchanges = [] if record else None
        self.api_key = api_key
        self.pull_timeout = pull_timeout
        self.callback_retry_max = callback_retry_max
        #: how callbacks check an https:// receiver's certificate: a CA file, or ``True`` (the system's CAs)
        self.callback_verify: bool | str = callback_ca or True
        self.auto_change = auto_change
        if not 0 < time_scale <= 1:
            raise ValueError("time_scale must be above 0 and at most 1")
        self.time_scale = float(time_scale)
        self.round_trip = max(0.0, float(round_trip))
        super().__init__(host, port)
        if demo_devices:
            self.add_demo_devices(fleet)

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
            "--fleet", choices=sorted(FLEETS), default="basic", help="the demo devices (default: basic)"
        )
        parser.add_argument("--callback-ca", help="a CA file to check an https:// callback receiver's certificate with")

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
            callback_ca=args.callback_ca,
        )

    def describe(self) -> str:
        return (
            f"mbed: {self.base_url} (Authorization: Bearer {self.api_key}; "
            f"devices: {', '.join(self.devices) or 'none'}; control API {self.url}/_sandbox/devices)"
        )

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

    def setup_routes(self) -> None:
        for method, pattern, handler in self._mode_routes(self._api_routes()):
            self.route(method, pattern, self._authenticated(handler))
        for method, pattern, control in self._control_routes():
            self.route(method, pattern, self._control(control))
