"""The mbed sandbox's error answers, control API edges and WebSocket framing, over real HTTP: each
request that the service refuses gets the status and body of ``protocols/mbed.md``, and changes nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
import websocket

from platypush_ext.sandbox.mbed import MbedServer

KEY = "test-key-1234"

pytestmark = pytest.mark.sandbox(cls=MbedServer, api_key=KEY, pull_timeout=1.0, demo_devices=True)


def api(server: MbedServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Authorization": f"Bearer {KEY}"}, timeout=10, **kwargs)


def state(server: MbedServer) -> dict[str, Any]:
    return requests.get(server.url + "/_sandbox/state", timeout=10).json()


NO_CHANNEL = (412, "No notification channel")


@pytest.mark.parametrize(
    "method, path, body, expected",
    [
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
        (
            "PUT",
            "/v2/notification/callback",
            {"url": "http://127.0.0.1:1/" + "x" * 400},
            (400, "Callback URL and headers are too long (400 characters at most)"),
        ),
    ],
)
def test_refused_requests(server: MbedServer, method: str, path: str, body: Any, expected: tuple[int, str]) -> None:
    before = state(server)
    answer = api(server, method, path, json=body)
    assert (answer.status_code, answer.text) == expected
    assert state(server) == before


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"method": "PATCH", "uri": "/3/0/1"}, (400, "MALFORMED_JSON_CONTENT")),
        ({"method": "PUT", "uri": "/3/0/1?pmax=-1"}, (400, "MALFORMED_JSON_CONTENT")),
        # (no channel yet is no refusal: the published API lists 202/400/401/404 only; test_pelion.py)
    ],
)
def test_refused_device_requests(server: MbedServer, body: dict[str, Any], expected: tuple[int, str]) -> None:
    answer = api(server, "POST", "/v2/device-requests/node-001?async-id=req-1", json=body)
    assert answer.status_code == expected[0] and expected[1] in answer.text


def test_device_request_to_a_deregistered_device(server: MbedServer) -> None:
    api(server, "GET", "/v2/notification/pull?noWait=true")  # a channel
    requests.post(server.url + "/_sandbox/devices/node-001/deregister", timeout=10).raise_for_status()
    answer = api(server, "POST", "/v2/device-requests/node-001?async-id=req-2", json={"method": "GET", "uri": "/3/0/1"})
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


def ws_connect(server: MbedServer) -> websocket.WebSocket:
    url = server.url.replace("http", "ws") + "/v2/notification/websocket-connect"
    return websocket.create_connection(url, timeout=5, header=[f"Authorization: Bearer {KEY}"])


def test_websocket_without_its_channel_is_closed_with_1011(server: MbedServer) -> None:
    ws = ws_connect(server)
    try:
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1011
        assert data[2:] == b"No WebSocket channel registered"
    finally:
        ws.close()


def test_websocket_frames_of_every_length_and_pings(server: MbedServer) -> None:
    assert api(server, "PUT", "/v2/notification/websocket").status_code == 201
    ws = ws_connect(server)
    try:
        for size in (5, 300, 70_000):  # 7-bit, 16-bit and 64-bit lengths, ignored by the service
            ws.send("x" * size)
        ws.ping(b"are you there")
        # the queued registrations and the pong, in either order (the service may push before it reads)
        frames = dict(ws.recv_data(control_frame=True) for _ in range(2))
        assert "registrations" in json.loads(frames[websocket.ABNF.OPCODE_TEXT])
        assert frames[websocket.ABNF.OPCODE_PONG] == b"are you there"
        value = base64.b64encode(b"v" * 80_000).decode()  # a notification larger than 64 KiB
        requests.post(
            server.url + "/_sandbox/notifications",
            timeout=10,
            json={"notifications": [{"ep": "node-001", "path": "/3/0/1", "ct": "text/plain", "payload": value}]},
        ).raise_for_status()
        assert json.loads(ws.recv())["notifications"][0]["payload"] == value
    finally:
        ws.close()
