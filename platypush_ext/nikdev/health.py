"""NikDev's outbox on the Home panel: pending entries and dead letters (``glue/health.py``)."""

from __future__ import annotations

from platypush.entities import Entity

from ..core.listening import Availability
from ..core.untrusted import JSONObject
from ..glue.health import group
from .outbox import Outbox

#: The outbox's entity id (its readings: ``nikdev-outbox/pending``, ``…/dead``, ``…/reachable``, ``…/key``).
ENTITY_ID = "nikdev-outbox"


def outbox_entities(outbox: Outbox, server: Availability) -> list[Entity]:
    """The outbox as a device with its readings: pending entries, dead letters, whether the server
    answered the last push and whether it accepted the key (``None``: not tried yet).

    :param outbox: the plugin's outbox.
    :param server: the server's availability (a refused key: reachable, the key not accepted).
    """
    status: JSONObject = outbox.status()
    refused = server.rejected_since is not None
    reachable = True if refused else server.up
    key_accepted = None if reachable is None else not refused
    return group(
        ENTITY_ID,
        "NikDev outbox",
        "Entries committed locally and not yet accepted by the NikDev server",
        [
            ("/pending", "Pending entries", "NumericSensor", {"value": status["pending"], "unit": "entries"}),
            ("/dead", "Dead letters", "NumericSensor", {"value": status["dead"], "unit": "entries"}),
            ("/reachable", "Server reachable", "BinarySensor", {"value": reachable}),
            ("/key", "API key accepted", "BinarySensor", {"value": key_accepted}),
        ],
        "fas fa-inbox",
    )
