"""Issue 20, Izuma / Pelion: queued device commands (``retry``, ``expiry-seconds``), the device
lifecycle (suspension), and the sandbox answering as the service does (``//`` in paths, answers after
their ``202``, no empty ``resource-path``). Every exchange of a ``pelion`` test is checked against
both published API files, the 2019-11 one winning (``openapi_check``), when the test ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from platypush_ext.core.errors import BadRequestError, InvalidArgumentError
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.errors import DeviceError, NotInThisApiError
from platypush_ext.sandbox.mbed import MbedServer
from tests.mbed.pelion import KEY, NODE, SENSOR, TEMP, Inbox, make_client
from tests.support import wait_until

LIGHT = "/3311/0/5850"


@pytest.fixture
def client(pelion: MbedServer) -> Iterator[MbedClient]:
    pelion.time_scale = 0.01  # the 60-s minimum expiry lasts 0.6 s
    mbed = make_client(pelion)
    yield mbed
    mbed.close()


def device_requests(server: MbedServer) -> list[dict[str, str]]:
    """The queries of the device requests the sandbox received, in order."""
    return [e.query for e in server.exchanges or [] if e.path.startswith("/v2/device-requests/")]


def api(server: MbedServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=10, **kwargs)


# -- retry and expiry-seconds ---------------------------------------------------------------


def test_retry_and_expiry_are_sent_as_the_device_requests_query(pelion: MbedServer, client: MbedClient) -> None:
    with Inbox(client):
        assert client.get_resource_value(NODE, "/3/0/1", retry=3, expiry_seconds=7200).value == "Mbed"
        client.put_resource_value(NODE, LIGHT, "1", retry=0, expiry_seconds=60)
        client.post_resource(NODE, LIGHT, retry=10, expiry_seconds=2_592_000)
        client.set_notification_rules(SENSOR, TEMP, pmax=120, retry=1)
        client.get_resource_value(NODE, "/3/0/1")
    queries = device_requests(pelion)
    assert [{k: v for k, v in q.items() if k != "async-id"} for q in queries] == [
        {"retry": "3", "expiry-seconds": "7200"},
        {"retry": "0", "expiry-seconds": "60"},
        {"retry": "10", "expiry-seconds": "2592000"},
        {"retry": "1"},
        {},  # neither given: the service's defaults
    ]


def test_the_clients_defaults_apply_where_a_call_gives_none(pelion: MbedServer) -> None:
    client = MbedClient(pelion.base_url, KEY, api="pelion", async_timeout=5, device_retry=2, device_expiry_seconds=600)
    try:
        with Inbox(client):
            client.get_resource_value(NODE, "/3/0/1")
            client.get_resource_value(NODE, "/3/0/1", retry=5)
            client.get_resource_value(NODE, "/3/0/1", cache_only=True)  # not a device request: nothing to queue
    finally:
        client.close()
    queries = [{k: v for k, v in q.items() if k != "async-id"} for q in device_requests(pelion)]
    assert queries == [{"retry": "2", "expiry-seconds": "600"}, {"retry": "5", "expiry-seconds": "600"}]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"retry": 11}, "retry must be a whole number from 0 to 10"),
        ({"retry": -1}, "retry must be a whole number from 0 to 10"),
        ({"retry": 1.5}, "retry must be a whole number from 0 to 10"),
        ({"retry": True}, "retry must be a whole number from 0 to 10"),
        ({"expiry_seconds": 59}, "expiry_seconds must be a whole number from 60 to 2,592,000"),
        ({"expiry_seconds": 2_592_001}, "expiry_seconds must be a whole number from 60 to 2,592,000"),
        ({"expiry_seconds": "soon"}, "expiry_seconds must be a whole number"),
        ({"retry": 1, "no_resp": True}, "not with no_resp or cache_only"),
        ({"expiry_seconds": 60, "cache_only": True}, "not with no_resp or cache_only"),
    ],
)
def test_bad_queue_arguments_are_one_line_and_send_nothing(
    pelion: MbedServer, client: MbedClient, arguments: dict[str, Any], message: str
) -> None:
    before = len(pelion.requests)
    with pytest.raises(InvalidArgumentError, match=message) as refused:
        client.get_resource_value(NODE, "/3/0/1", **arguments)
    assert "\n" not in str(refused.value) and len(pelion.requests) == before


def test_the_connector_refuses_queue_arguments_in_one_line(start_server: Any) -> None:
    server = start_server(MbedServer, api_key=KEY, demo_devices=True)
    client = make_client(server, api="connector")
    try:
        with pytest.raises(NotInThisApiError, match="the Connector API has no request queue") as refused:
            client.put_resource_value("node-001", LIGHT, "1", retry=2)
        assert "\n" not in str(refused.value)
        with pytest.raises(NotInThisApiError, match="use api: pelion"):
            MbedClient(server.base_url, KEY, api="connector", device_expiry_seconds=600)
        assert not [p for _, p, _ in server.requests if "/3311/" in p]
    finally:
        client.close()


def test_a_request_that_expires_while_the_device_sleeps_ends_in_request_expired(
    pelion: MbedServer, client: MbedClient
) -> None:
    pelion.set_behaviour(NODE, asleep=True)
    with Inbox(client):
        with pytest.raises(DeviceError, match="429 REQUEST_EXPIRED") as expired:
            client.put_resource_value(NODE, LIGHT, "1", expiry_seconds=60, timeout=10)  # 0.6 s here
        assert expired.value.status == 429
        pelion.set_behaviour(NODE, asleep=False)
        assert client.get_resource_value(NODE, LIGHT).value == "0"  # the expired write never ran


def test_a_sleeping_device_gets_its_queued_requests_in_order_when_it_wakes(
    pelion: MbedServer, client: MbedClient
) -> None:
    pelion.set_behaviour(NODE, asleep=True)
    with Inbox(client) as inbox:
        wait_until(lambda: pelion._ws_connected, timeout=5)
        client.subscribe(NODE, LIGHT)
        ids = [client.put_resource_value(NODE, LIGHT, str(v), wait=False, expiry_seconds=3600) for v in (1, 0, 1)]
        wait_until(lambda: len(pelion.queues.get(NODE, [])) == 3, timeout=5)
        assert inbox.values() == []  # nothing reached the device
        pelion.update_registration(NODE)  # the device contacts the service: its queue goes out
        wait_until(lambda: inbox.values() == ["1", "0", "1"], timeout=5)
    assert all(pelion.attempts[i] == 1 for i in ids) and not pelion.queues.get(NODE)


@pytest.mark.parametrize(
    "drops, retry, outcome, attempts", [(2, 3, None, 3), (5, 1, "504 TIMEOUT", 2), (1, 0, "504", 1)]
)
def test_failed_deliveries_are_retried_and_counted(
    pelion: MbedServer, client: MbedClient, drops: int, retry: int, outcome: str | None, attempts: int
) -> None:
    pelion.set_behaviour(NODE, drops=drops)
    with Inbox(client):
        if outcome is None:
            assert client.get_resource_value(NODE, "/3/0/1", retry=retry).value == "Mbed"
        else:
            with pytest.raises(DeviceError, match=outcome):
                client.get_resource_value(NODE, "/3/0/1", retry=retry)
    assert list(pelion.attempts.values())[-1] == attempts
    state = api(pelion, "GET", "/_sandbox/state").json()
    assert list(state["attempts"].values())[0] == attempts


def test_a_full_queue_is_refused(pelion: MbedServer, client: MbedClient) -> None:
    pelion.set_behaviour(NODE, asleep=True)
    with Inbox(client):
        for _ in range(20):
            client.put_resource_value(NODE, LIGHT, "1", wait=False)
        with pytest.raises(BadRequestError, match="QUEUE_IS_FULL"):
            client.put_resource_value(NODE, LIGHT, "1", wait=False)


# -- the lifecycle ---------------------------------------------------------------------


def test_suspend_and_resume_a_device(pelion: MbedServer, client: MbedClient) -> None:
    client.suspend_device(NODE, "lost_or_stolen", "reported stolen")
    listed = {e["name"]: e for e in client.get_endpoints()}
    assert listed[NODE]["suspended"] is True and listed[SENSOR]["suspended"] is False
    device = next(d for d in client.get_devices() if d["id"] == NODE)
    assert device["lifecycle_status"] == "blocked" and device["operator_suspended"] is True
    blocked = api(pelion, "GET", "/v3/devices/", params={"lifecycle_status__eq": "blocked"}).json()["data"]
    assert [d["id"] for d in blocked] == [NODE]
    assert [d["id"] for d in client.get_devices(suspended=True)] == [NODE]  # lifecycle_status__eq=blocked
    assert NODE not in [d["id"] for d in client.get_devices(suspended=False)] and len(client.get_devices()) == 3
    with Inbox(client):
        with pytest.raises(DeviceError, match="429 DEVICE_BLOCKED"):
            client.get_resource_value(NODE, "/3/0/1")
        client.resume_device(NODE, "lost_or_stolen", "found")
        assert client.get_resource_value(NODE, "/3/0/1").value == "Mbed"
    assert not any(e["suspended"] for e in client.get_endpoints())


def test_a_system_suspension_shows_too(pelion: MbedServer, client: MbedClient) -> None:
    pelion.set_behaviour(SENSOR, system_suspended=True)
    assert {e["name"]: e["suspended"] for e in client.get_endpoints()}[SENSOR] is True


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c: c.suspend_device(NODE, "Lost"), "category must be a block category"),
        (lambda c: c.resume_device(NODE, "x" * 33), "category must be a block category"),
        (lambda c: c.suspend_device(NODE, "maintenance", "x" * 2001), "at most 2,000 characters"),
        (lambda c: c.suspend_device("", "maintenance"), "endpoint must be a non-empty"),
    ],
)
def test_bad_lifecycle_arguments_are_one_line(pelion: MbedServer, client: MbedClient, call: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        call(client)
    assert not [p for _, p, _ in pelion.requests if "/suspend" in p or "/resume" in p]


def test_the_sandbox_answers_the_lifecycle_as_the_file_says(raw: MbedServer) -> None:
    block = {"category": "maintenance", "description": "x"}
    assert api(raw, "POST", f"/v3/devices/{NODE}/suspend", json=block).status_code == 204
    assert api(raw, "POST", "/v3/devices/0123/suspend", json=block).status_code == 404
    assert api(raw, "POST", f"/v3/devices/{NODE}/resume", json={"category": "Bad Category"}).status_code == 400
    assert api(raw, "POST", f"/v3/devices/{NODE}/resume", data=b"").status_code == 400
    assert api(raw, "POST", f"/v3/devices/{NODE}/resume", json=block).status_code == 204


def test_the_connector_has_no_suspension(start_server: Any) -> None:
    server = start_server(MbedServer, api_key=KEY, demo_devices=True)
    client = make_client(server, api="connector")
    try:
        with pytest.raises(NotInThisApiError, match="suspending devices is not part of the Connector API"):
            client.suspend_device("node-001")
    finally:
        client.close()


# -- the sandbox as the service ------------------------------------------------------------


def test_a_double_slash_in_a_subscription_path_is_normalised(pelion: MbedServer, client: MbedClient) -> None:
    with Inbox(client):
        wait_until(lambda: pelion._ws_connected, timeout=5)
        answer = api(pelion, "PUT", f"/v2/subscriptions/{SENSOR}//3303/0/5700")  # what the official SDK sends
        assert answer.status_code in (200, 202), answer.text
        wait_until(lambda: (SENSOR, TEMP) in pelion.subscriptions, timeout=5)
        assert api(pelion, "GET", f"/v2/subscriptions/{SENSOR}//3303/0/5700").status_code == 200


class OrderedServer(MbedServer):
    """The sandbox, noting when an answer is written and when an async response is queued."""

    def __init__(self, **kwargs: Any):
        self.order: list[tuple[str, float]] = []
        super().__init__(**kwargs)

    def _write_response(self, handler: Any, response: Any) -> None:  # type: ignore[override]
        super()._write_response(handler, response)
        self.order.append((f"written {response.status}", time.monotonic()))

    def enqueue(self, kind: str, element: Any) -> None:
        self.order.append((f"queued {kind}", time.monotonic()))
        super().enqueue(kind, element)


@pytest.mark.parametrize("api_mode", ["connector", "pelion"])
@pytest.mark.parametrize("round_trip", [0.0, 0.02])
def test_a_device_answers_a_round_trip_after_its_202_is_written(
    start_server: Any, api_mode: str, round_trip: float
) -> None:
    """A client that learns the async id from the 202 (``mbed_connector_api`` 1.0.4) must have read it
    before the answer comes: the answer is queued after the 202 is written, ``round_trip`` later."""
    server = start_server(OrderedServer, api_key=KEY, api=api_mode, pull_timeout=1, round_trip=round_trip)
    server.add_device("node-001", "Light", resources=[{"path": "/3/0/1", "value": "Mbed", "max_age": 0}])
    client = make_client(server, api=api_mode)
    try:
        with Inbox(client):
            wait_until(lambda: server._ws_connected, timeout=5)
            for _ in range(20):  # device delay 0: the answer must still follow the 202
                assert client.get_resource_value(next(iter(server.devices)), "/3/0/1").value == "Mbed"
    finally:
        client.close()
    steps = [(s, t) for s, t in server.order if s in ("written 202", "queued async-responses")]
    assert [s for s, _ in steps] == ["written 202", "queued async-responses"] * 20
    gaps = [answer - accepted for (_, accepted), (_, answer) in zip(steps[::2], steps[1::2], strict=True)]
    assert min(gaps) >= round_trip * 0.9, gaps


def test_the_sandbox_refuses_an_empty_resource_path(raw: MbedServer) -> None:
    answer = api(raw, "PUT", "/v2/subscriptions", json=[{"endpoint-name": "node*", "resource-path": []}])
    assert answer.status_code == 400 and raw.presubscriptions == []
    assert api(raw, "PUT", "/v2/subscriptions", json=[{"endpoint-name": "node*"}]).status_code == 204


def test_the_client_never_sends_an_empty_resource_path(pelion: MbedServer, client: MbedClient) -> None:
    before = len(pelion.requests)
    with pytest.raises(InvalidArgumentError, match="resource-path must not be empty") as refused:
        client.put_pre_subscriptions([{"endpoint-name": "node*", "resource-path": []}])
    assert "\n" not in str(refused.value) and len(pelion.requests) == before
    client.put_pre_subscriptions([{"endpoint-name": "node*", "resource-path": ["/3/0/1"]}])
    assert client.get_pre_subscriptions() == [{"endpoint-name": "node*", "resource-path": ["/3/0/1"]}]


def test_retry_bounds_are_enforced_by_the_sandbox(raw: MbedServer) -> None:
    body = {"method": "GET", "uri": "/3/0/1"}
    for query, code in (("retry=11", "INVALID_RETRY"), ("expiry-seconds=59", "INVALID_EXPIRY_SECONDS")):
        answer = api(raw, "POST", f"/v2/device-requests/{NODE}?async-id=a1&{query}", json=body)
        assert answer.status_code == 400 and answer.json() == code


def test_the_queue_loop_stops_with_the_server(start_server: Any) -> None:
    server = start_server(MbedServer, api_key=KEY, api="pelion", time_scale=0.01)
    device = server.add_device("n", resources=[{"path": "/1", "value": "x"}])
    server.set_behaviour(device.name, asleep=True)
    with server._cond:
        server.queue_request(device, "a1", lambda: {"status": 200})
    server.stop()
    assert not [t for t in threading.enumerate() if t.name == "mbed-queue" and t.is_alive()]
