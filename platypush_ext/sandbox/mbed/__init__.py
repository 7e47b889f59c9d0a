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
  :mod:`.control` and ``docs/mbed.md``), which can register,
  update, de-register, expire, change values, answer slowly, fail or stay silent,
  and a "race" switch that delivers an async response *before* its ``202``; raw messages
  (``POST /_sandbox/raw-notification``: bytes sent exactly as given, for hostile-data tests).

Run it alone with ``python -m platypush_ext.sandbox mbed --port 8082 [--api-key KEY]``.

Its sections: :mod:`.devices` (the simulated endpoints; :mod:`.fleets`), :mod:`.delivery` (the
notification queue and channels), :mod:`.api` (the Connector and Pelion routes), :mod:`.control`
(the ``/_sandbox/`` routes), :mod:`.server` (:class:`MbedServer`, assembling them).
"""

from __future__ import annotations

from .server import MbedServer

SERVER = MbedServer

__all__ = ["SERVER", "MbedServer"]
