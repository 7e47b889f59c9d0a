"""The Pushjet client against the sandbox server over real HTTP: every endpoint,
every error id, validation before any request, fault injection."""

from __future__ import annotations

import uuid

import pytest

from platypush_ext.core.errors import (
    InvalidArgumentError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    ServiceConnectionError,
    ServiceTimeoutError,
)
from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.pushjet.client import (
    Message,
    NonexistentError,
    PushjetBadRequestError,
    PushjetClient,
    Service,
    SubscriptionError,
    check_public_key,
    check_secret_key,
    check_uuid,
)
from platypush_ext.sandbox.core import json_response
from platypush_ext.sandbox.ports import free_port
from platypush_ext.sandbox.pushjet import PushjetServer

UNKNOWN_PUBLIC = "abcd-abcdef-abcdefabcdef-abcde-abcdefabc"
UNKNOWN_SECRET = "a" * 32

pytestmark = pytest.mark.sandbox(cls=PushjetServer)


@pytest.fixture
def client(server):
    client = PushjetClient(
        server.base_url, timeouts=Timeouts(2, 2), retry=RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.05)
    )
    yield client
    client.close()


@pytest.fixture
def service(client) -> Service:
    return client.create_service("Alerts", "http://example.com/i.png")


@pytest.fixture
def device() -> str:
    return str(uuid.uuid4())


def test_create_and_get_service(client, service):
    assert service.name == "Alerts" and service.icon_url == "http://example.com/i.png"
    assert service.secret_key and len(service.secret_key) == 32
    assert service.secret_key not in repr(service)
    by_public = client.get_service(public_key=service.public_key)
    assert by_public.secret_key is None and by_public.name == "Alerts"
    by_secret = client.get_service(secret_key=service.secret_key)
    assert by_secret.secret_key == service.secret_key and by_secret.public_key == service.public_key
    assert client.create_service("No icon").icon_url is None


def test_edit_service_sends_only_what_changes(client, service):
    client.edit_service(service.secret_key, icon_url="http://example.com/n.png")
    got = client.get_service(public_key=service.public_key)
    assert (got.name, got.icon_url) == ("Alerts", "http://example.com/n.png")  # the name is untouched
    client.edit_service(service.secret_key, name="Renamed", icon_url="")
    got = client.get_service(public_key=service.public_key)
    assert (got.name, got.icon_url) == ("Renamed", None)  # "" removed the icon


def test_delete_service(client, service):
    client.delete_service(service.secret_key)
    with pytest.raises(NonexistentError) as caught:
        client.get_service(secret_key=service.secret_key)
    assert caught.value.code == 6 and caught.value.status == 404
    assert service.secret_key not in str(caught.value)
    with pytest.raises(NonexistentError):
        client.delete_service(service.secret_key)


def test_subscribe_send_fetch(client, service, device):
    assert client.subscribe(device, service.public_key).public_key == service.public_key
    client.send(service.secret_key, "hello", title="title", link="http://l/", importance=4)
    client.send(service.secret_key, "plain")
    messages = client.fetch_messages(device)
    assert [(m.message, m.title, m.link, m.importance) for m in messages] == [
        ("hello", "title", "http://l/", 4),
        ("plain", None, None, 3),
    ]
    assert messages[0].service.name == "Alerts" and messages[0].time_sent > 0
    assert client.fetch_messages(device) == []  # consumed


def test_subscriptions_and_unsubscribe(client, service, device):
    assert client.get_subscriptions(device) == []
    client.subscribe(device.upper(), service.public_key)  # UUIDs are canonicalised to lowercase
    (subscription,) = client.get_subscriptions(device)
    assert subscription.device_uuid == device and subscription.service.public_key == service.public_key
    assert subscription.time_subscribed <= subscription.last_checked
    client.unsubscribe(device, service.public_key)
    assert client.get_subscriptions(device) == []


def test_mark_read(client, service, device):
    client.subscribe(device, service.public_key)
    client.send(service.secret_key, "unread")
    client.mark_read(device)
    assert client.fetch_messages(device) == []


@pytest.mark.parametrize(
    "code, call",
    [
        (4, lambda c, s, d: (c.subscribe(d, s.public_key), c.subscribe(d, s.public_key))),
        (11, lambda c, s, d: c.unsubscribe(d, s.public_key)),
    ],
)
def test_subscription_errors(client, service, device, code, call):
    with pytest.raises(SubscriptionError) as caught:
        call(client, service, device)
    assert caught.value.code == code and caught.value.status == 409


@pytest.mark.parametrize(
    "call",
    [
        lambda c, d: c.subscribe(d, UNKNOWN_PUBLIC),
        lambda c, d: c.unsubscribe(d, UNKNOWN_PUBLIC),
        lambda c, d: c.get_service(public_key=UNKNOWN_PUBLIC),
        lambda c, d: c.get_service(secret_key=UNKNOWN_SECRET),
        lambda c, d: c.send(UNKNOWN_SECRET, "x"),
        lambda c, d: c.edit_service(UNKNOWN_SECRET, name="x"),
        lambda c, d: c.delete_service(UNKNOWN_SECRET),
    ],
)
def test_nonexistent_service(client, device, call):
    with pytest.raises(NonexistentError, match="Service not found"):
        call(client, device)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c: c.subscribe("xyz", UNKNOWN_PUBLIC), "invalid device UUID"),
        (lambda c: c.get_subscriptions("not-a-uuid"), "invalid device UUID"),
        (lambda c: c.fetch_messages("1234"), "invalid device UUID"),
        (lambda c: c.subscribe(str(uuid.uuid4()), "not-a-key"), "invalid service public key"),
        (lambda c: c.send("short", "x"), "invalid secret key"),
        (lambda c: c.send(None, "x"), "needs the service's secret key"),
        (lambda c: c.send(UNKNOWN_SECRET, ""), "message must be a non-empty string"),
        (lambda c: c.send(UNKNOWN_SECRET, "x", importance=0), r"from 1 \(least\) to 5"),
        (lambda c: c.send(UNKNOWN_SECRET, "x", importance=6), r"from 1 \(least\) to 5"),
        (lambda c: c.send(UNKNOWN_SECRET, "x", importance="high"), "integer from 1 to 5"),
        (lambda c: c.send(UNKNOWN_SECRET, "x", importance=True), "integer from 1 to 5"),
        (lambda c: c.create_service(""), "name must be a non-empty string"),
        (lambda c: c.edit_service(UNKNOWN_SECRET), "nothing to change"),
        (lambda c: c.edit_service(UNKNOWN_SECRET, name=" "), "name must be a non-empty string"),
        (lambda c: c.get_service(), "public_key or secret_key"),
    ],
)
def test_bad_input_is_rejected_before_any_request(server, client, call, message):
    before = len(server.requests)
    with pytest.raises(InvalidArgumentError, match=message) as caught:
        call(client)
    assert len(server.requests) == before
    assert UNKNOWN_SECRET not in str(caught.value) and "short" not in str(caught.value)  # secrets never echoed


def test_server_rejections_map_to_bad_request(server, client):
    # a key that passes our (identical) regex cannot be rejected, so talk to the server directly
    with pytest.raises(PushjetBadRequestError) as caught:
        client._call("POST", "subscription", data={"uuid": "xyz"})
    assert (caught.value.code, caught.value.server_message) == (1, "Invalid client uuid")


def test_rate_limit_error_id_5(server, client):
    body = {"error": {"message": "Whoaw there cowboy, slow down!", "id": 5}}
    server.route("GET", "/slow", lambda r: json_response(body, 429, "text/html; charset=utf-8", compact=False))
    with pytest.raises(RateLimitedError, match="slow down"):
        client._call("GET", "slow")


def test_idempotent_calls_survive_5xx_bursts_and_resets(server, client, service, device):
    client.subscribe(device, service.public_key)
    server.faults.add("status", count=2, status=503, retry_after=0.05)
    assert len(client.get_subscriptions(device)) == 1
    server.faults.add("reset", count=1)
    assert client.get_service(public_key=service.public_key).name == "Alerts"


def test_send_is_not_replayed(server, client, service, device):
    client.subscribe(device, service.public_key)
    server.faults.add("status", count=1, status=500, method="POST", path="/message")
    with pytest.raises(ServerError):
        client.send(service.secret_key, "once")
    assert [r for r in server.requests if r[:2] == ("POST", "/message")] == [("POST", "/message", 500)]


def test_fetch_is_never_retried(server, client, service, device):
    client.subscribe(device, service.public_key)
    client.send(service.secret_key, "m")
    server.faults.add("reset", count=1, method="GET", path="/message")
    with pytest.raises(ServiceConnectionError):
        client.fetch_messages(device)
    assert sum(1 for r in server.requests if r[:2] == ("GET", "/message")) == 1


def test_malformed_answers(server, client, service, device):
    server.faults.add("malformed", count=1, path="/subscription")
    with pytest.raises(ProtocolError):
        client.get_subscriptions(device)
    server.route("GET", "/weird", lambda r: json_response({"messages": [{"no": "fields"}]}))
    with pytest.raises(ProtocolError, match="^service: missing$"):
        Message.from_json(client._call("GET", "weird", key="messages")[0])


def test_timeout_and_unreachable_server(server, service):
    slow = PushjetClient(server.base_url, timeouts=Timeouts(1, 0.3), retry=RetryPolicy(attempts=1))
    server.faults.add("hang", count=1, delay=1)
    with pytest.raises(ServiceTimeoutError):
        slow.get_service(public_key=service.public_key)
    dead = PushjetClient(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=1))
    with pytest.raises(ServiceConnectionError, match="connection refused") as caught:
        dead.send(service.secret_key, "x")
    assert service.secret_key not in str(caught.value)


def test_base_url_with_path_and_without_trailing_slash(start_server):
    server = start_server(PushjetServer)
    # the sandbox answers at its root; a prefix path would be kept, never replaced
    client = PushjetClient(server.url)
    assert client.base_url == server.url + "/"
    assert client.create_service("x").name == "x"
    assert PushjetClient("https://example.org/pushjet/api").http.url("service") == (
        "https://example.org/pushjet/api/service"
    )


def test_secret_never_travels_in_urls(server, client, service, device):
    client.get_service(secret_key=service.secret_key)
    client.send(service.secret_key, "x")
    client.edit_service(service.secret_key, name="y")
    client.delete_service(service.secret_key)
    assert len(server.targets) >= 4 and all("secret" not in target for target in server.targets)


@pytest.mark.parametrize(
    "call, expected",
    [
        (
            lambda c, s: c.create_service("n" * 256),
            "name too long: 256 characters, the Pushjet server stores at most 255",
        ),
        (lambda c, s: c.create_service("N", icon_url="é" * 32768), "icon_url too long: 65,536 bytes of UTF-8"),
        (lambda c, s: c.edit_service(s.secret_key, name=" " + "n" * 256), "stores at most 255"),
        (lambda c, s: c.edit_service(s.secret_key, icon_url="i" * 65536), "icon_url too long: 65,536 bytes"),
        (
            lambda c, s: c.send(s.secret_key, "m" * 65536),
            "message too long: 65,536 bytes of UTF-8, the Pushjet server stores at most 65,535",
        ),
        (lambda c, s: c.send(s.secret_key, "m", link="€" * 21846), "link too long: 65,538 bytes"),
    ],
)
def test_values_beyond_the_servers_columns_are_refused_before_sending(client, server, service, call, expected):
    before = len(server.requests)
    with pytest.raises(InvalidArgumentError) as caught:
        call(client, service)
    assert expected in str(caught.value) and len(str(caught.value)) < 200
    assert len(server.requests) == before  # nothing was sent: upstream would answer an unexplained 500


def test_values_at_the_servers_limits_are_sent(client, server, service, device):
    client.subscribe(device, service.public_key)
    assert client.create_service("n" * 255).name == "n" * 255
    client.send(service.secret_key, "é" * 32767, title="t" * 300, link="l" * 65535)  # 65,534 bytes; titles truncated
    [message] = client.fetch_messages(device)
    assert message.message == "é" * 32767 and message.title == "t" * 255 and len(message.link or "") == 65535


GOOD = {
    "message": "Door\nopened \u202e",
    "title": "",
    "level": 4,
    "timestamp": 1700000000,
    "service": {"public": "4be3-eda97a-0d7faeab05a0-89403-ad4751c49", "name": "Alerts", "created": 1},
}


@pytest.mark.parametrize(
    "change, error",
    [
        ({"level": 9}, "level: out of range [1, 5] (got 9)"),
        ({"level": "4"}, "level: expected a whole number (got '4')"),
        ({"timestamp": 1e400}, "timestamp: expected a whole, finite number (got inf)"),
        ({"timestamp": float("nan")}, "timestamp: expected a whole, finite number (got nan)"),
        ({"message": ["x"]}, "message: expected a string (got a JSON array of 1 items)"),
        ({"title": "a\ud800"}, "title: not valid Unicode (a lone surrogate at character 1)"),
        ({"link": "x" * 70_000}, "link: longer than 65,536 characters (70,000)"),
        ({"service": {**GOOD["service"], "public": "a\nb"}}, "service.public: expected a public key"),
        ({"service": {**GOOD["service"], "created": True}}, "service.created: expected a whole number (got True)"),
        ({"service": "Alerts"}, "service: expected a JSON object (got 'Alerts')"),
    ],
)
def test_message_objects_are_checked_field_by_field(change, error):
    with pytest.raises(ProtocolError) as raised:
        Message.from_json({**GOOD, **change})
    assert str(raised.value).startswith(error)


def test_a_message_keeps_its_free_text_and_never_a_secret_of_its_service():
    message = Message.from_json({**GOOD, "service": {**GOOD["service"], "secret": "0" * 32}, "extra": 1})
    assert message.message == "Door\nopened \u202e" and message.title is None and message.importance == 4
    assert message.service.secret_key is None and "0" * 32 not in repr(message.to_dict())


# -- hostile answers: every field checked, every failure one ProtocolError naming it ----------


@pytest.mark.parametrize(
    "fault, message",
    [
        (
            {"pointer": "/service/created", "json": "1e400"},
            "service.created: expected a whole, finite number (got inf)",
        ),
        ({"pointer": "/service/public", "value": "../../x"}, "service.public: expected a public key such as"),
        ({"pointer": "/service/name", "op": "remove"}, "service.name: missing"),
        ({"pointer": "/service/name", "json": '"\\ud800"'}, "service.name: not valid Unicode"),
        ({"pointer": "/service/icon", "value": {"x": 1}}, "service.icon: expected a string (got a JSON object"),
        ({"pointer": "/service", "value": ["x"]}, "service: expected a JSON object (got a JSON array of 1 items)"),
        ({"pointer": "/service", "op": "remove"}, "service: missing"),
        ({"pointer": "", "value": ["x"]}, "the answer: expected a JSON object"),
    ],
)
def test_a_service_object_is_checked_field_by_field(server, client, service, fault, message):
    server.faults.add("body", method="GET", path="/service", **fault)
    with pytest.raises(ProtocolError) as caught:
        client.get_service(public_key=service.public_key)
    assert str(caught.value).startswith(f"GET /service: {message}"), str(caught.value)


def test_a_secret_in_an_answer_is_checked_but_never_quoted(server, client):
    server.faults.add("body", method="POST", path="/service", pointer="/service/secret", value="s3cr3t\r\nforged")
    with pytest.raises(ProtocolError) as caught:
        client.create_service("Alerts")
    assert (
        str(caught.value)
        == "POST /service: service.secret: expected up to 4,096 printable ASCII characters without spaces"
    )


@pytest.mark.parametrize(
    "fault, message",
    [
        pytest.param(
            {"pointer": "/subscriptions/0/uuid", "value": "not-a-uuid"},
            "subscriptions[0].uuid: expected a device UUID",
            id="uuid",
        ),
        pytest.param(
            {"pointer": "/subscriptions/0/timestamp", "json": "NaN"},
            "subscriptions[0].timestamp: expected a whole, finite",
            id="timestamp",
        ),
        pytest.param(
            {"pointer": "/subscriptions/0/service/created", "value": True},
            "subscriptions[0].service.created: expected a",
            id="service.created",
        ),
        pytest.param(
            {"pointer": "/subscriptions", "value": "x"}, "subscriptions: expected a JSON array (got 'x')", id="list"
        ),
    ],
)
def test_a_subscription_is_checked_field_by_field(server, client, service, device, fault, message):
    client.subscribe(device, service.public_key)
    server.faults.add("body", method="GET", path="/subscription", **fault)
    with pytest.raises(ProtocolError) as caught:
        client.get_subscriptions(device)
    assert str(caught.value).startswith(f"GET /subscription: {message}"), str(caught.value)
    assert client.get_subscriptions(device)[0].service.public_key == service.public_key


@pytest.mark.parametrize("code", [["a list"], {"an": "object"}, "7" * 1000, 1e300, True, -1])
def test_an_error_id_of_any_kind_is_an_error_of_its_status(server, client, code):
    # an unhashable id was a TypeError out of the error table
    body = json_response({"error": {"id": code, "message": "Rejected"}}, 400).body.decode()
    server.faults.add("body", path="/message", raw=body, status=400)
    with pytest.raises(PushjetBadRequestError) as caught:
        client.send(UNKNOWN_SECRET, "hello")
    assert str(caught.value) == "POST /message: HTTP 400: Rejected" and caught.value.code is None


@pytest.mark.parametrize(
    "check, value",
    [
        pytest.param(check_uuid, lambda s: str(uuid.uuid4()), id="uuid"),
        pytest.param(check_public_key, lambda s: s.public_key, id="public_key"),
        pytest.param(check_secret_key, lambda s: "a" * 32, id="secret_key"),
    ],
)
def test_keys_and_uuids_with_a_trailing_line_break_are_refused(service, check, value):
    with pytest.raises(InvalidArgumentError):
        check(value(service) + "\n")  # passed: re.match with $ matches before a final line break


def test_a_public_key_with_a_trailing_line_break_in_an_answer_is_refused(server, client, service):
    server.faults.add("body", path="/service", pointer="/service/public", value=service.public_key + "\n")
    with pytest.raises(ProtocolError, match="service.public: expected a public key"):
        client.get_service(public_key=service.public_key)
