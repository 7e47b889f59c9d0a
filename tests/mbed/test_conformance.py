"""The conformance check itself (``openapi_check``): it accepts what the published Pelion API
allows and rejects what it does not. ``test_pelion.py`` applies it to every exchange of its
client tests, ``tests/e2e/test_mbed_pelion.py`` to a real Platypush's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from platypush_ext.sandbox.mbed.base import Exchange
from tests.mbed import openapi_check
from tests.mbed.pelion import Inbox, make_client, start
from tests.support import wait_until

DEVICE = "015f3850a657000000000001001002ab"
GOOD_PAGE = {
    "object": "list",
    "data": [{"id": DEVICE, "name": "n", "state": "registered"}],
    "has_more": False,
    "limit": 50,
}


JSON_GET = {"request_type": "application/json", "request_body": b'{"method": "GET", "uri": "/3/0/1"}'}
BLOCK = {"request_type": "application/json", "request_body": b'{"category": "maintenance", "description": "x"}'}


def exchange(method: str, path: str, status: int, body: Any = b"", **fields: Any) -> Exchange:
    """An exchange with a JSON (or raw) response body."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    values = {"query": {}, "request_type": "", "request_body": b"", "response_type": "application/json"}
    values.update(fields)
    return Exchange(
        method,
        path,
        values["query"],
        values["request_type"],
        values["request_body"],
        status,
        values["response_type"],
        data,
    )


def test_the_files_are_the_published_version_3() -> None:
    assert openapi_check.api_version() == "3"
    assert openapi_check.spec()["swagger"] == "2.0"
    older, newer = (openapi_check.load(path) for path in openapi_check.SPEC_PATHS)
    assert (len(older["paths"]), len(newer["paths"])) == (149, 184)
    assert "/v3/devices/{id}/suspend" in openapi_check.spec()["paths"]  # the later file's
    assert "/v3/firmware-images/" in openapi_check.spec()["paths"]  # only the older one has it: kept


GOOD = [
    exchange("GET", "/v3/devices/", 200, GOOD_PAGE, query={"limit": "100", "order": "ASC", "state__eq": "registered"}),
    exchange(
        "POST",
        f"/v2/device-requests/{DEVICE}",
        202,
        query={"async-id": "abc-123"},
        request_type="application/json",
        request_body=b'{"method": "PUT", "uri": "/5/0/1?pmax=120"}',
    ),
    exchange(
        "POST",
        f"/v2/device-requests/{DEVICE}",
        404,
        "DEVICE_NOT_FOUND",
        query={"async-id": "x"},
        request_type="application/json",
        request_body=b'{"method": "GET", "uri": "/3/0/1"}',
    ),
    exchange("GET", "/v2/notification/pull", 200, {"notifications": [{"ep": DEVICE, "path": "/1", "max-age": "60"}]}),
    exchange("GET", f"/v2/subscriptions/{DEVICE}", 200, b"/subscriptions/x/1", response_type="text/uri-list"),
    exchange("GET", f"/v2/endpoints/{DEVICE}/3303/0/5700", 205),
    exchange("GET", "/v2/notification/websocket-connect", 101),
    exchange("MESSAGE", "websocket", 0, {"registrations": [{"ep": DEVICE, "original-ep": "n", "q": False}]}),
    # what the 2019-11 file adds
    exchange("GET", "/v2/notification/websocket-connect", 401, b""),
    exchange("GET", "/v2/notification/websocket-connect", 400, b""),
    exchange(
        "POST",
        f"/v2/device-requests/{DEVICE}",
        202,
        query={"async-id": "a", "retry": "3", "expiry-seconds": "7200"},
        **JSON_GET,
    ),
    exchange(
        "POST",
        f"/v2/device-requests/{DEVICE}",
        202,
        query={"async-id": "a", "retry": "0", "expiry-seconds": "60"},
        **JSON_GET,
    ),
    exchange(
        "GET",
        "/v3/devices/",
        200,
        GOOD_PAGE,
        query={"lifecycle_status__eq": "blocked", "operator_suspended__eq": "true"},
    ),
    exchange(
        "GET",
        "/v3/devices/",
        200,
        {
            **GOOD_PAGE,
            "data": [
                {"id": DEVICE, "lifecycle_status": "blocked", "operator_suspended": True, "system_suspended": False}
            ],
        },
    ),
    exchange("POST", f"/v3/devices/{DEVICE}/suspend", 204, **BLOCK),
    exchange("POST", f"/v3/devices/{DEVICE}/resume", 204, **BLOCK),
    exchange("PUT", "/v2/notification/websocket", 201, {"queue_size": 0, "status": "disconnected"}),
]


@pytest.mark.parametrize("good", GOOD, ids=lambda e: f"{e.method} {e.path} {e.status}")
def test_conformant_exchanges_pass(good: Exchange) -> None:
    assert openapi_check.check(good) == []


BAD = [
    (exchange("GET", "/v2/endpoints", 200, []), "no such operation"),
    (exchange("GET", "/rest-versions", 200, ["v2"]), "no such operation"),
    (exchange("PATCH", "/v3/devices/", 200, GOOD_PAGE), "no such operation"),
    (exchange("GET", "/v3/devices/", 200, GOOD_PAGE, query={"type": "Light"}), "undeclared parameter 'type'"),
    (exchange("GET", "/v3/devices/", 200, GOOD_PAGE, query={"limit": "many"}), "not an integer"),
    (exchange("GET", "/v3/devices/", 200, GOOD_PAGE, query={"limit": "5000"}), "out of bounds"),
    (exchange("GET", "/v3/devices/", 200, {**GOOD_PAGE, "has_more": "no"}), "has_more: expected boolean"),
    (exchange("GET", "/v3/devices/", 200, {**GOOD_PAGE, "next": 2}), "undeclared property 'next'"),
    (exchange("GET", "/v3/devices/", 200, {"data": [{"state": "asleep"}]}), "is not one of"),
    (
        exchange("GET", "/v2/notification/pull", 200, {"notifications": [{"ep": "a", "max-age": 60}]}),
        "max-age: expected string",
    ),
    (exchange("GET", "/v2/notification/pull", 200, b"not json"), "not JSON"),
    (
        exchange("GET", "/v2/notification/pull", 200, {"n": 1}, query={"noWait": "true"}),
        "undeclared parameter 'noWait'",
    ),
    (exchange("POST", f"/v2/device-requests/{DEVICE}", 412, query={"async-id": "a"}), "status 412 is not listed"),
    (exchange("POST", f"/v2/device-requests/{DEVICE}", 202), "missing required 'async-id'"),
    (exchange("POST", f"/v2/device-requests/{DEVICE}", 202, query={"async-id": "a b"}), "does not match"),
    (
        exchange("POST", f"/v2/device-requests/{DEVICE}", 404, {"object": "error"}, query={"async-id": "a"}),
        "expected string",
    ),
    (
        exchange(
            "POST",
            f"/v2/device-requests/{DEVICE}",
            202,
            query={"async-id": "a"},
            request_type="application/json",
            request_body=b'{"uri": "/1"}',
        ),
        "missing required 'method'",
    ),
    (exchange("POST", f"/v2/device-requests/{DEVICE}", 202, query={"async-id": "a"}), "required body is missing"),
    (exchange("PUT", "/v2/notification/callback", 204, request_type="text/plain", request_body=b"x"), "content type"),
    (exchange("DELETE", f"/v2/subscriptions/{DEVICE}", 404), "status 404 is not listed"),
    (exchange("GET", "/v2/subscriptions", 200, {}, request_type="application/json", request_body=b"[]"), "takes none"),
    (exchange("GET", f"/v2/endpoints/{DEVICE}/3303/0/5700", 205, b"No cache available"), "a 205 with a body"),
    (
        exchange("GET", f"/v2/subscriptions/{DEVICE}", 200, b"/x/1", response_type="text/plain"),
        "'text/plain' is not one of",
    ),
    (exchange("PUT", "/v2/notification/websocket", 201, b"", response_type="application/json"), "no body"),
    (exchange("PUT", "/v2/notification/websocket", 201, {"queue_size": 0, "status": "asleep"}), "is not one of"),
    (exchange("PUT", "/v2/notification/websocket", 201, {"queue_size": True}), "expected integer"),
    # where the 2019-11 file differs from the 2019-06 one, it wins
    (exchange("PUT", "/v2/notification/websocket", 201, {"queueSize": 0}), "undeclared property 'queueSize'"),
    (exchange("GET", f"/v2/endpoints/{DEVICE}/3303/0/5700", 412, b""), "status 412 is not listed"),
    (exchange("PUT", f"/v2/subscriptions/{DEVICE}/3303/0/5700", 504, b""), "status 504 is not listed"),
    (exchange("GET", "/v3/devices/", 200, GOOD_PAGE, query={"filter": "state=registered"}), "undeclared parameter"),
    (
        exchange("POST", f"/v2/device-requests/{DEVICE}", 202, query={"async-id": "a", "retry": "11"}, **JSON_GET),
        "retry: 11 is out of bounds",
    ),
    (
        exchange(
            "POST", f"/v2/device-requests/{DEVICE}", 202, query={"async-id": "a", "expiry-seconds": "59"}, **JSON_GET
        ),
        "expiry-seconds: 59 is out of bounds",
    ),
    (exchange("POST", f"/v3/devices/{DEVICE}/suspend", 204), "required body is missing"),
    (exchange("POST", f"/v3/devices/{DEVICE}/resume", 200, b"", **BLOCK), "status 200 is not listed"),
    (exchange("GET", "/v2/subscriptions", 200, [{"resource-path": []}]), "fewer than 1 items"),
    (exchange("GET", "/v2/notification/callback", 200, {"url": None}), "null is not allowed"),
    (exchange("MESSAGE", "callback", 0, {"async-responses": [{"id": "a", "max-age": 0}]}), "max-age: expected string"),
    (exchange("MESSAGE", "websocket", 0, {"de-registrations": [{"ep": "a"}]}), "expected string"),
    (exchange("MESSAGE", "websocket", 0, b"{"), "not JSON"),
]


@pytest.mark.parametrize("bad, problem", BAD, ids=lambda v: v.path if isinstance(v, Exchange) else None)
def test_deliberately_wrong_exchanges_are_rejected(bad: Exchange, problem: str) -> None:
    problems = openapi_check.check(bad)
    assert problems and problem in "\n".join(problems), problems


def test_the_connector_dialect_does_not_pass_for_pelion() -> None:
    """The same client tour against the Connector-mode sandbox is rejected: the check can tell."""
    server = start(api="connector")
    client = make_client(server)
    try:
        with Inbox(client) as inbox:
            wait_until(lambda: server._ws_connected, timeout=5)
            client.subscribe("temp-sensor-01", "/3303/0/5700")
            server.set_value("temp-sensor-01", "/3303/0/5700", "30")
            wait_until(lambda: inbox.values() == ["30"], timeout=5)
        assert client.get_endpoint_subscriptions("nobody") == []
    finally:
        client.close()
        server.stop()
    problems = "\n".join(openapi_check.check_all(server.exchanges or []))
    assert "max-age: expected string" in problems  # a number in the Connector's examples
    assert "GET /v2/subscriptions/{device-id} -> 404" not in problems  # listed: not every exchange is flagged
