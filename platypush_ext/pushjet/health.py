"""Each Pushjet device on the Home panel: connected, and how its messages arrive (``glue/health.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from platypush.entities import Entity

from ..glue.health import group
from .realtime import POLLING, REALTIME

#: ``(device uuid, connected, path)``: ``path`` is ``realtime`` or ``polling``.
DeviceState = tuple[str, bool | None, str]


def device_entities(states: Sequence[DeviceState]) -> list[Entity]:
    """One device entity (``pushjet-<uuid>``) per Pushjet device, with its readings.

    :param states: the devices' states.
    """
    entities: list[Entity] = []
    for device, connected, path in states:
        entities += group(
            f"pushjet-{device}",
            f"Pushjet device {device[:8]}",
            f"Pushjet device {device}: receives the messages of its subscriptions",
            [
                ("/connected", "Connected", "BinarySensor", {"value": connected}),
                ("/path", "Path", "EnumSensor", {"value": path, "values": [REALTIME, POLLING]}),
            ],
            "fas fa-bell",
            reachable=bool(connected),
        )
    return entities
