"""A local NikDev IoT upload API server, faithful to ``protocols/nikdev.md``.

The two endpoints the original client ``nikdev_iot`` 0.5.5 uses, under
``/api/v1/``:

* ``POST /api/v1/entries/`` — a batch ``{"clientTimestamp": n, "entries":
  [{"timestamp": t, "values": [{field: value}, ...]}, ...]}``; answers
  ``200 {"status": "ok"}``.
* ``GET /api/v1/values/<id>,<id>`` — the latest stored value of each field:
  ``200 {"data": {"servertime": n, "values": [{id: {"value": v, "timestamp": t}}]}}``.

Both need the ``x-device-id`` and ``x-api-key`` headers (the pre-2018 names
``x-device`` / ``x-token`` are accepted too). Every 4xx answer is
``{"message": "<human text>"}`` (what the original client reads):

==========  ==========================================================
status      when
==========  ==========================================================
401         a header is missing, the device is unknown or the key is wrong
403         the key is valid but has no write access (``POST`` only)
400         the body is not JSON or does not have the documented shape
404         ``GET values/``: a field has never received a value
==========  ==========================================================

What arrived is readable (and resettable) through the control API::

    GET    /_sandbox/entries          every stored entry, in arrival order
                                      (?field=<id> keeps entries with that field)
    DELETE /_sandbox/entries          forget every entry and value
    GET    /_sandbox/state            counts: batches, entries, values, duplicates, keys
    GET    /_sandbox/keys             the accepted credentials
    POST   /_sandbox/keys             {"device_id", "api_key", "write": true} add a key
    DELETE /_sandbox/keys/<api_key>   revoke a key

plus the core's ``/_sandbox/faults``, ``/_sandbox/requests`` and
``/_sandbox/health``. A *duplicate* is an entry whose timestamp and values are
identical to an entry received earlier (the protocol has no idempotency key,
so this is how a re-delivery shows).

Run it alone with ``python -m platypush_ext.sandbox nikdev --port 8083
[--device-id ID] [--api-key KEY]``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote

from ..core.untrusted import JSON, JSONObject
from .core import Abort, Request, Response, SandboxServer, json_response

#: Credentials accepted when none are given (documented, printed at start-up).
DEFAULT_DEVICE_ID = "5a1e0d3c-0000-4000-8000-00000000d001"
DEFAULT_API_KEY = "6b2f1e4d-0000-4000-8000-0000000a0001"
#: A key of the default device that may read but not write (answers 403 on POST).
DEFAULT_READ_ONLY_KEY = "6b2f1e4d-0000-4000-8000-0000000a00f0"

OK = {"status": "ok"}
SCALARS = (str, int, float, bool)


class NikdevFailure(Abort):
    """Aborts a handler with ``{"message": ...}``."""

    def __init__(self, status: int, message: str):
        super().__init__(json_response({"message": message}, status), message)
        self.status, self.message = status, message


@dataclass
class _Key:
    device_id: str
    api_key: str
    write: bool = True


@dataclass
class _Stored:
    seq: int
    batch: int
    device_id: str
    timestamp: int
    client_timestamp: int
    corrected_timestamp: int
    received_at: float
    values: list[JSONObject]
    duplicate: bool

    def as_dict(self) -> JSONObject:
        return {
            "seq": self.seq,
            "batch": self.batch,
            "device_id": self.device_id,
            "timestamp": self.timestamp,
            "client_timestamp": self.client_timestamp,
            "corrected_timestamp": self.corrected_timestamp,
            "received_at": self.received_at,
            "values": self.values,
            "duplicate": self.duplicate,
        }


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_batch(body: JSON) -> tuple[int, list[tuple[int, list[JSONObject]]]]:
    """The validated ``(clientTimestamp, [(timestamp, values)])`` of a POST body."""
    if not isinstance(body, dict):
        raise NikdevFailure(400, "Malformed data: the body must be a JSON object")
    client_ts: JSON = body.get("clientTimestamp")
    if not _is_int(client_ts) and not (isinstance(client_ts, float) and client_ts.is_integer()):
        raise NikdevFailure(400, "Malformed data: clientTimestamp must be an integer (Unix seconds)")
    entries = body.get("entries")
    if not isinstance(entries, list):
        raise NikdevFailure(400, "Malformed data: entries must be a list")
    checked = []
    for index, entry in enumerate(entries):
        where = f"entries[{index}]"
        if not isinstance(entry, dict):
            raise NikdevFailure(400, f"Malformed data: {where} must be an object")
        timestamp: JSON = entry.get("timestamp")
        if not _is_int(timestamp) and not (isinstance(timestamp, float) and timestamp.is_integer()):
            raise NikdevFailure(400, f"Malformed data: {where}.timestamp must be an integer (Unix seconds)")
        values = entry.get("values")
        if not isinstance(values, list):
            raise NikdevFailure(400, f"Malformed data: {where}.values must be a list")
        seen: set[str] = set()
        for position, item in enumerate(values):
            if not isinstance(item, dict) or len(item) != 1:
                raise NikdevFailure(400, f"Malformed data: {where}.values[{position}] must be a single-key object")
            ((field, value),) = item.items()
            if not field:
                raise NikdevFailure(400, f"Malformed data: {where}.values[{position}] has an empty field id")
            if not isinstance(value, SCALARS) or (isinstance(value, float) and not math.isfinite(value)):
                raise NikdevFailure(
                    400, f"Malformed data: value of field '{field}' must be a string, number or boolean"
                )
            if field in seen:
                raise NikdevFailure(400, f"Malformed data: field '{field}' appears twice in {where}")
            seen.add(field)
        checked.append((int(timestamp), values))
    return int(client_ts), checked


class NikdevServer(SandboxServer):
    """The NikDev IoT upload API, in memory.

    :param device_id: the Device ID accepted (default :data:`DEFAULT_DEVICE_ID`).
    :param api_key: its API key with write access (default :data:`DEFAULT_API_KEY`).
    :param read_only_key: a key of the same device without write access
        (default :data:`DEFAULT_READ_ONLY_KEY`; ``None`` for none).
    :param correct_skew: store each entry's timestamp shifted by
        ``server_now - clientTimestamp`` in ``corrected_timestamp``, and use
        it for ``GET values/`` (default true).
    """

    name = "nikdev"
    default_port = 8083
    api_prefix = "/api/v1/"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        device_id: str = DEFAULT_DEVICE_ID,
        api_key: str = DEFAULT_API_KEY,
        read_only_key: str | None = DEFAULT_READ_ONLY_KEY,
        correct_skew: bool = True,
    ):
        self.device_id, self.api_key = device_id, api_key
        self.correct_skew = correct_skew
        self._keys: dict[str, _Key] = {api_key: _Key(device_id, api_key, True)}
        if read_only_key:
            self._keys[read_only_key] = _Key(device_id, read_only_key, False)
        self._data_lock = threading.Lock()
        self._entries: list[_Stored] = []
        self._fingerprints: set[str] = set()
        self._latest: dict[tuple[str, str], tuple[JSON, int, int]] = {}  # (device, field) -> (value, ts, seq)
        self._batches = 0
        self._duplicates = 0
        super().__init__(host, port)

    # -- CLI ------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--device-id", default=DEFAULT_DEVICE_ID, help=f"the Device ID to accept (default: {DEFAULT_DEVICE_ID})"
        )
        parser.add_argument(
            "--api-key",
            default=DEFAULT_API_KEY,
            help=f"the API key with write access to accept (default: {DEFAULT_API_KEY})",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, host: str, port: int) -> NikdevServer:
        return cls(host=host, port=port, device_id=args.device_id, api_key=args.api_key)

    def describe(self) -> str:
        return (
            f"nikdev: {self.base_url}  (x-device-id: {self.device_id}, x-api-key: {self.api_key}; "
            f"received entries: {self.url}/_sandbox/entries)"
        )

    # -- routes ---------------------------------------------------------------

    def setup_routes(self) -> None:
        self.route("POST", "/api/v1/entries/", self._post_entries)
        self.route("GET", r"/api/v1/values/(?P<ids>[^/]*)", self._get_values)
        self.route("GET", "/_sandbox/entries", self._list_entries)
        self.route("DELETE", "/_sandbox/entries", self._reset_entries)
        self.route("GET", "/_sandbox/state", lambda r: json_response(self.state()))
        self.route("GET", "/_sandbox/keys", self._list_keys)
        self.route("POST", "/_sandbox/keys", self._add_key_route)
        self.route("DELETE", r"/_sandbox/keys/(?P<key>[^/]+)", self._revoke_key_route)

    def refused(self, request: Request) -> Response:
        return NikdevFailure(401, "Invalid API key").response

    def not_found(self, request: Request) -> Response:
        return json_response({"message": f"Not found: {request.path}"}, 404)

    def method_not_allowed(self, request: Request) -> Response:
        return json_response({"message": f"Method {request.method} not allowed on {request.path}"}, 405)

    def _authenticate(self, request: Request, write: bool) -> _Key:
        device = request.headers.get("x-device-id") or request.headers.get("x-device")
        key = request.headers.get("x-api-key") or request.headers.get("x-token")
        if not device or not key:
            raise NikdevFailure(401, "Missing credentials: send the x-device-id and x-api-key headers")
        with self._data_lock:
            found = self._keys.get(key)
        if found is None or found.device_id != device:
            raise NikdevFailure(401, "Invalid API key")
        if write and not found.write:
            raise NikdevFailure(403, "This API key does not have write access")
        return found

    def _post_entries(self, request: Request) -> Response:
        key = self._authenticate(request, write=True)
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise NikdevFailure(400, "Malformed data: the body is not JSON") from None
        client_ts, entries = _check_batch(body)
        now = time.time()
        offset = int(now) - client_ts if self.correct_skew else 0
        with self._data_lock:
            self._batches += 1
            for timestamp, values in entries:
                fingerprint = json.dumps([key.device_id, timestamp, values], sort_keys=True)
                duplicate = fingerprint in self._fingerprints
                self._fingerprints.add(fingerprint)
                self._duplicates += duplicate
                stored = _Stored(
                    seq=len(self._entries) + 1,
                    batch=self._batches,
                    device_id=key.device_id,
                    timestamp=timestamp,
                    client_timestamp=client_ts,
                    corrected_timestamp=timestamp + offset,
                    received_at=now,
                    values=values,
                    duplicate=duplicate,
                )
                self._entries.append(stored)
                for item in values:
                    ((field, value),) = item.items()
                    previous = self._latest.get((key.device_id, field))
                    if previous is None or stored.corrected_timestamp >= previous[1]:
                        self._latest[(key.device_id, field)] = (value, stored.corrected_timestamp, stored.seq)
        return json_response(OK)

    def _get_values(self, request: Request) -> Response:
        key = self._authenticate(request, write=False)
        ids = [unquote(part) for part in request.params["ids"].split(",")]
        if not ids or any(not part for part in ids):
            raise NikdevFailure(400, "Give one or more field ids separated by commas")
        with self._data_lock:
            missing = [f for f in ids if (key.device_id, f) not in self._latest]
            if missing:
                raise NikdevFailure(404, "Unknown field(s): " + ", ".join(missing))
            values = [
                {f: {"value": self._latest[(key.device_id, f)][0], "timestamp": self._latest[(key.device_id, f)][1]}}
                for f in ids
            ]
        return json_response({"data": {"servertime": int(time.time()), "values": values}})

    # -- control API ---------------------------------------------------------

    def entries(self, field: str | None = None) -> list[JSONObject]:
        """Every stored entry (as the control API shows it), optionally only those with ``field``."""
        with self._data_lock:
            found = list(self._entries)
        if field is not None:
            found = [e for e in found if any(field in item for item in e.values)]
        return [e.as_dict() for e in found]

    def received_values(self, field: str) -> list[JSON]:
        """Every value received for ``field``, in arrival order (duplicates included)."""
        return [item[field] for e in self.entries(field) for item in e["values"] if field in item]

    def state(self) -> JSONObject:
        """Counts of what the server received."""
        with self._data_lock:
            return {
                "batches": self._batches,
                "entries": len(self._entries),
                "values": sum(len(e.values) for e in self._entries),
                "duplicates": self._duplicates,
                "fields": len(self._latest),
                "keys": len(self._keys),
            }

    def reset(self) -> None:
        """Forget every received entry and value."""
        with self._data_lock:
            self._entries.clear()
            self._fingerprints.clear()
            self._latest.clear()
            self._batches = self._duplicates = 0

    def add_key(self, api_key: str, device_id: str | None = None, write: bool = True) -> None:
        """Accept another key (for ``device_id``, default the server's device)."""
        with self._data_lock:
            self._keys[api_key] = _Key(device_id or self.device_id, api_key, write)

    def revoke_key(self, api_key: str) -> bool:
        """Stop accepting a key; returns whether it existed."""
        with self._data_lock:
            return self._keys.pop(api_key, None) is not None

    def _list_entries(self, request: Request) -> Response:
        return json_response({"entries": self.entries(request.query.get("field"))})

    def _reset_entries(self, request: Request) -> Response:
        self.reset()
        return json_response({"entries": []})

    def _list_keys(self, request: Request) -> Response:
        with self._data_lock:
            keys = [{"device_id": k.device_id, "api_key": k.api_key, "write": k.write} for k in self._keys.values()]
        return json_response({"keys": keys})

    def _add_key_route(self, request: Request) -> Response:
        try:
            spec = request.json() or {}
            api_key = spec["api_key"]
            if not isinstance(api_key, str) or not api_key:
                raise ValueError("api_key must be a non-empty string")
            self.add_key(api_key, spec.get("device_id"), bool(spec.get("write", True)))
        except (KeyError, TypeError, ValueError) as exc:
            return json_response({"error": f"expected {{'api_key', 'device_id', 'write'}}: {exc}"}, 400)
        return self._list_keys(request)

    def _revoke_key_route(self, request: Request) -> Response:
        if not self.revoke_key(unquote(request.params["key"])):
            return json_response({"error": "no such key"}, 404)
        return self._list_keys(request)


SERVER = NikdevServer
