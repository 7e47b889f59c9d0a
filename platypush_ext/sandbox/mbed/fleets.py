"""The simulated mbed fleets: the historic three demo devices, a realistic home, and N for load tests.

A fleet is a list of device specs, each ``{"name", "type", "queue_mode"?, "resources": [{"path",
"value", "rt"?, "obs"?}]}`` as :meth:`~.devices.MbedDevices.add_device` takes them. Resource ids
follow the IPSO registry (``/3303`` temperature, ``/3311`` light control…).
"""

from __future__ import annotations

from ...core.untrusted import JSONObject


def _res(path: str, value: object, obs: bool = True, rt: str | None = None) -> JSONObject:
    return {"path": path, "value": str(value), "rt": rt or path.rsplit("/", 1)[-1], "obs": obs}


#: A light, a temperature sensor and a queue-mode node (what the tests have always used).
BASIC: list[JSONObject] = [
    {
        "name": "node-001",
        "type": "Light",
        "resources": [
            _res("/3/0/0", "ARM", False, "manufacturer"),
            _res("/3/0/1", "Mbed", False, "model"),
            _res("/3311/0/5850", "0"),
            _res("/3311/0/5851", "50"),
            _res("/3311/0/5800", "", False),
        ],
    },
    {
        "name": "temp-sensor-01",
        "type": "Sensor",
        "resources": [_res("/3303/0/5700", "21.5"), _res("/3303/0/5701", "Cel", False)],
    },
    {
        "name": "queue-node-01",
        "type": "QueueModeNode",
        "queue_mode": True,
        "resources": [_res("/3/0/1", "QNode", False, "model")],
    },
]

#: A home: a temperature + humidity + light-level sensor on battery, a dimmable light, a smart plug
#: (power control with a power and a voltage meter), a presence detector, a barometer.
HOME: list[JSONObject] = [
    {
        "name": "living-room-sensor",
        "type": "EnvironmentSensor",
        "resources": [
            _res("/3/0/0", "ARM", False, "manufacturer"),
            _res("/3/0/9", "87"),
            _res("/3303/0/5700", "21.5"),
            _res("/3304/0/5700", "45.0"),
            _res("/3301/0/5700", "320"),
        ],
    },
    {
        "name": "hall-light",
        "type": "DimmableLight",
        "resources": [_res("/3311/0/5850", "0"), _res("/3311/0/5851", "60")],
    },
    {
        "name": "kitchen-plug",
        "type": "SmartPlug",
        "resources": [_res("/3312/0/5850", "1"), _res("/3328/0/5700", "42.5"), _res("/3316/0/5700", "230.1")],
    },
    {
        "name": "entrance-presence",
        "type": "PresenceSensor",
        "resources": [_res("/3302/0/5500", "0"), _res("/3/0/9", "64")],
    },
    {
        "name": "garden-barometer",
        "type": "Barometer",
        "resources": [_res("/3323/0/5700", "101325"), _res("/3/0/9", "100")],
    },
]

FLEETS = {"basic": BASIC, "home": HOME}


def fleet_named(name: str) -> list[JSONObject]:
    """A fleet by name.

    :param name: ``basic`` or ``home``.
    :raises ValueError: no such fleet.
    """
    if name not in FLEETS:
        raise ValueError(f"unknown fleet {name[:40]!r}; use {', '.join(FLEETS)}")
    return FLEETS[name]


def simulated(count: int, prefix: str = "sim-") -> list[JSONObject]:
    """``count`` endpoints, each a temperature + humidity sensor with a switch and a battery.

    :param count: how many (at most 10,000).
    :param prefix: their names' prefix (``sim-0001``…).
    """
    if not 0 < int(count) <= 10_000:
        raise ValueError("count must be between 1 and 10000")
    return [
        {
            "name": f"{prefix}{i:04d}",
            "type": "SimulatedNode",
            "resources": [
                _res("/3303/0/5700", f"{20 + i % 10}.5"),
                _res("/3304/0/5700", f"{40 + i % 20}"),
                _res("/3312/0/5850", str(i % 2)),
                _res("/3/0/9", str(100 - i % 50)),
            ],
        }
        for i in range(int(count))
    ]
