"""The two dialects of the mbed API, as two small strategies (framework-free): :class:`Connector` (the
mbed Device Connector) and :class:`Pelion` (Pelion / Izuma Device Management, its successor). The
client asks its dialect wherever they differ, and nowhere else:

===================  =======================================  ============================================
                     Connector                                Pelion / Izuma
===================  =======================================  ============================================
resource requests    ``METHOD /v2/endpoints/{ep}{path}``,     ``POST /v2/device-requests/{ep}?async-id=``
                     answered ``202 {"async-response-id"}``   with our own id: no race (``noResp`` and
                                                              ``cacheOnly`` as on the Connector)
the endpoints        ``GET /v2/endpoints``                    the device directory ``GET /v3/devices/``
what it lacks        notification rules                       ``GET /``, ``/rest-versions``,
                                                              ``/v2/limits``, deregistration
the long poll        ``noWait=true`` when asked               no ``noWait``
writing ``""``       sent                                     refused (the API requires a value)
queued requests      refused (no ``retry``, ``expiry``)       ``retry``, ``expiry-seconds`` sent
suspension           refused                                  ``/v3/devices/{id}/suspend``, ``resume``
channel types        any                                      one at a time (``one_channel_type``)
===================  =======================================  ============================================

What the API lacks is refused with :class:`~platypush_ext.mbed.errors.NotInThisApiError` before
anything is sent.
"""

from __future__ import annotations

import abc
import base64
import functools
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar
from urllib.parse import urlsplit

from ..core.errors import InvalidArgumentError, ProtocolError
from ..core.http import HttpClient
from ..core.untrusted import JSONObject
from .calls import DeviceCalls, ResourceRequest
from .checks import endpoint_segment, path_segments
from .errors import STATUS_MEANINGS, NoCacheError, NotInThisApiError
from .messages import AsyncResponse
from .models import ResourceValue, cached_value, device_page, endpoint_list, endpoint_of

#: The hosts of Pelion / Izuma (``api: auto`` picks :class:`Pelion` for them).
PELION_HOSTS = ("mbedcloud.com", "izumanetworks.com", "pelion.com")


class Dialect(abc.ABC):
    """What differs between the two APIs (see the module's table); stateless."""

    #: ``connector`` or ``pelion``: the client's ``api``, as the plugin's status shows it.
    name: ClassVar[str]
    #: Whether an account (an Izuma application) has one channel type at a time: a ``400`` when a channel is registered may
    #: then mean that a channel of another type holds the account.
    one_channel_type: ClassVar[bool] = False
    #: The client's methods that this API has no operation for: name -> the refusal, in one line.
    lacks: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def refuse(self, operation: str) -> None:
        """Refuse an operation that this API lacks (nothing is sent).

        :param operation: the client's method name, e.g. ``get_limits``.
        :raises NotInThisApiError: this API has no such operation.
        """
        reason = self.lacks.get(operation)
        if reason is not None:
            raise NotInThisApiError(reason)

    @abc.abstractmethod
    def pull_params(self, no_wait: bool) -> dict[str, str] | None:
        """The query of one long poll.

        :param no_wait: the caller asks for an answer at once.
        """

    @abc.abstractmethod
    def check_write(self, body: bytes) -> None:
        """Refuse a value this API cannot write.

        :param body: the value to write.
        :raises InvalidArgumentError: this API cannot write it.
        """

    @abc.abstractmethod
    def endpoints(self, http: HttpClient, type: str | None, all_states: bool) -> list[JSONObject]:
        """The registered endpoints: ``[{"name", "type", "status", "q", "label"}]``.

        :param http: the client's connection.
        :param type: only endpoints of this type.
        :param all_states: also devices that are not registered (Pelion / Izuma).
        """

    @abc.abstractmethod
    def resource_call(self, calls: DeviceCalls, request: ResourceRequest) -> AsyncResponse | ResourceValue | str | None:
        """One resource request: the device's answer, a cached value, the async id (``wait=False``)
        or ``None`` (``noResp``).

        :param calls: the client's device calls.
        :param request: the request, its arguments checked.
        """


class Connector(Dialect):
    """The mbed Device Connector (REST API v2)."""

    name = "connector"
    lacks = MappingProxyType(
        {
            "set_notification_rules": "notification rules are not part of the Connector API (use api: pelion)",
            "queue_options": "retry and expiry_seconds are parameters of Pelion / Izuma device requests "
            "(POST /v2/device-requests); the Connector API has no request queue (use api: pelion)",
            "suspend_device": "suspending devices is not part of the Connector API (use api: pelion)",
            "resume_device": "suspending devices is not part of the Connector API (use api: pelion)",
        }
    )

    def pull_params(self, no_wait: bool) -> dict[str, str] | None:
        return {"noWait": "true"} if no_wait else None

    def check_write(self, body: bytes) -> None:
        pass  # an empty value is written as it is

    def endpoints(self, http: HttpClient, type: str | None, all_states: bool) -> list[JSONObject]:
        return http.request_json("GET", "v2/endpoints", params={"type": type} if type else None, parse=endpoint_list)

    def resource_call(self, calls: DeviceCalls, request: ResourceRequest) -> AsyncResponse | ResourceValue | str | None:
        return endpoint_request(calls, request)


def _missing(what: str, instead: str) -> str:
    return f"{what} does not exist in the Pelion / Izuma API (api: pelion); {instead}"


class Pelion(Dialect):
    """Pelion / Izuma Device Management (its ``/v2`` device API and the ``/v3`` device directory)."""

    name = "pelion"
    one_channel_type = True
    lacks = MappingProxyType(
        {
            "get_connector_version": _missing("GET / (the service version)", "it has no version endpoint"),
            "get_api_versions": _missing("GET /rest-versions", "its paths are versioned (/v2, /v3)"),
            "get_limits": _missing(
                "GET /v2/limits", "usage figures are in the portal or /v3/metrics, quotas in the contract"
            ),
            "delete_endpoint": _missing(
                "DELETE /v2/endpoints/{device-id} (deregistration)",
                "removing a device from the directory (DELETE /v3/devices/{id}/) is not done by this action",
            ),
        }
    )

    def pull_params(self, no_wait: bool) -> dict[str, str] | None:
        return None  # the API has no noWait

    def check_write(self, body: bytes) -> None:
        if not body:
            raise InvalidArgumentError("value must not be empty (the Pelion / Izuma API requires a value to write)")

    def endpoints(self, http: HttpClient, type: str | None, all_states: bool) -> list[JSONObject]:
        devices = read_devices(http, type=type, state=None if all_states else "registered")
        return [endpoint_of(d) for d in devices]

    def resource_call(self, calls: DeviceCalls, request: ResourceRequest) -> AsyncResponse | ResourceValue | str | None:
        if request.no_resp or request.cache_only:
            return endpoint_request(calls, request)
        return device_request(calls, request)


def dialect_for(api: str, base_url: str) -> Dialect:
    """The dialect of ``api``: ``connector``, ``pelion``, or ``auto`` (Pelion for its hosts).

    :param api: the configured API (:func:`~platypush_ext.mbed.checks.check_api`).
    :param base_url: the service's base URL.
    """
    host = urlsplit(base_url).hostname or ""
    return Pelion() if api == "pelion" or (api == "auto" and host.endswith(PELION_HOSTS)) else Connector()


def endpoint_request(calls: DeviceCalls, request: ResourceRequest) -> AsyncResponse | ResourceValue | str | None:
    """``METHOD /v2/endpoints/{ep}{path}``: a cached value (``200``), the device's answer after ``202``,
    or ``None`` (``204`` with ``noResp``, or done without an async id).

    :param calls: the client's device calls.
    :param request: the request.
    :raises NoCacheError: ``cacheOnly`` and the service has no cached value (``205``).
    """
    params = {name: "true" for name, on in (("noResp", request.no_resp), ("cacheOnly", request.cache_only)) if on}
    url = f"v2/endpoints/{endpoint_segment(request.endpoint)}{path_segments(request.path)}"
    send = functools.partial(
        calls.http.request,
        request.method,
        url,
        params=params or None,
        data=request.body,
        headers={"Content-Type": request.content_type} if request.body is not None else None,
        idempotent=request.method in ("GET", "PUT"),
    )
    response = calls.with_channel(send, request.limit, request.started)  # a 412 comes before anything is done
    if response.status_code == 200 and request.method == "GET":
        parse = functools.partial(cached_value, request.endpoint, request.path)
        return calls.http.parsed(response, parse, calls.http.endpoint("GET", calls.http.url(url)), 200)
    if response.status_code == 205:
        raise NoCacheError(f"{request.what}: HTTP 205 ({STATUS_MEANINGS[205]})", status=205, endpoint=request.what)
    return calls.answer(response, request.what, request.limit, request.started, request.wait)


def device_request(calls: DeviceCalls, request: ResourceRequest) -> AsyncResponse | str:
    """``POST /v2/device-requests/{ep}?async-id=<our id>[&retry=&expiry-seconds=]`` (Pelion / Izuma): the
    answer is expected before the request is sent, so that it cannot come too early.

    :param calls: the client's device calls.
    :param request: the request (its ``path`` may carry notification rules as a query).
    """
    async_id = uuid.uuid4().hex
    body: JSONObject = {"method": request.method, "uri": request.path}
    if request.body:
        body["payload-b64"] = base64.standard_b64encode(request.body).decode("ascii")
        body["content-type"] = request.content_type
    if request.wait:  # before the request: the answer may come back before it returns
        calls.registry.expect(async_id)
    send = functools.partial(
        calls.http.request,
        "POST",
        f"v2/device-requests/{endpoint_segment(request.endpoint)}",
        params={"async-id": async_id, **request.queue_params()},
        json_body=body,
        idempotent=request.method == "GET",
    )
    try:
        calls.with_channel(send, request.limit, request.started) if request.wait else send()
    except BaseException:
        calls.registry.wait(async_id, 0)
        raise
    if not request.wait:  # nobody waits: the answer arrives as an event (registering it leaked one entry per call)
        return async_id
    return calls.await_answer(async_id, request.what, request.limit, request.started)


def read_devices(
    http: HttpClient,
    type: str | None = None,
    state: str | None = "registered",
    page_size: int = 100,
    max_pages: int = 100,
    lifecycle_status: str | None = None,
) -> list[JSONObject]:
    """``GET /v3/devices/`` (the Pelion / Izuma device directory), following ``after`` / ``has_more``
    over at most ``max_pages`` pages: the ``DeviceData`` objects, checked.

    :param http: the client's connection.
    :param type: ``endpoint_type__eq``.
    :param state: ``state__eq`` (``None``: every state).
    :param page_size: ``limit`` of one page (2-1000).
    :param max_pages: the most pages read; more is a :class:`ProtocolError` (a looping ``after``).
    :param lifecycle_status: ``lifecycle_status__eq`` (the 2019-11 file): ``enabled`` or ``blocked``
        (suspended); ``None``: both.
    """
    params: dict[str, int | str] = {"limit": min(1000, max(2, int(page_size))), "order": "ASC"}
    given = (("endpoint_type__eq", type), ("state__eq", state), ("lifecycle_status__eq", lifecycle_status))
    params.update({k: v for k, v in given if v})
    devices: list[JSONObject] = []
    for _ in range(max_pages):
        data, has_more = http.request_json("GET", "v3/devices/", params=params, parse=device_page)
        devices += data
        if not has_more or not data:
            return devices
        if data[-1]["id"] == params.get("after"):
            raise ProtocolError("GET /v3/devices/: the next page starts where the last one did; giving up")
        params["after"] = data[-1]["id"]
    raise ProtocolError(f"GET /v3/devices/: still more after {max_pages} pages of {params['limit']}; giving up")
