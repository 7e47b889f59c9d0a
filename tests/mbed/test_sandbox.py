"""Fidelity of the mbed sandbox against the examples of ``protocols/mbed.md``."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests
import websocket

from platypush_ext.sandbox.mbed import MbedServer

KEY = "test-key-1234"

pytestmark = pytest.mark.sandbox(cls=MbedServer, api_key=KEY, pull_timeout=1.0, demo_devices=True)


def api(server: MbedServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {KEY}", **kwargs.pop("headers", {})}
    return requests.request(method, server.url + path, headers=headers, timeout=10, **kwargs)


def pull(server: MbedServer, no_wait: bool = False) -> requests.Response:
    return api(server, "GET", "/v2/notification/pull" + ("?noWait=true" if no_wait else ""))


def drain(server: MbedServer) -> None:
    pull(server, no_wait=True)  # creates the long-poll channel and empties the queue


@pytest.mark.parametrize("path", ["/", "/rest-versions", "/v2/endpoints", "/v2/notification/pull", "/v2/subscriptions"])
def test_bearer_key_required_everywhere(server: MbedServer, path: str) -> None:
    answer = requests.get(server.url + path, timeout=5)
    assert answer.status_code == 401, path
    assert requests.get(server.url + path, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401


def test_versions_and_limits(server: MbedServer) -> None:
    root = api(server, "GET", "/")
    assert root.status_code == 200 and root.headers["Content-Type"].startswith("text/plain")
    assert root.text == "DeviceServer v3.0.0-520\nREST version = v2"
    versions = api(server, "GET", "/rest-versions")
    assert versions.headers["Content-Type"] == "application/json" and versions.json() == ["v1", "v2"]
    limits = api(server, "GET", "/v2/limits").json()
    assert set(limits) == {"transaction-quota", "transaction-count", "endpoint-quota", "endpoint-count"}
    assert limits["endpoint-count"] == 3


def test_endpoint_directory(server: MbedServer) -> None:
    listing = api(server, "GET", "/v2/endpoints").json()
    assert {"name": "node-001", "type": "Light", "status": "ACTIVE"} in listing
    assert {"name": "queue-node-01", "type": "QueueModeNode", "status": "ACTIVE", "q": True} in listing
    assert [e["name"] for e in api(server, "GET", "/v2/endpoints?type=Sensor").json()] == ["temp-sensor-01"]
    # unversioned = latest
    assert api(server, "GET", "/endpoints").json() == listing
    resources = api(server, "GET", "/v2/endpoints/node-001").json()
    assert {"uri": "/3/0/1", "rt": "model", "obs": False, "type": "text/plain"} in resources
    assert api(server, "GET", "/v2/endpoints/nope").status_code == 404


def test_async_read_delivered_on_long_poll(server: MbedServer) -> None:
    first = api(server, "GET", "/v2/endpoints/node-001/3/0/1")
    assert first.status_code == 412 and first.text == "No notification channel"
    drain(server)
    answer = api(server, "GET", "/v2/endpoints/node-001/3/0/1")
    assert answer.status_code == 202 and answer.headers["Content-Type"] == "application/json"
    async_id = answer.json()["async-response-id"]
    assert all(c in async_id for c in "#@/")
    batch = pull(server)
    assert batch.status_code == 200
    assert batch.json() == {
        "async-responses": [{"id": async_id, "status": 200, "payload": "TWJlZA==", "ct": "text/plain", "max-age": 60}]
    }
    cached = api(server, "GET", "/v2/endpoints/node-001/3/0/1")  # now from the cache, raw
    assert cached.status_code == 200 and cached.content == b"Mbed"


def test_cache_only_no_resp_and_errors(server: MbedServer) -> None:
    drain(server)
    assert api(server, "GET", "/v2/endpoints/node-001/3/0/0?cacheOnly=true").status_code == 205
    assert api(server, "PUT", "/v2/endpoints/node-001/3311/0/5851?noResp=true", data=b"70").status_code == 204
    assert server.devices["node-001"].resources["/3311/0/5851"].value == b"70"
    assert api(server, "GET", "/v2/endpoints/queue-node-01/3/0/1?noResp=true").status_code == 409
    assert api(server, "GET", "/v2/endpoints/ghost/3/0/1").status_code == 410
    assert api(server, "GET", "/v2/endpoints/node-001/9/9/9").status_code == 404
    assert pull(server, no_wait=True).status_code == 204


def test_write_is_raw_and_execute_and_delete(server: MbedServer) -> None:
    drain(server)
    put = api(server, "PUT", "/v2/endpoints/node-001/3311/0/5850", data=b"95", headers={"Content-Type": "text/plain"})
    assert put.status_code == 202
    post = api(server, "POST", "/v2/endpoints/node-001/3311/0/5800", data=b"Data for the function")
    delete = api(server, "DELETE", "/v2/endpoints/node-001/3311/0/5800")
    assert post.status_code == delete.status_code == 202
    responses: list[dict] = []
    for _ in range(10):  # each device answers a round trip after its 202 (round_trip): maybe not one batch
        answer = pull(server)  # held until something comes (or 204)
        responses += answer.json().get("async-responses", []) if answer.status_code == 200 else []
        if len(responses) >= 3:
            break
    assert [r["id"] for r in responses] == [
        put.json()["async-response-id"],
        post.json()["async-response-id"],
        delete.json()["async-response-id"],
    ]
    assert all(r["status"] == 200 and r["payload"] == "" for r in responses)
    assert server.devices["node-001"].resources["/3311/0/5850"].value == b"95"
    assert "/3311/0/5800" not in server.devices["node-001"].resources


def test_async_errors_timeout_and_busy(server: MbedServer) -> None:
    drain(server)
    server.set_behaviour("node-001", fail_status=404, fail_error="NOT_FOUND")
    api(server, "GET", "/v2/endpoints/node-001/3/0/1")
    server.set_behaviour("node-001", fail_status=None, silent=True, timeout_after=0.2)
    api(server, "GET", "/v2/endpoints/node-001/3/0/1")
    time.sleep(0.4)
    errors = pull(server).json()["async-responses"]
    assert [(e["status"], e["error"]) for e in errors] == [(404, "NOT_FOUND"), (504, "TIMEOUT")]
    assert all("payload" not in e for e in errors)
    server.set_behaviour("node-001", silent=True, timeout_after=None)
    statuses = [api(server, "GET", "/v2/endpoints/node-001/3/0/1").status_code for _ in range(21)]
    assert statuses[:20] == [202] * 20 and statuses[20] == 429


def test_subscriptions(server: MbedServer) -> None:
    drain(server)
    assert api(server, "PUT", "/v2/subscriptions/node-001/3/0/1").status_code == 412  # not observable
    assert api(server, "PUT", "/v2/subscriptions/nope/3/0/1").status_code == 404
    assert api(server, "GET", "/v2/subscriptions/node-001").status_code == 404  # no subscriptions yet
    sub = api(server, "PUT", "/v2/subscriptions/node-001/3311/0/5850")
    assert sub.status_code == 202
    assert pull(server).json()["async-responses"][0]["id"] == sub.json()["async-response-id"]
    api(server, "PUT", "/v2/subscriptions/node-001/3311/0/5851")
    pull(server)
    one = api(server, "GET", "/v2/subscriptions/node-001/3311/0/5850")
    assert one.status_code == 200 and one.headers["Content-Type"] == "text/uri-list"
    assert one.text == "/subscriptions/node-001/3311/0/5850"
    listing = api(server, "GET", "/v2/subscriptions/node-001").text.splitlines()
    assert listing == ["/subscriptions/node-001/3311/0/5850", "/subscriptions/node-001/3311/0/5851"]
    server.set_value("node-001", "/3311/0/5850", "1")
    note = pull(server).json()["notifications"][0]
    assert note == {"ep": "node-001", "path": "/3311/0/5850", "ct": "text/plain", "payload": "MQ==", "max-age": 60}
    assert api(server, "DELETE", "/v2/subscriptions/node-001/3311/0/5850").status_code == 204
    assert api(server, "GET", "/v2/subscriptions/node-001/3311/0/5850").status_code == 404
    assert api(server, "DELETE", "/v2/subscriptions/node-001").status_code == 204
    assert api(server, "DELETE", "/v2/subscriptions/").status_code == 204  # the original client's trailing slash


def test_pre_subscriptions(server: MbedServer) -> None:
    rules = [{"endpoint-name": "node*"}]
    assert api(server, "GET", "/v2/subscriptions").json() == []
    # the original library's unversioned path, as observed
    assert api(server, "PUT", "/subscriptions", json=rules).status_code == 204
    assert api(server, "GET", "/v2/subscriptions").json() == rules
    assert api(server, "PUT", "/v2/subscriptions", data=b"{nope").status_code == 400
    assert api(server, "PUT", "/v2/subscriptions", json=[{"bad": 1}]).status_code == 400
    server.register("node-001")  # a re-registration applies the rules (observable resources only)
    assert server.subscriptions == {("node-001", "/3311/0/5850"), ("node-001", "/3311/0/5851")}
    assert (
        api(
            server, "PUT", "/v2/subscriptions", json=[{"endpoint-type": "Sensor", "resource-path": ["/3303/*"]}]
        ).status_code
        == 204
    )
    assert server.subscriptions == set()  # changing the rules removes every subscription
    server.register("temp-sensor-01")
    assert server.subscriptions == {("temp-sensor-01", "/3303/0/5700")}


def test_registration_events(server: MbedServer) -> None:
    drain(server)
    server.update_registration("node-001")
    server.deregister("node-001")
    server.expire("temp-sensor-01")
    message = pull(server).json()
    assert message["reg-updates"][0]["ep"] == "node-001" and message["reg-updates"][0]["q"] is False
    assert {"path", "if", "rt", "ct", "obs"} == set(message["reg-updates"][0]["resources"][0])
    assert message["de-registrations"] == ["node-001"]
    assert message["registrations-expired"] == ["temp-sensor-01"]
    assert api(server, "GET", "/v2/endpoints/node-001").status_code == 404


def test_long_poll_holds_then_204_and_409_when_concurrent(server: MbedServer) -> None:
    drain(server)
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(pull(server).status_code))
    started = time.monotonic()
    worker.start()
    time.sleep(0.3)
    assert pull(server).status_code == 409
    worker.join()
    assert results == [204] and time.monotonic() - started >= 0.9
    # an event wakes a waiting poll at once
    worker = threading.Thread(target=lambda: results.append(pull(server).status_code))
    started = time.monotonic()
    worker.start()
    time.sleep(0.1)
    server.update_registration("node-001")
    worker.join()
    assert results[-1] == 200 and time.monotonic() - started < 0.9


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, dict[str, str]]]] = []
    fail = 0

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if body and _Receiver.fail > 0:
            _Receiver.fail -= 1
            self.send_response(500)
        else:
            _Receiver.received.append((body, dict(self.headers)))
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_callback_channel(server: MbedServer) -> None:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/cb"
    try:
        assert api(server, "GET", "/v2/notification/callback").status_code == 404
        assert api(server, "PUT", "/v2/notification/callback", json={"url": "http://127.0.0.1:9/x"}).status_code == 400
        _Receiver.received.clear()
        _Receiver.fail = 2
        answer = api(server, "PUT", "/v2/notification/callback", json={"url": url, "headers": {"Authorization": "a"}})
        assert answer.status_code == 204
        assert _Receiver.received[0][0] == b""  # the test PUT, empty body
        assert api(server, "GET", "/v2/notification/callback").json() == {"url": url, "headers": {"Authorization": "a"}}
        assert pull(server).status_code == 400  # another channel type exists
        server.update_registration("node-001")
        deadline = time.monotonic() + 5
        while len(_Receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        body, headers = _Receiver.received[1]
        assert json.loads(body)["reg-updates"][0]["ep"] == "node-001"  # delivered after two failed attempts
        assert headers["Authorization"] == "a" and headers["Content-Type"] == "application/json"
        deadline = time.monotonic() + 5
        while len(server.callback_deliveries) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.callback_deliveries[:3] == [500, 500, 204]
        assert api(server, "DELETE", "/v2/notification/callback").status_code == 204
        assert api(server, "DELETE", "/v2/notification/callback").status_code == 404
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_websocket_channel(server: MbedServer) -> None:
    assert api(server, "GET", "/v2/notification/websocket").status_code == 404
    drain(server)
    created = api(server, "PUT", "/v2/notification/websocket")
    assert created.status_code == 201 and created.json() == {"queueSize": 0, "status": "disconnected"}
    assert api(server, "PUT", "/v2/notification/websocket").status_code == 200
    assert api(server, "GET", "/v2/notification/websocket-connect").status_code == 426
    ws_url = server.url.replace("http", "ws") + "/v2/notification/websocket-connect"
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(ws_url, timeout=5, header=["Authorization: Bearer wrong"])
    ws = websocket.create_connection(ws_url, timeout=5, subprotocols=["wss", f"pelion_ak_{KEY}"])
    try:
        server.update_registration("node-001")
        assert json.loads(ws.recv())["reg-updates"][0]["ep"] == "node-001"
        second = websocket.create_connection(ws_url, timeout=5, header=[f"Authorization: Bearer {KEY}"])
        opcode, data = ws.recv_data(control_frame=True)  # the old connection is closed with 1001
        assert opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1001
        server.deregister("node-001")
        assert json.loads(second.recv()) == {"de-registrations": ["node-001"]}
        second.close()
    finally:
        ws.close()
    assert api(server, "DELETE", "/v2/notification/websocket").status_code == 204


def test_device_requests(server: MbedServer) -> None:
    drain(server)
    body = {
        "method": "PUT",
        "uri": "/3311/0/5851",
        "accept": "text/plain",
        "content-type": "text/plain",
        "payload-b64": base64.b64encode(b"value1\n").decode(),
    }
    answer = api(server, "POST", "/v2/device-requests/node-001?async-id=my-id-1", json=body)
    assert answer.status_code == 202 and answer.content == b""
    assert pull(server).json()["async-responses"][0]["id"] == "my-id-1"
    assert server.devices["node-001"].resources["/3311/0/5851"].value == b"value1\n"
    bad = api(server, "POST", "/v2/device-requests/node-001?async-id=bad%20id", json=body)
    assert bad.status_code == 400 and bad.json()["message"] == "MALFORMED_ASYNC_ID"
    assert set(bad.json()) == {"object", "code", "type", "message", "request_id", "fields"}
    assert (
        api(server, "POST", "/v2/device-requests/node-001?async-id=x", data=b"{").json()["message"]
        == "MALFORMED_JSON_CONTENT"
    )
    assert api(server, "POST", "/v2/device-requests/ghost?async-id=x", json=body).status_code == 404
    missing = api(server, "POST", "/v2/device-requests/node-001?async-id=x", json={"method": "GET", "uri": "/9/9"})
    assert missing.json()["message"] == "RESOURCE_NOT_FOUND"


def test_race_switch_delivers_before_the_202(server: MbedServer) -> None:
    drain(server)
    server.race = True
    got: list[Any] = []
    worker = threading.Thread(target=lambda: got.append(pull(server).json()))
    worker.start()
    time.sleep(0.1)
    answer = api(server, "GET", "/v2/endpoints/node-001/3/0/1")
    worker.join()
    assert got[0]["async-responses"][0]["id"] == answer.json()["async-response-id"]


def test_control_api(server: MbedServer) -> None:
    ctl = server.url + "/_sandbox"
    drain(server)
    created = requests.post(
        ctl + "/devices",
        json={"name": "lamp 2", "type": "Light", "resources": [{"path": "/3311/0/5850", "value": "0"}]},
        timeout=5,
    )
    assert created.status_code == 201
    assert requests.put(ctl + "/devices/lamp%202/values/3311/0/5850", json={"value": "1"}, timeout=5).json() == {
        "notifications": 0
    }  # not subscribed
    assert requests.patch(ctl + "/devices/lamp%202", json={"delay": 0.5}, timeout=5).json()["delay"] == 0.5
    assert requests.patch(ctl + "/devices/lamp%202", json={"nope": 1}, timeout=5).status_code == 400
    for op in ("update", "deregister", "register", "expire"):
        assert requests.post(f"{ctl}/devices/lamp%202/{op}", timeout=5).status_code == 200
    assert requests.post(ctl + "/devices/ghost/register", timeout=5).status_code == 404
    assert requests.post(ctl + "/notifications", json={"notifications": [{"junk": True}]}, timeout=5).ok
    message = pull(server).json()
    assert [r["ep"] for r in message["registrations"]] == ["lamp 2", "lamp 2"]
    assert message["notifications"] == [{"junk": True}]
    assert requests.patch(ctl + "/config", json={"pull_timeout": 0.5}, timeout=5).json()["pull_timeout"] == 0.5
    state = requests.get(ctl + "/state", timeout=5).json()
    assert state["channel"] == "long_poll" and state["queued"] == 0
    assert requests.delete(ctl + "/devices/lamp%202", timeout=5).status_code == 204
    assert "lamp 2" not in [d["name"] for d in requests.get(ctl + "/devices", timeout=5).json()["devices"]]


def test_raw_notification_is_sent_exactly_as_given_on_every_channel(server: MbedServer) -> None:
    raw = b'{"notifications": [{"ep": "a", "max-age": 1e400}], "x": "\xff"}'  # neither JSON-clean nor UTF-8
    drain(server)
    server.update_registration("node-001")
    assert api(server, "POST", "/_sandbox/raw-notification", data=raw).json() == {"queued": 2}
    server.deregister("node-001")
    first = pull(server)  # what was queued before the raw message, without it
    assert first.json() == {"reg-updates": [server.devices["node-001"].as_registration()]}
    second = pull(server)
    assert second.status_code == 200 and second.content == raw  # alone, byte for byte
    assert pull(server).json() == {"de-registrations": ["node-001"]}
    api(server, "DELETE", "/v2/notification/pull")
    api(server, "PUT", "/v2/notification/websocket")
    ws_url = server.url.replace("http", "ws") + "/v2/notification/websocket-connect"
    ws = websocket.create_connection(
        ws_url, timeout=5, header=[f"Authorization: Bearer {KEY}"], skip_utf8_validation=True
    )
    try:
        server.enqueue_raw(raw)
        opcode, data = ws.recv_data()
        assert (opcode, data) == (websocket.ABNF.OPCODE_TEXT, raw)
    finally:
        ws.close()
