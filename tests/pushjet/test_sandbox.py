"""Fidelity of the Pushjet sandbox against the exchanges observed on the upstream
server (``protocols/pushjet.md``): statuses, content types, exact bodies."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from platypush_ext.sandbox.pushjet import PushjetServer
from platypush_ext.sandbox.pushjet.records import PUBLIC_RE, SECRET_RE

pytestmark = pytest.mark.sandbox(cls=PushjetServer)

HTML = "text/html; charset=utf-8"
JSON = "application/json"


@pytest.fixture
def api(server):
    session = requests.Session()

    def call(method: str, path: str, **kwargs):
        return session.request(method, server.base_url + path.lstrip("/"), timeout=5, allow_redirects=False, **kwargs)

    return call


@pytest.fixture
def service(api):
    return api("POST", "service", data={"name": "Test svc 😉", "icon": "http://example.com/i.png"}).json()["service"]


def device() -> str:
    return str(uuid.uuid4())


def error(response) -> tuple[int, str, dict]:
    return response.status_code, response.headers["Content-Type"], json.loads(response.text)


def test_create_service_shape_and_keys(api):
    response = api("POST", "service", data={"name": "Test svc 😉", "icon": "http://example.com/i.png"})
    assert response.status_code == 200 and response.headers["Content-Type"] == JSON
    # jsonify: sorted keys, compact separators, non-ASCII escaped as \uXXXX surrogate pairs
    assert response.text.startswith('{"service":{"created":')
    assert "\\ud83d\\ude09" in response.text
    body = response.json()["service"]
    assert sorted(body) == ["created", "icon", "name", "public", "secret"]
    assert body["name"] == "Test svc 😉" and body["icon"] == "http://example.com/i.png"
    assert PUBLIC_RE.match(body["public"]) and len(body["public"]) == 40
    assert SECRET_RE.match(body["secret"])


def test_create_without_icon_and_without_name(api):
    assert api("POST", "service", data={"name": "C"}).json()["service"]["icon"] == ""
    assert error(api("POST", "service")) == (400, HTML, {"error": {"message": "Missing argument name", "id": 7}})
    assert error(api("POST", "service", data={"name": "   "}))[2]["error"]["id"] == 7
    # JSON bodies are not understood
    assert error(api("POST", "service", json={"name": "x"}))[2]["error"]["id"] == 7


def test_errors_text_is_json_dumps_with_spaces(api):
    response = api("GET", "service")
    assert response.text == '{"error": {"message": "Missing argument service", "id": 7}}'
    assert response.headers["Content-Type"] == HTML


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, (400, {"message": "Missing argument service", "id": 7})),
        ({"service": "nope"}, (400, {"message": "Invalid service", "id": 2})),
        ({"service": "abcd-abcdef-abcdefabcdef-abcde-abcdefabc"}, (404, {"message": "Service not found", "id": 6})),
        ({"secret": "short"}, (400, {"message": "Invalid secret", "id": 3})),
        ({"secret": "a" * 32}, (404, {"message": "Service not found", "id": 6})),
    ],
)
def test_get_service_errors(api, params, expected):
    status, ctype, body = error(api("GET", "service", params=params))
    assert (status, body["error"]) == expected and ctype == HTML


@pytest.mark.parametrize(
    "get",
    [
        pytest.param(lambda api, s: api("GET", "service", params={"service": s["public"]}), id="by-public"),
        pytest.param(lambda api, s: api("GET", "service", params={"secret": s["secret"]}), id="by-secret"),
        pytest.param(lambda api, s: api("GET", "service", data={"secret": s["secret"]}), id="by-form"),
    ],
)
def test_get_service_by_public_or_secret_never_returns_secret(api, service, get):
    response = get(api, service)
    assert response.status_code == 200 and response.headers["Content-Type"] == JSON
    assert response.json()["service"] == {k: v for k, v in service.items() if k != "secret"}


def test_edit_service_quirks(api, service):
    secret = service["secret"]
    assert error(api("PATCH", "service", params={"secret": secret})) == (
        400,
        HTML,
        {"error": {"message": "No changes were made", "id": 10}},
    )
    ok = api("PATCH", "service", params={"secret": secret}, data={"name": "Renamed"})
    assert (ok.status_code, ok.headers["Content-Type"], ok.text) == (200, HTML, '{"status": "ok"}')
    assert api("PATCH", "service", data={"secret": secret, "icon": "http://example.com/2.png"}).status_code == 200
    got = api("GET", "service", params={"service": service["public"]}).json()["service"]
    assert (got["name"], got["icon"]) == ("Renamed", "http://example.com/2.png")
    # present-but-empty icon removes it
    assert api("PATCH", "service", data={"secret": secret, "icon": ""}).status_code == 200
    assert api("GET", "service", params={"service": service["public"]}).json()["service"]["icon"] == ""


def test_delete_service_cascades_and_second_delete_is_404(api, service):
    dev = device()
    api("POST", "subscription", params={"uuid": dev}, data={"service": service["public"]})
    assert api("DELETE", "service", params={"secret": service["secret"]}).text == '{"status": "ok"}'
    assert error(api("GET", "service", params={"service": service["public"]}))[0] == 404
    assert error(api("DELETE", "service", params={"secret": service["secret"]})) == (
        404,
        HTML,
        {"error": {"message": "Service not found", "id": 6}},
    )
    assert api("GET", "subscription", params={"uuid": dev}).json() == {"subscriptions": []}


def test_subscription_lifecycle(api, service):
    dev = device()
    assert api("GET", "subscription", params={"uuid": dev}).text == '{"subscriptions":[]}\n'  # jsonify's newline
    response = api("POST", "subscription", params={"uuid": dev}, data={"service": service["public"]})
    assert response.status_code == 200 and response.headers["Content-Type"] == JSON
    assert "secret" not in response.json()["service"]
    assert error(api("POST", "subscription", params={"uuid": dev}, data={"service": service["public"]})) == (
        409,
        HTML,
        {"error": {"message": "Already subscribed to that service", "id": 4}},
    )
    listed = api("GET", "subscription", params={"uuid": dev}).json()["subscriptions"]
    assert len(listed) == 1
    assert sorted(listed[0]) == ["service", "timestamp", "timestamp_checked", "uuid"]
    assert listed[0]["uuid"] == dev and listed[0]["timestamp"] == listed[0]["timestamp_checked"]
    assert api("DELETE", "subscription", params={"uuid": dev}, data={"service": service["public"]}).text == (
        '{"status": "ok"}'
    )
    assert error(api("DELETE", "subscription", params={"uuid": dev}, data={"service": service["public"]})) == (
        409,
        HTML,
        {"error": {"message": "Not subscribed to that service", "id": 11}},
    )


def test_subscription_validation_order(api, service):
    # uuid is checked before service
    assert error(api("POST", "subscription", params={"uuid": "xyz"}, data={"service": service["public"]}))[2] == {
        "error": {"message": "Invalid client uuid", "id": 1}
    }
    assert error(api("POST", "subscription", data={"service": "bad"}))[2]["error"] == {
        "message": "Missing argument uuid",
        "id": 7,
    }
    assert error(api("POST", "subscription", params={"uuid": device()}, data={"service": "bad"}))[2]["error"]["id"] == 2
    assert error(
        api(
            "POST",
            "subscription",
            params={"uuid": device()},
            data={"service": "abcd-abcdef-abcdefabcdef-abcde-abcdefabc"},
        )
    )[:2] == (404, HTML)


def test_send_and_fetch_semantics(api, service):
    secret, public = service["secret"], service["public"]
    # no subscribers: silently dropped, still ok
    assert api("POST", "message", data={"secret": secret, "message": "nobody listens"}).text == '{"status": "ok"}'
    dev = device()
    api("POST", "subscription", params={"uuid": dev}, data={"service": public})
    assert error(api("POST", "message", data={"secret": secret}))[2]["error"] == {
        "message": "Missing argument message",
        "id": 7,
    }
    assert error(api("POST", "message", data={"message": "x"}))[2]["error"] == {
        "message": "Missing argument secret",
        "id": 7,
    }
    sends = [
        {"message": "Hello", "title": "T", "link": "http://x.y/", "level": "5"},
        {"message": "Lvl9", "level": "9"},
        {"message": "Lvl10", "level": "10"},
        {"message": "Lvlabc", "level": "abc"},
        {"message": "Long", "title": " " + "x" * 300},
    ]
    for form in sends:
        assert api("POST", "message", data={"secret": secret, **form}).status_code == 200
    first = api("GET", "message", params={"uuid": dev})
    assert first.status_code == 200 and first.headers["Content-Type"] == JSON
    messages = first.json()["messages"]
    assert [m["message"] for m in messages] == ["Hello", "Lvl9", "Lvl10", "Lvlabc", "Long"]
    assert [m["level"] for m in messages] == [5, 3, 1, 3, 3]
    assert messages[0]["title"] == "T" and messages[0]["link"] == "http://x.y/"
    assert messages[1]["title"] == "" and messages[1]["link"] == ""
    assert messages[4]["title"] == "x" * 255
    assert sorted(messages[0]) == ["level", "link", "message", "service", "timestamp", "title"]
    assert "secret" not in messages[0]["service"]
    # destructive: the second fetch is empty
    assert api("GET", "message", params={"uuid": dev}).text == '{"messages":[]}\n'
    assert error(api("GET", "message"))[2]["error"] == {"message": "Missing argument uuid", "id": 7}
    assert api("GET", "message", params={"uuid": device()}).json() == {"messages": []}


def test_late_subscriber_and_grouped_order(api):
    a = api("POST", "service", data={"name": "A"}).json()["service"]
    b = api("POST", "service", data={"name": "B"}).json()["service"]
    early, late = device(), device()
    for svc in (a, b):
        api("POST", "subscription", params={"uuid": early}, data={"service": svc["public"]})
    api("POST", "message", data={"secret": a["secret"], "message": "a1"})
    api("POST", "subscription", params={"uuid": late}, data={"service": a["public"]})
    api("POST", "message", data={"secret": b["secret"], "message": "b1"})
    api("POST", "message", data={"secret": a["secret"], "message": "a2"})
    # grouped by subscription, not by time
    assert [m["message"] for m in api("GET", "message", params={"uuid": early}).json()["messages"]] == [
        "a1",
        "a2",
        "b1",
    ]
    # the late subscriber only gets what was sent after it subscribed
    assert [m["message"] for m in api("GET", "message", params={"uuid": late}).json()["messages"]] == ["a2"]


def test_delete_message_marks_everything_read(api, service):
    dev = device()
    api("POST", "subscription", params={"uuid": dev}, data={"service": service["public"]})
    api("POST", "message", data={"secret": service["secret"], "message": "second"})
    response = api("DELETE", "message", data={"uuid": dev})  # uuid in the form body works too
    assert (response.status_code, response.headers["Content-Type"], response.text) == (200, HTML, '{"status": "ok"}')
    assert api("GET", "message", params={"uuid": dev}).json() == {"messages": []}


def test_form_wins_over_query(api, service):
    other = api("POST", "service", data={"name": "Other"}).json()["service"]
    got = api("GET", "service", params={"secret": other["secret"]}, data={"secret": service["secret"]})
    assert got.json()["service"]["public"] == service["public"]


def test_framework_pages(api):
    root = api("GET", "")
    assert root.status_code == 302 and root.headers["Location"] == "http://docs.pushjet.io"
    assert api("PUT", "service").status_code == 405
    missing = api("GET", "nonexistent")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == HTML
    assert "<title>404 Not Found</title>" in missing.text


def test_values_longer_than_their_columns_get_an_html_500_as_upstream(api, service):
    """protocols/pushjet.md §12: name is 255 characters, text/link/icon 65,535 bytes of UTF-8 (strict SQL mode)."""

    def status(response):
        return response.status_code, "<title>500 Internal Server Error</title>" in response.text

    assert api("POST", "service", data={"name": "n" * 255}).status_code == 200  # the limits themselves fit
    assert status(api("POST", "service", data={"name": "n" * 256})) == (500, True)
    assert status(api("POST", "service", data={"name": "N", "icon": "é" * 32768})) == (500, True)  # 65,536 bytes
    assert status(api("PATCH", "service", data={"secret": service["secret"], "name": "n" * 256})) == (500, True)
    assert api("GET", "service", params={"service": service["public"]}).json()["service"]["name"] == "Test svc 😉"
    dev = device()
    api("POST", "subscription", params={"uuid": dev}, data={"service": service["public"]})
    assert api("POST", "message", data={"secret": service["secret"], "message": "m" * 65535}).status_code == 200
    assert status(api("POST", "message", data={"secret": service["secret"], "message": "m" * 65536})) == (500, True)
    assert status(api("POST", "message", data={"secret": service["secret"], "message": "m", "link": "€" * 21846})) == (
        500,
        True,
    )  # 65,538 bytes
    long_title = api("POST", "message", data={"secret": service["secret"], "message": "t", "title": "t" * 300})
    assert long_title.status_code == 200  # titles are truncated to 255, never refused
    assert [m["message"][:1] for m in api("GET", "message", params={"uuid": dev}).json()["messages"]] == ["m", "t"]


def test_keys_and_uuids_are_compared_ignoring_case(api, service):
    upper_secret, upper_public = service["secret"].upper(), service["public"].upper()
    assert upper_secret != service["secret"] and upper_public != service["public"]
    assert api("GET", "service", params={"service": upper_public}).json()["service"]["public"] == service["public"]
    assert api("GET", "service", data={"secret": upper_secret}).json()["service"]["public"] == service["public"]
    dev = device()
    assert api("POST", "subscription", params={"uuid": dev.upper()}, data={"service": upper_public}).status_code == 200
    assert api("POST", "message", data={"secret": upper_secret, "message": "hi"}).text == '{"status": "ok"}'
    assert [m["message"] for m in api("GET", "message", params={"uuid": dev}).json()["messages"]] == ["hi"]
    assert api("DELETE", "service", data={"secret": upper_secret}).status_code == 200
    assert api("GET", "service", params={"service": service["public"]}).status_code == 404


def test_raw_message_is_fetched_and_pushed_exactly_as_given(api, server, service):
    import websocket

    dev, other = device(), device()
    for uuid_ in (dev, other):
        api("POST", "subscription", params={"uuid": uuid_}, data={"service": service["public"]})
    ws = websocket.create_connection(server.realtime_url, timeout=5, skip_utf8_validation=True)
    try:
        ws.send(other)
        assert json.loads(ws.recv()) == {"status": "ok"}
        api("POST", "message", data={"secret": service["secret"], "message": "before"})
        raw = b'{"message": "x", "timestamp": 1e400, "bad": "\xff"}'
        assert api("POST", "_sandbox/raw-message", params={"service": service["public"]}, data=raw).json() == {
            "queued": True
        }
        assert json.loads(ws.recv())["message"]["message"] == "before"
        assert ws.recv_data() == (websocket.ABNF.OPCODE_TEXT, b'{"message": ' + raw + b"}")
    finally:
        ws.close()
    fetched = api("GET", "message", params={"uuid": dev})
    assert fetched.headers["Content-Type"] == JSON
    head, tail = fetched.content.split(b"," + raw)  # spliced in as it is, after the other message
    assert json.loads(head + b"]}")["messages"][0]["message"] == "before" and tail == b"]}\n"
    assert api("GET", "message", params={"uuid": dev}).text == '{"messages":[]}\n'
    unknown = api("POST", "_sandbox/raw-message", params={"service": "nope"}, data=b"{}")
    assert unknown.status_code == 404
