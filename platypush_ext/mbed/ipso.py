"""Which mbed resources show on Platypush's Home panel, and how (framework-free).

* :data:`IPSO` — which LwM2M resources (``object/resource``) show, as which entity type, with which
  unit, and whether they can be written;
* :class:`EntityMap` — that map with the user's overrides (``entities:`` in the configuration),
  checked by :func:`check_overrides`;
* :func:`parse_value` / :func:`encode_value` — a resource's text as an entity's value, and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..core.errors import InvalidArgumentError
from ..core.text import one_line
from ..core.untrusted import JSON
from ..glue.actions import check_value

#: Entity types: name -> (Platypush entity class, its value column, how a value is parsed).
TYPES: dict[str, tuple[str, str, str]] = {
    "temperature": ("TemperatureSensor", "value", "number"),
    "humidity": ("HumiditySensor", "value", "number"),
    "illuminance": ("IlluminanceSensor", "value", "number"),
    "pressure": ("PressureSensor", "value", "number"),
    "voltage": ("VoltageSensor", "value", "number"),
    "current": ("CurrentSensor", "value", "number"),
    "power": ("PowerSensor", "value", "number"),
    "energy": ("EnergySensor", "value", "number"),
    "battery": ("Battery", "value", "number"),
    "numeric": ("NumericSensor", "value", "number"),
    "binary": ("BinarySensor", "value", "bool"),
    "presence": ("PresenceSensor", "value", "bool"),
    "motion": ("MotionSensor", "value", "bool"),
    "switch": ("Switch", "state", "bool"),
    "dimmer": ("Dimmer", "value", "number"),
    "raw": ("RawSensor", "value", "text"),
}


@dataclass(frozen=True)
class Kind:
    """How one resource shows on the dashboard."""

    type: str
    name: str
    unit: str | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None
    icon: str | None = None

    @property
    def parse(self) -> str:
        return TYPES[self.type][2]


_LIGHT = "fas fa-lightbulb"
#: The IPSO objects and resources shown by default, by ``(object, resource)``.
IPSO: dict[tuple[int, int], Kind] = {
    (3, 9): Kind("battery", "Battery", "%", min=0, max=100),
    (3200, 5500): Kind("binary", "Digital input"),
    (3201, 5550): Kind("switch", "Digital output", writable=True),
    (3300, 5700): Kind("numeric", "Sensor"),
    (3301, 5700): Kind("illuminance", "Illuminance", "lx"),
    (3302, 5500): Kind("presence", "Presence"),
    (3303, 5700): Kind("temperature", "Temperature", "°C"),
    (3304, 5700): Kind("humidity", "Humidity", "%", min=0, max=100),
    (3306, 5850): Kind("switch", "Actuator", writable=True),
    (3311, 5850): Kind("switch", "Light", writable=True, icon=_LIGHT),
    (3311, 5851): Kind("dimmer", "Brightness", "%", writable=True, min=0, max=100, icon=_LIGHT),
    (3312, 5850): Kind("switch", "Power switch", writable=True, icon="fas fa-plug"),
    (3315, 5700): Kind("pressure", "Barometer", "hPa"),
    (3316, 5700): Kind("voltage", "Voltage", "V"),
    (3317, 5700): Kind("current", "Current", "A"),
    (3323, 5700): Kind("pressure", "Pressure", "Pa"),
    (3328, 5700): Kind("power", "Power meter", "W"),
    (3331, 5805): Kind("energy", "Energy", "Wh"),
    (3342, 5500): Kind("binary", "On/off switch"),
    (3343, 5548): Kind("numeric", "Dimmer level", "%", min=0, max=100),
}

_TRUE, _FALSE = frozenset({"1", "true", "on"}), frozenset({"0", "false", "off"})


def split_path(path: str) -> tuple[int, int, int] | None:
    """``"/3303/0/5700"`` -> ``(3303, 0, 5700)``; ``None`` for anything else.

    :param path: a resource path.
    """
    parts = path.strip("/").split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def parse_value(kind: Kind, text: str | None) -> JSON:
    """A resource's text as the entity's value (``None`` when it is not one).

    :param kind: how the resource shows.
    :param text: its value, as the service gives it.
    """
    if text is None:
        return None
    text = text.strip()
    if kind.parse == "bool":
        return True if text.lower() in _TRUE else False if text.lower() in _FALSE else None
    if kind.parse == "number":
        try:
            number = float(text)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return text


def encode_value(kind: Kind, value: JSON) -> str:
    """What to PUT for an entity value (LwM2M text: ``1``/``0`` for booleans, plain numbers).

    :param kind: how the resource shows.
    :param value: the entity's new value.
    :raises InvalidArgumentError: the value does not fit the entity.
    """
    if kind.parse == "bool":
        parsed = value if isinstance(value, bool) else parse_value(kind, str(value))
        if parsed is None:
            raise InvalidArgumentError(f"{kind.name}: expected on/off (true, false, 1, 0), got {str(value)[:40]!r}")
        return "1" if parsed else "0"
    if kind.parse == "text":
        return str(value)
    number = None if isinstance(value, bool) else parse_value(kind, str(value))
    if number is None:
        raise InvalidArgumentError(f"{kind.name}: expected a number, got {str(value)[:40]!r}")
    if (kind.min is not None and number < kind.min) or (kind.max is not None and number > kind.max):
        raise InvalidArgumentError(f"{kind.name}: {_number(number)} is out of range {_range(kind)}")
    return str(int(number)) if number.is_integer() else repr(number)


#: The fields of one ``entities:`` mapping and their types, checked as action arguments are
#: (:func:`platypush_ext.glue.actions.check_value`: ``writable: "no"``, ``"false"`` or ``0`` is false).
SPEC_FIELDS: dict[str, object] = {
    "type": str,
    "name": str | None,
    "unit": str | None,
    "writable": bool | None,
    "min": float | None,
    "max": float | None,
}
#: Longest text of a mapping's ``type``, ``name`` or ``unit``.
MAX_SPEC_TEXT = 200


def _range(kind: Kind) -> str:
    """``[0, 100]``, ``(at least 0)`` or ``(at most 100)``."""
    if kind.min is not None and kind.max is not None:
        return f"[{_number(kind.min)}, {_number(kind.max)}]"
    return f"(at least {_number(kind.min)})" if kind.min is not None else f"(at most {_number(kind.max or 0)})"


class EntityMap:
    """The IPSO map with the user's overrides.

    :param overrides: ``{path: spec}``; ``path`` is exact (``/26241/0/1``) or any instance
        (``/26241/*/1``); ``spec`` has ``type`` (one of :data:`TYPES`, or ``none`` to hide a
        resource) and optionally ``name``, ``unit``, ``writable``, ``min``, ``max``.
    :raises InvalidArgumentError: a mapping is not valid (one line, see :func:`check_overrides`).
    """

    FIELDS = frozenset(SPEC_FIELDS)

    def __init__(self, overrides: Mapping[str, Mapping[str, JSON]] | None = None):
        self.overrides: dict[str, Kind | None] = check_overrides(overrides)

    def kind(self, path: str) -> Kind | None:
        """How a resource shows, or ``None`` when it stays off the dashboard.

        :param path: the resource path, e.g. ``/3303/0/5700``.
        """
        ids = split_path(path)
        if ids is None:
            return None
        for key in (path, f"/{ids[0]}/*/{ids[2]}"):
            if key in self.overrides:
                return self.overrides[key]
        kind = IPSO.get((ids[0], ids[2]))
        if kind is not None and ids[1] > 0:
            kind = replace(kind, name=f"{kind.name} {ids[1] + 1}")
        return kind


def check_overrides(overrides: JSON) -> dict[str, Kind | None]:
    """The one validator of the ``entities:`` configuration: ``{path key: Kind, or None (hidden)}``.

    :param overrides: ``{path: spec}`` as :class:`EntityMap` takes it (``None``: no overrides).
    :raises InvalidArgumentError: whatever is wrong with it, in one line that names the path and field.
    """
    try:
        if overrides is None:
            return {}
        if not isinstance(overrides, Mapping):
            raise InvalidArgumentError(
                "entities: expected an object {resource path: {type, name, unit, writable, min, max}}, "
                f"got {type(overrides).__name__}"
            )
        checked: dict[str, Kind | None] = {}
        for path, spec in overrides.items():
            checked[_path_key(path)] = _check_spec(str(path), spec)  # named as written (a valid path)
        return checked
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(one_line(exc)) from None


def _path_key(path: object) -> str:
    """``/26241/0/1`` or ``/26241/*/1`` (a missing leading ``/`` is added)."""
    parts = str(path).strip("/").split("/")
    if len(parts) != 3 or not (parts[0].isdigit() and parts[2].isdigit() and (parts[1].isdigit() or parts[1] == "*")):
        raise InvalidArgumentError(f"entities: {str(path)[:60]!r} is not a resource path like /26241/0/1 or /26241/*/1")
    return "/" + "/".join(parts)


def _check_spec(path: str, spec: JSON) -> Kind | None:
    """One mapping as a :class:`Kind` (``None`` for ``type: none``)."""
    expected = f"entities.{path}: expected an object with {', '.join(SPEC_FIELDS)}"
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(f"{expected}, got {type(spec).__name__}")
    unknown = sorted(str(k)[:30] for k in spec if k not in SPEC_FIELDS)
    if unknown:
        raise InvalidArgumentError(f"{expected} (unknown: {', '.join(unknown)[:100]})")
    values = {k: check_value(v, SPEC_FIELDS[k], f"entities.{path}.{k}", MAX_SPEC_TEXT) for k, v in spec.items()}
    type_ = (values.get("type") or "raw").lower()
    if type_ == "none":
        return None
    if type_ not in TYPES:
        raise InvalidArgumentError(f"entities.{path}: unknown type {type_[:30]!r} (one of {', '.join(TYPES)}, none)")
    low, high = (None if values.get(k) is None else float(values[k]) for k in ("min", "max"))
    if low is not None and high is not None and low > high:
        raise InvalidArgumentError(f"entities.{path}: min ({_number(low)}) must not exceed max ({_number(high)})")
    writable = values.get("writable")
    if writable is None:
        writable = type_ in ("switch", "dimmer")
    name = values.get("name") or f"Resource {path}"
    return Kind(type_, name, values.get("unit"), writable, min=low, max=high)


def _number(value: float) -> str:
    """A number for a message: whole numbers without a decimal point, others exactly (``repr``)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
