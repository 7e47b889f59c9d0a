"""The mbed sandbox's error answers and control API edges, over real HTTP: each request that
the service refuses gets the status and body of ``protocols/mbed.md``, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from platypush_ext.sandbox.mbed import MbedServer

KEY = "test-key-1234"


@pytest.fixture
def server(start_server: Any) -> MbedServer:
    return start_server(MbedServer, api_key=KEY, pull_timeout=1.0, demo_devices=True)


def api(server: MbedServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=10,
                            **kwargs)


def state(server: MbedServer) -> dict[str, Any]:
    return requests.get(server.url + "/_sandbox/state", timeout=10).json()


NO_CHANNEL = (412, "No notification channel")


@pytest.mark.parametrize("method, path, body, expected", [
    ("GET", "/v2/nosuch", None, (404, "Not Found")),
    ("PATCH", "/v2/endpoints", None, (405, "Method Not Allowed")),
    ("GET", "/v2/endpoints/nosuch", None, (404, "Endpoint not found")),
    ("DELETE", "/v2/endpoints/node-001", None, NO_CHANNEL),
    ("PUT", "/v2/subscriptions/temp-sensor-01/3303/0/5700", None, NO_CHANNEL),
    ("DELETE", "/v2/subscriptions/nosuch/3303/0/5700", None, (404, "Endpoint or resource not found")),
    ("DELETE", "/v2/subscriptions/nosuch", None, (404, "Endpoint not found")),
    ("PUT", "/v2/subscriptions", {"endpoint-name": "node-001"}, (400, "Malformed content")),
    ("PUT", "/v2/subscriptions", [{"endpoint-name": 5}], (400, "Malformed content")),
    ("PUT", "/v2/subscriptions", [{"resource-path": "/3/0/1"}], (400, "Malformed content")),
    ("PUT", "/v2/notification/callback", {"url": 5}, (400, "Malformed content")),
    ("PUT", "/v2/notification/callback", {"url": "http://127.0.0.1:1/" + "x" * 400},
     (400, "Callback URL and headers are too long (400 characters at most)")),
])
def test_refused_requests(server: MbedServer, method: str, path: str, body: Any, expected: tuple[int, str]) -> None:
    before = state(server)
    answer = api(server, method, path, json=body)
    assert (answer.status_code, answer.text) == expected
    assert state(server) == before


@pytest.mark.parametrize("body, expected", [
    ({"method": "PATCH", "uri": "/3/0/1"}, (400, "MALFORMED_JSON_CONTENT")),
    ({"method": "GET", "uri": "/3/0/1"}, (412, "No notification channel")),
])
def test_refused_device_requests(server: MbedServer, body: dict[str, Any], expected: tuple[int, str]) -> None:
    answer = api(server, "POST", "/v2/device-requests/node-001?async-id=req-1", json=body)
    assert answer.status_code == expected[0] and expected[1] in answer.text


def test_device_request_to_a_deregistered_device(server: MbedServer) -> None:
    api(server, "GET", "/v2/notification/pull?noWait=true")  # a channel
    requests.post(server.url + "/_sandbox/devices/node-001/deregister", timeout=10).raise_for_status()
    answer = api(server, "POST", "/v2/device-requests/node-001?async-id=req-2", json={"method": "GET",
                                                                                      "uri": "/3/0/1"})
    assert answer.status_code == 400 and "DEVICE_NOT_CONNECTED" in answer.text


def test_channel_queries_and_removal(server: MbedServer) -> None:
    missing = api(server, "GET", "/v2/notification/channel")
    assert missing.status_code == 404 and "No notification channel" in missing.text
    assert api(server, "GET", "/v2/notification/websocket").status_code == 404
    assert api(server, "DELETE", "/v2/notification/pull").json() == {"status": "ALREADY_DELETED"}
    api(server, "GET", "/v2/notification/pull?noWait=true")
    assert api(server, "GET", "/v2/notification/channel").json() == {"delivery_mechanism": "LONG_POLLING"}
    assert api(server, "DELETE", "/v2/notification/pull").json() == {"status": "REMOVED"}
    assert state(server)["channel"] is None


def test_control_api_edges(server: MbedServer) -> None:
    control = server.url + "/_sandbox"
    device = requests.get(control + "/devices/node-001", timeout=10).json()
    assert device["name"] == "node-001" and device["registered"] is True
    no_value = requests.put(control + "/devices/node-001/values/3/0/1", json={}, timeout=10)
    assert (no_value.status_code, no_value.json()) == (400, {"error": 'give {"value": ...}'})
    not_object = requests.post(control + "/notifications", json=["x"], timeout=10)
    assert (not_object.status_code, not_object.json()) == (400, {"error": "give a NotificationMessage object"})
    unknown = requests.patch(control + "/config", json={"colour": "red"}, timeout=10)
    assert unknown.status_code == 400 and "unknown settings ['colour']" in unknown.json()["error"]
    assert requests.patch(control + "/config", json={"race": True}, timeout=10).status_code == 200
    assert state(server)["race"] is True
