"""The REST API of the mbed sandbox in its two dialects: the Connector's v2 (versions, limits,
endpoints, resources, subscriptions, notification channels) and the published Pelion / Izuma API
(``/v2`` only, the device directory ``/v3/devices/``, device requests, JSON errors)."""

from __future__ import annotations

import base64
import itertools
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, unquote

from ...core.untrusted import JSON, JSONObject
from ..core import Handler, Request, Response, json_response, reset_connection, text_response
from .base import ERROR_TYPES, Exchange, flag, pelion_error
from .queued import MbedQueue, state_filters

VERSION_TEXT = "DeviceServer v3.0.0-520\nREST version = v2"
ASYNC_ID_RE = re.compile(r"^[\w-]{1,40}$")
V2 = r"(?:/v2)?"  # unversioned paths are the latest version
#: The notification rules of a resource (LwM2M write attributes), as in ``/5/0/1?pmax=120``.
RULES = ("pmin", "pmax", "gt", "lt", "st")

#: A route: method, path pattern, handler.
Route = tuple[str, str, Handler]


def _rules_of(query: dict[str, str]) -> dict[str, float] | None:
    """The notification rules of a query (``None`` without any); raises ``ValueError`` on a bad one."""
    given = {k: v for k, v in query.items() if k in RULES}
    if not given:
        return None
    rules = {k: float(v) for k, v in given.items()}
    if any(rules.get(k, 0) < 0 for k in ("pmin", "pmax")) or rules.get("st", 1) <= 0:
        raise ValueError("pmin/pmax must not be negative, st must be positive")
    return rules


class MbedApi(MbedQueue):
    """The API routes (authenticated, recorded with ``record``), in the dialect of the ``api`` option."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._ids = itertools.count(1073741825)
        super().__init__(host, port)

    def _api_routes(self) -> list[Route]:
        """Every route of the Connector's API (those of the notification channels are :class:`MbedDelivery`'s)."""
        return [
            ("GET", r"/", self._version),
            ("GET", r"/rest-versions", self._rest_versions),
            ("GET", V2 + r"/limits", self._limits),
            ("GET", V2 + r"/endpoints", self._endpoints),
            ("GET", V2 + r"/endpoints/(?P<ep>[^/]+)", self._endpoint_resources),
            ("DELETE", V2 + r"/endpoints/(?P<ep>[^/]+)", self._delete_endpoint),
            ("GET", V2 + r"/endpoints/(?P<ep>[^/]+)(?P<path>/.+)", self._resource),
            ("PUT", V2 + r"/endpoints/(?P<ep>[^/]+)(?P<path>/.+)", self._resource),
            ("POST", V2 + r"/endpoints/(?P<ep>[^/]+)(?P<path>/.+)", self._resource),
            ("DELETE", V2 + r"/endpoints/(?P<ep>[^/]+)(?P<path>/.+)", self._resource),
            ("PUT", V2 + r"/subscriptions", self._put_presubscriptions),
            ("GET", V2 + r"/subscriptions", self._get_presubscriptions),
            ("DELETE", V2 + r"/subscriptions/?", self._delete_all_subscriptions),
            ("GET", V2 + r"/subscriptions/(?P<ep>[^/]+)", self._endpoint_subscriptions),
            ("DELETE", V2 + r"/subscriptions/(?P<ep>[^/]+)", self._delete_endpoint_subscriptions),
            ("PUT", V2 + r"/subscriptions/(?P<ep>[^/]+)(?P<path>/.+)", self._subscribe),
            ("GET", V2 + r"/subscriptions/(?P<ep>[^/]+)(?P<path>/.+)", self._subscription),
            ("DELETE", V2 + r"/subscriptions/(?P<ep>[^/]+)(?P<path>/.+)", self._unsubscribe),
            ("PUT", V2 + r"/notification/callback", self._put_callback),
            ("GET", V2 + r"/notification/callback", self._get_callback),
            ("DELETE", V2 + r"/notification/callback", self._delete_callback),
            ("GET", V2 + r"/notification/pull", self._pull),
            ("DELETE", V2 + r"/notification/pull", self._delete_pull),
            ("GET", V2 + r"/notification/channel", self._get_channel),
            ("PUT", V2 + r"/notification/websocket", self._put_websocket),
            ("GET", V2 + r"/notification/websocket", self._get_websocket),
            ("DELETE", V2 + r"/notification/websocket", self._delete_websocket),
            ("GET", V2 + r"/notification/websocket-connect", self._websocket_connect),
            ("POST", V2 + r"/device-requests/(?P<ep>[^/]+)", self._device_request),
        ]

    def _mode_routes(self, api: list[Route]) -> list[Route]:
        """The routes of the mode: in Pelion mode, ``/v2`` paths only, without what that API
        lacks (``/``, ``/rest-versions``, limits, the endpoint listing and delete), plus the
        device directory ``/v3/devices/``."""
        if not self.pelion:
            return api
        gone = {self._version, self._rest_versions, self._limits, self._endpoints, self._delete_endpoint}
        routes = [(m, p.replace(V2, "/v2"), h) for m, p, h in api if h not in gone]
        return routes + [("GET", r"/v3/devices/", self._device_directory), *self.lifecycle_routes()]

    def _authenticated(self, handler: Handler) -> Handler:
        def run(request: Request) -> Response | None:
            response = serve(request)
            # no response: a WebSocket upgraded (101), or a connection reset (a stopping server):
            # the reset answered nothing, so there is no exchange to record
            upgraded = request.path.endswith("/websocket-connect")
            if self.exchanges is not None and (response is not None or upgraded):
                self._record_exchange(request, response)
            return response

        def serve(request: Request) -> Response | None:
            if self._stopping.is_set():  # a stopped server: kept-alive connections die too
                reset_connection(request.handler)
                return None
            for key in ("ep", "path"):
                if key in request.params:
                    request.params[key] = unquote(request.params[key])
            if request.path.endswith("/websocket-connect") and (self._ws_key_ok(request) or self.pelion):
                return handler(request)
            if not self._authorized(request):
                return self._fail("Unauthorized", 401)
            with self.lock:
                self.transactions += 1
            return handler(request)

        return run

    def _record_exchange(self, request: Request, response: Response | None) -> None:
        body = response.body if response is not None and isinstance(response.body, bytes) else b""
        exchange = Exchange(
            request.method,
            request.path,
            dict(request.query),
            request.headers.get("Content-Type", ""),
            request.body if response is not None else b"",
            101 if response is None else response.status,
            "" if response is None else response.headers.get("Content-Type", ""),
            body,
        )
        with self.lock:
            assert self.exchanges is not None
            self.exchanges.append(exchange)

    def not_found(self, request: Request) -> Response:
        return self._fail("Not Found", 404)

    def method_not_allowed(self, request: Request) -> Response:
        return self._fail("Method Not Allowed", 405)

    def _new_async_id(self, ep: str, path: str) -> str:
        return f"{next(self._ids)}#{ep}@sandbox.mbed{path}"

    # -- versions, limits, directory ---------------------------------------------

    def _version(self, request: Request) -> Response:
        return text_response(VERSION_TEXT, 200, "text/plain")

    def _rest_versions(self, request: Request) -> Response:
        return json_response(["v1", "v2"], compact=False)

    def _limits(self, request: Request) -> Response:
        with self._cond:
            count = sum(1 for d in self.devices.values() if d.registered)
        return json_response(
            {
                "transaction-quota": 10000,
                "transaction-count": self.transactions,
                "endpoint-quota": 100,
                "endpoint-count": count,
            },
            compact=False,
        )

    def _endpoints(self, request: Request) -> Response:
        wanted = request.query.get("type")
        with self._cond:
            listing = [
                d.as_listing() for d in self.devices.values() if d.registered and (wanted is None or d.type == wanted)
            ]
        return json_response(listing, compact=False)

    def _endpoint_resources(self, request: Request) -> Response:
        with self._cond:
            device = self.devices.get(request.params["ep"])
            if device is None or not device.registered:
                return self._fail("Endpoint not found", 404)
            return json_response([r.as_listing() for r in device.resources.values()], compact=False)

    def _delete_endpoint(self, request: Request) -> Response:
        with self._cond:
            device = self.devices.get(request.params["ep"])
            if device is None or not device.registered:
                return self._fail("Endpoint not found", 404)
            if not self._has_channel():
                return self._fail("No notification channel", 412)
            async_id = self._new_async_id(device.name, "")

            def action() -> JSONObject:
                self._unregister(device.name, "de-registrations")
                return {"status": 200, "payload": "", "ct": "text/plain", "max-age": 0}

        self._respond_later(device, async_id, action)
        return json_response({"async-response-id": async_id}, 202)

    def _device_directory(self, request: Request) -> Response:
        """``GET /v3/devices/``: a ``DevicePage`` (``limit``, ``after``, ``order``, ``include=total_count``,
        the ``state__eq`` / ``endpoint_type__eq`` / ``id__eq`` filters and the lifecycle ones)."""
        query = request.query
        try:
            limit = min(1000, max(2, int(query.get("limit", "50"))))
        except ValueError:
            return self._fail("limit must be an integer", 400)
        order = query.get("order", "ASC").upper()
        with self._cond:
            data = [d.as_device_data() for d in self.devices.values()]
        if order == "DESC":
            data.reverse()
        for key in ("state", "endpoint_type", "id"):
            if f"{key}__eq" in query:
                data = [d for d in data if d[key] == query[f"{key}__eq"]]
        for keep in state_filters(query):
            data = [d for d in data if keep(d)]
        total = len(data)
        if "after" in query:
            ids = [d["id"] for d in data]
            data = data[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
        page = {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "limit": limit, "order": order}
        if "after" in query:
            page["after"] = query["after"]
        if "total_count" in query.get("include", ""):
            page["total_count"] = total
        return json_response(page)

    # -- resources -------------------------------------------------------------

    def _resource(self, request: Request) -> Response:
        ep, path, method = request.params["ep"], request.params["path"], request.method
        body = request.body
        try:
            rules = _rules_of(request.query) if method == "PUT" else None
        except ValueError:
            return self._fail("Malformed notification rules", 400)
        if rules is not None:  # write attributes: notification rules, not a write
            return self._rules_request(ep, path, rules, lambda: self._new_async_id(ep, path))
        if self.pelion and method == "PUT" and not body:
            return self._fail("The value to write is required (an empty body)", 400)
        with self._cond:
            status, detail = self._resource_request(
                method, ep, path, body, flag(request.query.get("noResp")), flag(request.query.get("cacheOnly"))
            )
            if status == 200:
                return Response(200, detail.value, {"Content-Type": detail.ct})
            if status in (204, 205):  # neither carries a body
                return Response(status)
            if status != 202:
                return self._fail(detail, status)
            device = self.devices[ep]
            async_id = self._new_async_id(ep, path)
            action = lambda: self._apply(device, method, path, body)  # noqa: E731
            if self.must_queue(device):  # asleep, suspended or failing: it waits in the device's queue
                if not self.queue_request(device, async_id, action):
                    return self._fail("Too many requests queued for this endpoint", 429)
                return json_response({"async-response-id": async_id}, 202)
        self._respond_later(device, async_id, action)
        return json_response({"async-response-id": async_id}, 202)

    def _resource_request(
        self, method: str, ep: str, path: str, body: bytes, no_resp: bool, cache_only: bool
    ) -> tuple[int, JSON]:  # not JSON: a Resource, a text or None by status (narrowing it needs code)
        """The common part of the Connector and the Pelion device requests.

        Returns ``(status, detail)``: ``(202, async_id_factory)``, ``(200, bytes)``,
        ``(204, None)`` or an error status with its text.
        """
        device = self.devices.get(ep)
        if device is None or not device.registered:
            return 410, "Endpoint not found"
        resource = device.resources.get(path)
        if resource is None and method != "PUT":
            return 404, "Resource not found"
        if method == "GET" and resource is not None:
            fresh = resource.cached_at is not None and time.monotonic() - resource.cached_at < resource.max_age
            if fresh:
                return 200, resource
            if cache_only:
                return 205, "No cache available"
        if no_resp:
            if device.queue_mode:
                return 409, "Endpoint is in queue mode; noResp is not supported"
            self._apply(device, method, path, body)
            return 204, None
        if not self._has_channel() and not self.pelion:  # Pelion: the answer waits for a channel (no 412 listed)
            return 412, "No notification channel"
        if device.pending >= 20:
            return 429, "Too many requests pending for this endpoint"
        return 202, None

    def _device_request(self, request: Request) -> Response:
        ep = request.params["ep"]
        async_id = request.query.get("async-id", "")
        if not ASYNC_ID_RE.match(async_id):
            return self._request_error(400, "MALFORMED_ASYNC_ID")
        try:
            retry, expiry = self.queue_params(request.query)
        except ValueError as exc:  # the file lists no code for it: the sandbox names the parameter
            return self._request_error(400, f"INVALID_{str(exc).upper().replace('-', '_')}")
        try:
            spec = request.json()
            method = str(spec["method"]).upper()
            uri, _, query = str(spec["uri"]).partition("?")
            body = base64.standard_b64decode(spec.get("payload-b64") or "")
            rules = _rules_of(dict(parse_qsl(query, keep_blank_values=True))) if method == "PUT" else None
            if method not in ("GET", "PUT", "POST", "DELETE") or not uri.startswith("/"):
                raise ValueError(method)
            if self.pelion and method == "PUT" and not body and rules is None:
                raise ValueError("a write needs payload-b64")
        except (ValueError, TypeError, KeyError):
            return self._request_error(400, "MALFORMED_JSON_CONTENT")
        with self._cond:
            device = self.devices.get(ep)
            if device is None:
                return self._request_error(404, "DEVICE_NOT_FOUND")
            if not device.registered:
                return self._request_error(400, "DEVICE_NOT_CONNECTED")
            if uri not in device.resources and (method != "PUT" or rules is not None):
                return self._request_error(400, "RESOURCE_NOT_FOUND")
            if device.pending >= 20:
                return self._request_error(400, "QUEUE_IS_FULL")
            if rules is None and self.must_queue(device):  # asleep, suspended or failing: queued
                action = lambda: self._apply(device, method, uri, body)  # noqa: E731
                if not self.queue_request(device, async_id, action, retry, expiry):
                    return self._request_error(400, "QUEUE_IS_FULL")
                return Response(202)
        # accepted whatever the channel's state: the answer waits in the queue for a channel
        if rules is not None:
            return self._rules_request(ep, uri, rules, lambda: async_id, Response(202))
        self._respond_later(device, async_id, lambda: self._apply(device, method, uri, body))
        return Response(202)

    def _request_error(self, status: int, code: str) -> Response:
        """A device request's error: the code as a JSON string (Pelion's schema), an object otherwise."""
        if self.pelion:
            return json_response(code, status)
        return pelion_error(status, ERROR_TYPES[status], code)

    def _rules_request(
        self, ep: str, path: str, rules: dict[str, float], new_id: Callable[[], str], accepted: Response | None = None
    ) -> Response:
        """Set notification rules (``PUT`` with ``pmin``/``pmax``/``gt``/``lt``/``st``): ``202``, then the device's answer."""
        with self._cond:
            device = self.devices.get(ep)
            if device is None or not device.registered:
                return self._fail("Endpoint not found", 410)
            if path not in device.resources:
                return self._fail("Resource not found", 404)
            async_id = new_id()

        def action() -> JSONObject:
            self.set_rules(ep, path, rules)
            return {"status": 200, "payload": "", "ct": "text/plain", "max-age": 0}

        self._respond_later(device, async_id, action)
        return accepted or json_response({"async-response-id": async_id}, 202)

    # -- subscriptions -----------------------------------------------------------

    def _subscribe(self, request: Request) -> Response:
        ep, path = request.params["ep"], request.params["path"]
        with self._cond:
            device = self.devices.get(ep)
            if device is None or not device.registered or path not in device.resources:
                return self._fail("Endpoint or resource not found", 404)
            observable = device.resources[path].obs
            # the 2019-11 file lists no 412 here: Pelion answers it through the AsyncIDResponse, and a
            # subscription's answer waits for a channel as a device request's does
            if not observable and not self.pelion:
                return self._fail("Resource is not observable", 412)
            if not self._has_channel() and not self.pelion:
                return self._fail("No notification channel", 412)
            async_id = self._new_async_id(ep, path)

        def action() -> JSONObject:
            if not observable:
                return {"status": 412, "error": "PRECONDITION_FAILED", "ct": "text/plain", "max-age": 0}
            self.subscriptions.add((ep, path))
            return {"status": 200, "payload": "", "ct": "text/plain", "max-age": 60}

        self._respond_later(device, async_id, action)
        return json_response({"async-response-id": async_id}, 202)

    def _subscription(self, request: Request) -> Response:
        ep, path = request.params["ep"], request.params["path"]
        with self._cond:
            if (ep, path) not in self.subscriptions:
                return self._fail("Not subscribed", 404)
        return text_response(f"/subscriptions/{quote(ep, safe='')}{path}", 200, "text/uri-list")

    def _endpoint_subscriptions(self, request: Request) -> Response:
        ep = request.params["ep"]
        with self._cond:
            paths = sorted(p for e, p in self.subscriptions if e == ep)
        if not paths:
            return self._fail("Endpoint not found or no subscriptions", 404)
        lines = "\n".join(f"/subscriptions/{quote(ep, safe='')}{p}" for p in paths)
        return text_response(lines, 200, "text/uri-list")

    def _unsubscribe(self, request: Request) -> Response:
        ep, path = request.params["ep"], request.params["path"]
        with self._cond:
            device = self.devices.get(ep)
            if device is None or path not in device.resources:
                return self._fail("Endpoint or resource not found", 404)
            self.subscriptions.discard((ep, path))
        return Response(204)

    def _delete_endpoint_subscriptions(self, request: Request) -> Response:
        ep = request.params["ep"]
        with self._cond:
            if ep not in self.devices and not self.pelion:  # Pelion answers 204 only
                return self._fail("Endpoint not found", 404)
            self.subscriptions = {(e, p) for e, p in self.subscriptions if e != ep}
        return Response(204)

    def _delete_all_subscriptions(self, request: Request) -> Response:
        with self._cond:
            if self.pelion:  # Pelion's DELETE /v2/subscriptions removes the pre-subscriptions
                self.presubscriptions = []
            else:
                self.subscriptions.clear()
        return Response(204)

    def _put_presubscriptions(self, request: Request) -> Response:
        try:
            rules = request.json()
            if not isinstance(rules, list):
                raise TypeError("not an array")
            for rule in rules:
                if not isinstance(rule, dict) or set(rule) - {"endpoint-name", "endpoint-type", "resource-path"}:
                    raise ValueError("unknown field")
                for key in ("endpoint-name", "endpoint-type"):
                    if key in rule and not isinstance(rule[key], str):
                        raise ValueError(key)
                paths = rule.get("resource-path", ["*"])
                if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
                    raise ValueError("resource-path")  # a list of at least one path (minItems: 1)
        except (ValueError, TypeError):
            return self._fail("Malformed content", 400)
        with self._cond:
            self.presubscriptions = rules
            self.subscriptions.clear()
        return Response(204)

    def _get_presubscriptions(self, request: Request) -> Response:
        with self._cond:
            return json_response(self.presubscriptions, compact=False)
