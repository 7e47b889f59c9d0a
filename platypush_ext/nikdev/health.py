"""NikDev's outbox on the Home panel: pending entries and dead letters (``glue/health.py``)."""

from __future__ import annotations

from typing import Any

from platypush.entities import Entity

from ..glue.health import group
from .outbox import Outbox

#: The outbox's entity id (its readings: ``nikdev-outbox/pending``, ``…/dead``, ``…/reachable``).
ENTITY_ID = "nikdev-outbox"


def outbox_entities(outbox: Outbox, reachable: bool | None) -> list[Entity]:
    """The outbox as a device with its readings.

    :param outbox: the plugin's outbox.
    :param reachable: whether the server answered the last push (``None``: not tried yet).
    """
    status: dict[str, Any] = outbox.status()
    return group(
        ENTITY_ID,
        "NikDev outbox",
        "Entries committed locally and not yet accepted by the NikDev server",
        [
            ("/pending", "Pending entries", "NumericSensor", {"value": status["pending"], "unit": "entries"}),
            ("/dead", "Dead letters", "NumericSensor", {"value": status["dead"], "unit": "entries"}),
            ("/reachable", "Server reachable", "BinarySensor", {"value": reachable}),
        ],
        "fas fa-inbox",
    )
