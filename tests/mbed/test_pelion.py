"""The mbed client in ``api: pelion`` mode against the sandbox's Pelion mode (issue 11).

Every exchange that a test of the ``pelion`` fixture makes is checked against the published
OpenAPI file when the test ends (``openapi_check``); tests that talk to the sandbox directly,
to see it refuse what the API refuses, use ``raw`` (not checked: they are non-conformant on purpose).
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import websocket

from platypush_ext.core.backoff import Backoff
from platypush_ext.core.errors import InvalidArgumentError, ProtocolError
from platypush_ext.mbed.channels import CallbackChannel, LongPollChannel
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.errors import ChannelConflictError, NotInThisApiError
from platypush_ext.mbed.messages import parse_message
from platypush_ext.sandbox.core import json_response
from platypush_ext.sandbox.mbed import MbedServer
from tests.mbed.pelion import KEY, NODE, SENSOR, TEMP, Inbox, make_client, start
from tests.support import wait_until


@pytest.fixture
def client(pelion: MbedServer) -> Iterator[MbedClient]:
    mbed = make_client(pelion)
    yield mbed
    mbed.close()


def api(server: MbedServer, method: str, path: str, key: str = KEY, **kwargs: Any) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=10, **kwargs)


def pull_now(server: MbedServer) -> Any:
    """One ``noWait`` pull: its message, or ``None``."""
    answer = api(server, "GET", "/v2/notification/pull?noWait=true")
    return answer.json() if answer.status_code == 200 else None


# -- device discovery ---------------------------------------------------------------


def test_devices_are_discovered_through_every_page_of_the_directory(pelion: MbedServer, client: MbedClient) -> None:
    for i in range(4):
        pelion.add_device(f"extra-{i}", "Extra", resources=[{"path": "/3/0/1", "value": "x"}])
    pelion.deregister("extra-3")
    endpoints = client.get_devices(page_size=2)  # 6 registered of 7: three pages
    pages = [e for e in pelion.exchanges or [] if e.path == "/v3/devices/"]
    assert len(endpoints) == 6 and len(pages) == 3 and [p.query.get("after") for p in pages][0] is None
    listed = client.get_endpoints()
    assert [e["label"] for e in listed] == [
        "node-001",
        "temp-sensor-01",
        "queue-node-01",
        "extra-0",
        "extra-1",
        "extra-2",
    ]
    first = listed[0]
    assert set(first) >= {"name", "type", "status", "q", "label"} and len(first["name"]) == 32
    assert first == {
        "name": NODE,
        "type": "Light",
        "status": "ACTIVE",
        "q": False,
        "label": "node-001",
        "suspended": False,
    }
    assert [e["label"] for e in client.get_endpoints(type="Extra")] == ["extra-0", "extra-1", "extra-2"]
    everything = client.get_endpoints(all_states=True)
    assert {e["label"]: e["status"] for e in everything}["extra-3"] == "DEREGISTERED" and len(everything) == 7
    # the id is what every other call takes
    assert client.get_resources(first["name"])[0]["uri"] == "/3/0/0"
    with pytest.raises(ProtocolError, match="after 2 pages"):
        client.get_devices(page_size=2, max_pages=2)  # bounded: never an endless paging loop


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.get_connector_version(), id="get_connector_version"),
        pytest.param(lambda c: c.get_api_versions(), id="get_api_versions"),
        pytest.param(lambda c: c.get_limits(), id="get_limits"),
        pytest.param(lambda c: c.delete_endpoint(SENSOR), id="delete_endpoint"),
    ],
)
def test_connector_only_operations_answer_one_line_and_send_nothing(
    pelion: MbedServer, client: MbedClient, call: Callable[[MbedClient], Any]
) -> None:
    with pytest.raises(NotInThisApiError, match="does not exist in the Pelion / Izuma API") as info:
        call(client)
    assert "\n" not in str(info.value)
    assert pelion.exchanges == []


def test_notification_rules_are_connector_only(pelion: MbedServer) -> None:
    with pytest.raises(NotInThisApiError, match="Connector API"):
        make_client(pelion, api="connector").set_notification_rules("node-001", TEMP, pmax=5)


@pytest.mark.parametrize("path", ["/v2/endpoints", "/", "/rest-versions", "/v2/limits", "/endpoints/x"])
def test_pelion_mode_has_none_of_the_connector_routes(raw: MbedServer, path: str) -> None:
    answer = api(raw, "GET", path)
    assert answer.status_code == 404, path
    assert answer.json()["object"] == "error" and answer.json()["type"] == "not_found"


def test_pelion_mode_serves_the_directory(raw: MbedServer) -> None:
    page = api(raw, "GET", "/v3/devices/", params={"limit": 2, "include": "total_count"}).json()
    assert page["has_more"] and page["total_count"] == 3 and len(page["data"]) == 2
    nxt = api(raw, "GET", "/v3/devices/", params={"after": page["data"][-1]["id"]}).json()
    assert [d["name"] for d in nxt["data"]] == ["queue-node-01"] and not nxt["has_more"]
    assert api(raw, "GET", "/v3/devices/", params={"limit": "x"}).status_code == 400
    desc = api(raw, "GET", "/v3/devices/", params={"order": "DESC", "endpoint_type__eq": "Light"}).json()
    assert [d["name"] for d in desc["data"]] == ["node-001"]
    connector = start(api="connector", record=False)
    try:
        assert api(connector, "GET", "/v2/endpoints").status_code == 200
        assert api(connector, "GET", "/v3/devices/").status_code == 404
    finally:
        connector.stop()
    with pytest.raises(ValueError):
        MbedServer(api="izuma")


# -- channels -------------------------------------------------------------------------


def test_a_websocket_takes_over_from_a_callback_left_registered(pelion: MbedServer, client: MbedClient) -> None:
    with Inbox(client, CallbackChannel) as callback:
        wait_until(lambda: pelion.channel == "callback", timeout=5)
    assert pelion.channel == "callback"  # the previous run's registration stays on the service
    with Inbox(client) as ws:
        wait_until(lambda: pelion.channel == "websocket" and pelion._ws_connected, timeout=5)
        assert client.subscribe(SENSOR, TEMP)
        pelion.set_value("temp-sensor-01", TEMP, "19.5")
        wait_until(lambda: ws.values() == ["19.5"], timeout=5)
    sent = [(e.method, e.path, e.status) for e in pelion.exchanges or [] if "/notification/" in e.path]
    assert ("PUT", "/v2/notification/websocket", 400) in sent  # refused while the callback existed
    assert sent.index(("DELETE", "/v2/notification/callback", 204)) < sent.index(
        ("PUT", "/v2/notification/websocket", 201)
    )
    assert callback.items == []


def test_a_channel_still_refused_after_the_takeover_is_not_retried(raw: MbedServer) -> None:
    client = make_client(raw)
    api(raw, "GET", "/v2/notification/pull?noWait=true")  # a long-poll channel exists
    raw.faults.add("status", count=5, status=400, method="PUT", path="/v2/notification/websocket")
    inbox = Inbox(client)
    with inbox:
        wait_until(lambda: inbox.channel.failure is not None, timeout=5)
        time.sleep(0.5)  # the backoff (50 ms) would have retried several times
    puts = [r for r in raw.requests if r[:2] == ("PUT", "/v2/notification/websocket")]
    assert len(puts) == 2  # the refusal, the retry after removing the long poll: then nothing
    assert "not retrying" in inbox.channel.failure and raw.channel is None
    assert not inbox.channel.thread.is_alive()
    assert isinstance(inbox.channel.failure, str) and ChannelConflictError.__name__
    client.close()


def test_one_channel_type_at_a_time_and_nothing_reaches_a_replaced_one(raw: MbedServer) -> None:
    assert "registrations" in pull_now(raw)  # a long-poll channel, drained
    assert api(raw, "PUT", "/v2/notification/websocket").status_code == 400
    assert api(raw, "PUT", "/v2/notification/callback", json={"url": "http://127.0.0.1:9/x"}).status_code == 400
    assert raw.channel == "long_poll"
    answers: list[requests.Response] = []
    poll = threading.Thread(target=lambda: answers.append(api(raw, "GET", "/v2/notification/pull")))
    poll.start()
    wait_until(lambda: raw._polling, timeout=5)
    assert api(raw, "DELETE", "/v2/notification/pull").json() == {"status": "REMOVED"}
    assert api(raw, "PUT", "/v2/notification/websocket").status_code == 201
    raw.enqueue("de-registrations", "somebody")
    poll.join(5)
    assert answers[0].status_code == 204 and raw.queued() == 1  # the stale poll took nothing
    assert api(raw, "GET", "/v2/notification/pull?noWait=true").status_code == 400


def test_a_stale_long_poll_loses_nothing_when_a_callback_replaces_it_connector() -> None:
    server = start(api="connector", record=False)
    try:
        assert "registrations" in pull_now(server)
        answers: list[requests.Response] = []
        poll = threading.Thread(target=lambda: answers.append(api(server, "GET", "/v2/notification/pull")))
        poll.start()
        wait_until(lambda: server._polling, timeout=5)
        client = make_client(server, api="connector")
        with Inbox(client, CallbackChannel) as inbox:
            wait_until(lambda: server.channel == "callback", timeout=5)
            client.subscribe("temp-sensor-01", TEMP)
            server.set_value("temp-sensor-01", TEMP, "22.5")
            wait_until(lambda: inbox.values() == ["22.5"], timeout=5)
        poll.join(5)
        assert answers[0].status_code == 204  # before: the stale poll took the notification
        client.close()
    finally:
        server.stop()


def test_device_requests_are_accepted_before_any_channel(pelion: MbedServer, client: MbedClient) -> None:
    async_id = client.put_resource_value(NODE, "/3311/0/5851", "61", wait=False)
    assert isinstance(async_id, str) and pelion.channel is None
    answers: list[dict[str, Any]] = []
    client.set_handler("async-responses", answers.append)
    with Inbox(client, LongPollChannel, no_wait_first=True) as inbox:
        wait_until(lambda: [a["async_id"] for a in answers] == [async_id], timeout=5)
        assert inbox.items == []
    assert pelion.devices[NODE].resources["/3311/0/5851"].value == b"61"


def test_a_request_that_arrives_while_the_sandbox_stops_is_reset_and_not_recorded() -> None:
    """It was recorded as a ``101`` answer, which the published API does not list for a pull (the
    conformance check of ``test_device_requests_are_accepted_before_any_channel`` failed under load,
    when the channel's next pull arrived during the stop)."""
    server = start()

    def pull() -> requests.Response:
        return requests.get(
            server.url + "/v2/notification/pull", headers={"Authorization": f"Bearer {KEY}"}, timeout=10
        )

    assert pull().status_code == 200  # the fleet's registrations, at once
    server._stopping.set()  # the moment between a stop's start and the listening socket's close
    with pytest.raises(requests.ConnectionError):
        pull()
    server.stop()
    assert [(e.path, e.status) for e in server.exchanges or []] == [("/v2/notification/pull", 200)]


def test_a_wrong_key_on_the_websocket_is_closed_with_1008(raw: MbedServer) -> None:
    api(raw, "PUT", "/v2/notification/websocket")
    url = raw.url.replace("http", "ws", 1) + "/v2/notification/websocket-connect"
    ws = websocket.create_connection(url, timeout=5, header=["Authorization: Bearer wrong-key-0000"])
    try:
        opcode, data = ws.recv_data(control_frame=True)
    finally:
        ws.close()
    assert opcode == websocket.ABNF.OPCODE_CLOSE and struct.unpack("!H", data[:2])[0] == 1008
    assert b"wrong-key" not in data
    connector = start(api="connector", record=False)
    try:
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(connector.url.replace("http", "ws", 1) + "/v2/notification/websocket-connect")
    finally:
        connector.stop()


# -- notification rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    "rules, error",
    [
        ({}, "at least one"),
        ({"pmin": 10, "pmax": 5}, "pmin must not exceed pmax"),
        ({"gt": 5, "lt": 5}, "lt must be below gt"),
        ({"st": 0}, "positive"),
        ({"pmax": -1}, "not negative"),
        ({"pmax": "soon"}, "must be a number"),
        ({"pmax": True}, "must be a number"),
        ({"pmax": float("nan")}, "must be a number"),
        ({"every": 5}, "unknown notification rule"),
        ([1], "must be an object"),
    ],
)
def test_bad_rules_are_refused_before_anything_is_sent(
    pelion: MbedServer, client: MbedClient, rules: Any, error: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=error):
        client.subscribe(SENSOR, TEMP, rules=rules)
    with pytest.raises(InvalidArgumentError, match="pmin must not exceed pmax"):
        client.set_notification_rules(SENSOR, TEMP, pmin=10, pmax=5)
    with pytest.raises(InvalidArgumentError, match="set_notification_rules"):
        client.subscribe(SENSOR, TEMP + "?pmax=120")
    assert pelion.exchanges == []


def test_rules_filter_and_pace_what_is_notified(pelion: MbedServer, client: MbedClient) -> None:
    ep = SENSOR
    with Inbox(client) as inbox:
        wait_until(lambda: pelion._ws_connected, timeout=5)
        assert client.subscribe(NODE, "/3311/0/5850")  # no rules: notified as before
        assert client.subscribe(ep, TEMP, rules={"gt": 25, "lt": 10})
        rules_request = [e for e in pelion.exchanges or [] if e.path.startswith("/v2/device-requests/")][-1]
        assert json.loads(rules_request.request_body) == {"method": "PUT", "uri": "/3303/0/5700?gt=25&lt=10"}
        for value in ("20", "26", "24", "9.5", "abc"):
            pelion.set_value(ep, TEMP, value)
        wait_until(lambda: inbox.values() == ["26", "9.5", "abc"], timeout=5)  # non-numbers pass the thresholds
        assert pelion.devices[ep].resources[TEMP].value == b"abc"  # the rules request wrote nothing
        client.set_notification_rules(ep, TEMP, st=2)
        for value in ("11", "12", "13.5", "14"):
            pelion.set_value(ep, TEMP, value)
        wait_until(lambda: inbox.values()[3:] == ["11", "13.5"], timeout=5)
        client.set_notification_rules(ep, TEMP, pmin=0.4)
        started = time.monotonic()
        for value in ("1", "2", "3"):
            pelion.set_value(ep, TEMP, value)
        wait_until(lambda: inbox.values()[5:] == ["3"], timeout=5)  # held, then the latest value once pmin passed
        assert time.monotonic() - started >= 0.35
        assert client.set_notification_rules(ep, TEMP, pmax=0.3) == {"pmax": 0.3}
        wait_until(lambda: inbox.values()[6:8] == ["3", "3"], timeout=5)  # a silent device reports anyway


def test_rules_only_for_known_resources(raw: MbedServer) -> None:
    ep = SENSOR
    api(raw, "GET", "/v2/notification/pull?noWait=true")
    answer = api(raw, "POST", f"/v2/device-requests/{ep}?async-id=r1", json={"method": "PUT", "uri": "/9/9/9?pmax=5"})
    assert answer.status_code == 400 and answer.json() == "RESOURCE_NOT_FOUND"
    legacy = api(raw, "PUT", f"/v2/endpoints/{ep}{TEMP}?pmax=5", data=b"")  # the write-attributes form
    assert legacy.status_code == 202 and raw.devices[ep].resources[TEMP].value == b"21.5"
    assert api(raw, "PUT", f"/v2/endpoints/{ep}{TEMP}?pmax=x", data=b"1").status_code == 400
    assert api(raw, "PUT", f"/v2/endpoints/{ep}/9/9/9?pmax=5", data=b"").status_code == 404
    assert api(raw, "PUT", f"/v2/endpoints/{'0' * 32}{TEMP}?pmax=5", data=b"").status_code == 410
    wait_until(lambda: raw.devices[ep].resources[TEMP].rules == {"pmax": 5.0}, timeout=5)


# -- pre-subscriptions and the smaller points of fidelity -----------------------------------


def test_delete_all_subscriptions_removes_the_pre_subscriptions(pelion: MbedServer, client: MbedClient) -> None:
    with Inbox(client):
        wait_until(lambda: pelion._ws_connected, timeout=5)
        client.put_pre_subscriptions([{"endpoint-type": "Sensor", "resource-path": [TEMP]}])
        client.subscribe(NODE, "/3311/0/5850")
        client.delete_all_subscriptions()
        assert client.get_pre_subscriptions() == []
        assert client.get_endpoint_subscriptions(NODE) == ["/3311/0/5850"]
    connector = start(api="connector", record=False)
    try:
        other = make_client(connector, api="connector")
        other.put_pre_subscriptions([{"endpoint-type": "Sensor"}])
        other.delete_all_subscriptions()
        assert other.get_pre_subscriptions() == [{"endpoint-type": "Sensor"}]  # the Connector: subscriptions only
        other.close()
    finally:
        connector.stop()


def test_pelion_errors_and_bodies_are_shaped_as_the_api_says(raw: MbedServer) -> None:
    ep = NODE
    missing = api(raw, "GET", "/v2/endpoints/nobody")
    assert missing.status_code == 404 and set(missing.json()) == {
        "object",
        "code",
        "type",
        "message",
        "request_id",
        "fields",
    }
    unknown = api(raw, "POST", "/v2/device-requests/nobody?async-id=a1", json={"method": "GET", "uri": "/3/0/1"})
    assert unknown.status_code == 404 and unknown.json() == "DEVICE_NOT_FOUND"
    assert api(raw, "GET", "/v2/subscriptions", key="wrong-key").json()["type"] == "unauthorized"
    assert api(raw, "DELETE", "/v2/subscriptions/nobody").status_code == 204
    api(raw, "GET", "/v2/notification/pull?noWait=true")
    no_cache = api(raw, "GET", f"/v2/endpoints/{ep}/3/0/0?cacheOnly=true")
    assert no_cache.status_code == 205 and no_cache.content == b""
    assert api(raw, "PUT", f"/v2/endpoints/{ep}/3311/0/5851", data=b"").status_code == 400
    empty = {"method": "PUT", "uri": "/3311/0/5851"}
    assert api(raw, "POST", f"/v2/device-requests/{ep}?async-id=a2", json=empty).json() == "MALFORMED_JSON_CONTENT"
    raw.set_value("temp-sensor-01", TEMP, "1")  # not subscribed: nothing
    api(raw, "GET", f"/v2/endpoints/{ep}/3/0/1")
    message = wait_until(lambda: pull_now(raw), timeout=5)
    assert isinstance(message["async-responses"][0]["max-age"], str)
    items, problems = parse_message(message)
    assert problems == [] and items[0].data["max_age"] == 60


def test_the_client_refuses_an_empty_write(pelion: MbedServer, client: MbedClient) -> None:
    with pytest.raises(InvalidArgumentError, match="must not be empty"):
        client.put_resource_value(NODE, "/3311/0/5851", "")
    assert pelion.exchanges == []


@pytest.mark.parametrize("mode", ["connector", "pelion"])
def test_a_400_with_no_other_channel_is_raised_as_it_is(mode: str) -> None:
    server = start(api=mode, record=False)
    client = make_client(server, api=mode)
    downs: list[Exception] = []
    channel = CallbackChannel(client, lambda m: None, public_url="http://127.0.0.1:9/dead", on_down=downs.append)
    channel.backoff = Backoff(base=0.05, cap=0.1)
    channel.start_thread()
    try:
        wait_until(lambda: len(downs) >= 2, timeout=5)  # a callback URL that may come back: retried with backoff
    finally:
        channel.stop(timeout=5)
        client.close()
        server.stop()
    assert "not reachable" in str(downs[0]) and channel.failure is None
    checks = [r for r in server.requests if r[:2] == ("GET", "/v2/notification/channel")]
    assert bool(checks) == (mode == "pelion")  # Pelion: was it another channel? (no: nothing removed)
    with pytest.raises(InvalidArgumentError, match="unknown channel kind"):
        client.delete_channel("smoke")


class OddDirectory(MbedServer):
    """A directory answering something that is not a DevicePage."""

    def setup_routes(self) -> None:
        self.route("GET", r"/v3/devices/", lambda request: json_response({"data": "none"}))


def test_a_directory_answer_that_is_not_a_device_page_is_a_protocol_error() -> None:
    server = OddDirectory(api_key=KEY).start()
    try:
        with pytest.raises(ProtocolError, match="expected a DevicePage"):
            make_client(server).get_endpoints()
    finally:
        server.stop()


def test_a_channel_created_during_the_callback_test_put_wins(raw: MbedServer) -> None:
    class Receiver(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # the test PUT: meanwhile, another application opens a WebSocket channel
            api(raw, "PUT", "/v2/notification/websocket")
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/cb"
        answer = api(raw, "PUT", "/v2/notification/callback", json={"url": url})
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert answer.status_code == 400 and "Another channel type exists (websocket)" in answer.json()["message"]
    assert raw.channel == "websocket" and raw.callback is None
