"""The mbed plugin's device actions (a mixin of :class:`~platypush_ext.mbed.plugin.MbedPlugin`): the
requests a device answers (read, write, execute, delete a resource; notification rules) with their
queueing arguments (``retry``, ``expiry_seconds``: how long and how often Pelion / Izuma tries a device
it cannot reach now), and the device lifecycle (``suspend_device``, ``resume_device``, ``get_devices``).
"""

from __future__ import annotations

from ..core.untrusted import JSON, JSONObject
from ..glue.actions import action
from .client import MbedClient
from .entities import EntitySync
from .messages import action_result
from .models import ResourceValue
from .models import suspended as is_suspended


class DeviceActions:
    """The actions that reach a device, and its lifecycle."""

    _client: MbedClient
    _sync: EntitySync | None

    # -- resources ------------------------------------------------------------------

    @action
    def get_resource_value(
        self,
        endpoint: str,
        path: str,
        timeout: float | None = None,
        cache_only: bool = False,
        no_resp: bool = False,
        details: bool = False,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> JSON:
        """
        Read a resource's value: from the service's cache when it is fresh,
        otherwise from the device (waiting for its answer).

        :param endpoint: the endpoint name, e.g. ``node-001``.
        :param path: the resource path, e.g. ``/3303/0/5700``.
        :param timeout: seconds to wait for the device (default: ``async_timeout``; at most 55).
        :param cache_only: only answer from the cache (an error when nothing is cached).
        :param no_resp: send a non-confirmable request; nothing comes back (returns ``null``).
        :param details: return an object with the content type and origin instead of the bare value.
        :param retry: Pelion / Izuma: retries when the device does not answer (0-10; default:
            ``device_request_retry``, else the service's: 0, or 2 for a queue-mode device).
        :param expiry_seconds: Pelion / Izuma: how long the service keeps the request for a device
            it cannot reach (60-2592000; default: ``device_request_expiry_seconds``, else 2 h, or
            3 days for a queue-mode device). An answer after ``timeout`` comes as an
            ``MbedAsyncResponseEvent``; one that expires as its ``status`` 429 ``REQUEST_EXPIRED``.
        :return: the value, text for textual content types and base64 otherwise,
            e.g. ``"21.5"``; with ``details``: ``{"endpoint": "node-001",
            "path": "/3303/0/5700", "value": "21.5", "content_type": "text/plain",
            "encoding": "text", "max_age": 60, "from_cache": false}``
        """
        value: ResourceValue | None = self._client.get_resource_value(
            endpoint,
            path,
            timeout=timeout,
            cache_only=bool(cache_only),
            no_resp=bool(no_resp),
            retry=retry,
            expiry_seconds=expiry_seconds,
        )
        if value is None:
            return None
        return value.to_dict() if details else value.value

    @action
    def put_resource_value(
        self,
        endpoint: str,
        path: str,
        value: JSON,
        content_type: str = "text/plain",
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> JSONObject:
        """
        Write a resource's value (sent raw with ``content_type``, never JSON-encoded).

        :param endpoint: the endpoint name.
        :param path: the resource path, e.g. ``/3311/0/5850``.
        :param value: the value (text or number).
        :param content_type: its content type (default: ``text/plain``).
        :param timeout: seconds to wait for the device (default: ``async_timeout``).
        :param no_resp: non-confirmable request, no answer.
        :param wait: wait for the device's answer (default); ``false`` returns the
            async id at once (the result comes as an ``MbedAsyncResponseEvent``).
        :param retry: Pelion / Izuma: retries when the device does not answer (0-10), as in ``get_resource_value``.
        :param expiry_seconds: Pelion / Izuma: how long the service keeps the write for a device it
            cannot reach (60-2592000), as in ``get_resource_value``: a write that timed out here
            may still reach a sleeping device until then.
        :return: ``{"status": 200}``, ``{"async_id": "..."}`` or ``{"status": 204, "no_resp": true}``
        """
        return action_result(
            self._client.put_resource_value(
                endpoint,
                path,
                value,
                content_type=content_type,
                timeout=timeout,
                no_resp=bool(no_resp),
                wait=bool(wait),
                retry=retry,
                expiry_seconds=expiry_seconds,
            )
        )

    @action
    def post_resource(
        self,
        endpoint: str,
        path: str,
        data: JSON | None = None,
        content_type: str = "text/plain",
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> JSONObject:
        """
        Execute a resource (``POST``), passing ``data`` to the device's function.

        :param endpoint: the endpoint name.
        :param path: the resource path, e.g. ``/3311/0/5800``.
        :param data: what to pass to the function (optional).
        :param content_type: its content type (default: ``text/plain``).
        :param timeout: seconds to wait for the device.
        :param no_resp: non-confirmable request, no answer.
        :param wait: wait for the device's answer (default), or return the async id.
        :param retry: Pelion / Izuma: retries (0-10), as in ``get_resource_value``.
        :param expiry_seconds: Pelion / Izuma: the request's lifetime in the service's queue
            (60-2592000), as in ``get_resource_value``.
        :return: ``{"status": 200}`` (plus ``value`` if the device returned one), or ``{"async_id": "..."}``
        """
        return action_result(
            self._client.post_resource(
                endpoint,
                path,
                data,
                content_type=content_type,
                timeout=timeout,
                no_resp=bool(no_resp),
                wait=bool(wait),
                retry=retry,
                expiry_seconds=expiry_seconds,
            )
        )

    @action
    def delete_resource(
        self,
        endpoint: str,
        path: str,
        timeout: float | None = None,
        no_resp: bool = False,
        wait: bool = True,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> JSONObject:
        """
        Delete a resource (the device must handle it).

        :param endpoint: the endpoint name.
        :param path: the resource path.
        :param timeout: seconds to wait for the device.
        :param no_resp: non-confirmable request, no answer.
        :param wait: wait for the device's answer (default), or return the async id.
        :param retry: Pelion / Izuma: retries (0-10), as in ``get_resource_value``.
        :param expiry_seconds: Pelion / Izuma: the request's lifetime in the service's queue
            (60-2592000), as in ``get_resource_value``.
        :return: ``{"status": 200}`` or ``{"async_id": "..."}``
        """
        return action_result(
            self._client.delete_resource(
                endpoint,
                path,
                timeout=timeout,
                no_resp=bool(no_resp),
                wait=bool(wait),
                retry=retry,
                expiry_seconds=expiry_seconds,
            )
        )

    @action
    def delete_endpoint(self, endpoint: str, timeout: float | None = None, wait: bool = True) -> JSONObject:
        """
        Delete an endpoint (``DELETE /v2/endpoints/{endpoint}``, as the original library's ``deleteEndpoint``).

        :param endpoint: the endpoint name.
        :param timeout: seconds to wait for the answer.
        :param wait: wait for the answer (default), or return the async id.
        :return: ``{"status": 200}`` or ``{"async_id": "..."}``
        """
        return action_result(self._client.delete_endpoint(endpoint, timeout=timeout, wait=bool(wait)))

    @action
    def set_notification_rules(
        self,
        endpoint: str,
        path: str,
        pmin: float | None = None,
        pmax: float | None = None,
        gt: float | None = None,
        lt: float | None = None,
        st: float | None = None,
        timeout: float | None = None,
        retry: int | None = None,
        expiry_seconds: int | None = None,
    ) -> JSONObject:
        """
        Set when a subscribed resource notifies (LwM2M write attributes; Pelion / Izuma only,
        the Connector API has none). Give at least one rule; the device applies them.

        :param endpoint: the endpoint (device id).
        :param path: the resource path, e.g. ``/3303/0/5700``.
        :param pmin: at least this many seconds between two notifications.
        :param pmax: a notification at least every this many seconds, even without a change.
        :param gt: notify when the value is above this.
        :param lt: notify when the value is below this (below ``gt``).
        :param st: notify when the value moved at least this much since the last notification.
        :param timeout: seconds to wait for the device to accept.
        :param retry: retries (0-10), as in ``get_resource_value``.
        :param expiry_seconds: the request's lifetime in the service's queue (60-2592000).
        :return: ``{"rules": {"pmin": 10, "pmax": 120}}``
        """
        rules = self._client.set_notification_rules(
            endpoint,
            path,
            pmin=pmin,
            pmax=pmax,
            gt=gt,
            lt=lt,
            st=st,
            timeout=timeout,
            retry=retry,
            expiry_seconds=expiry_seconds,
        )
        return {"rules": rules}

    # -- lifecycle ------------------------------------------------------------------

    @action
    def get_devices(
        self, type: str | None = None, state: str | None = None, suspended: bool | None = None
    ) -> list[JSONObject]:
        """
        The device directory (Pelion / Izuma ``GET /v3/devices/``, every page), each device with
        its lifecycle: ``suspended`` is true when the operator or the system suspended it.

        :param type: only devices of this endpoint type.
        :param state: only devices in this state, e.g. ``registered`` (default: every state).
        :param suspended: only the suspended devices (``true``) or only the others (``false``;
            the directory's ``lifecycle_status`` filter); default: both.
        :return: e.g. ``[{"id": "015f...", "name": "node-001", "state": "registered",
            "endpoint_type": "Light", "lifecycle_status": "blocked", "operator_suspended": true,
            "system_suspended": false, "suspended": true}]``
        """
        self._client.dialect.refuse("suspend_device")
        listed = self._client.get_devices(type, state, suspended=None if suspended is None else bool(suspended))
        return [{**device, "suspended": is_suspended(device)} for device in listed]

    @action
    def suspend_device(
        self, endpoint: str, category: str = "maintenance", description: str | None = None
    ) -> JSONObject:
        """
        Suspend a device (Pelion / Izuma ``POST /v3/devices/{id}/suspend``): it is disconnected
        and cannot connect until resumed; requests to it fail (``429 DEVICE_BLOCKED``). Its
        entities show as unreachable on the Home panel.

        :param endpoint: the device id (``name`` in ``get_endpoints``).
        :param category: the block category, e.g. ``maintenance`` or ``lost_or_stolen``.
        :param description: why (at most 2,000 characters).
        :return: ``{"endpoint": "015f...", "suspended": true}``
        """
        self._client.suspend_device(endpoint, category, description)
        if self._sync is not None:
            self._sync.set_suspended(endpoint, True)
        return {"endpoint": endpoint, "suspended": True}

    @action
    def resume_device(self, endpoint: str, category: str = "maintenance", description: str | None = None) -> JSONObject:
        """
        Return a suspended device to service (Pelion / Izuma ``POST /v3/devices/{id}/resume``).

        :param endpoint: the device id.
        :param category: the block category it was suspended with.
        :param description: why (at most 2,000 characters).
        :return: ``{"endpoint": "015f...", "suspended": false}``
        """
        self._client.resume_device(endpoint, category, description)
        if self._sync is not None:
            self._sync.set_suspended(endpoint, False)
        return {"endpoint": endpoint, "suspended": False}
