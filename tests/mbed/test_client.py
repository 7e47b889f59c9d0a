"""The mbed client against the sandbox over real HTTP: every endpoint, documented errors, faults."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from platypush_ext.core.errors import (
    AuthError,
    BadRequestError,
    InvalidArgumentError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    ServiceConnectionError,
    ServiceTimeoutError,
)
from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.mbed.checks import check_pre_subscriptions
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.errors import (
    DeviceError,
    DeviceTimeoutError,
    EndpointGoneError,
    NoCacheError,
    NoChannelError,
    QueueModeError,
)
from platypush_ext.mbed.messages import AsyncResponse, decode_payload, parse_message
from platypush_ext.mbed.registry import AsyncRegistry
from platypush_ext.sandbox.mbed import MbedServer
from tests.support import wait_until

KEY = "client-test-key-5678"

pytestmark = pytest.mark.sandbox(cls=MbedServer, api_key=KEY, pull_timeout=0.5, demo_devices=True)


def make_client(server: MbedServer, **kwargs: Any) -> MbedClient:
    kwargs.setdefault("timeouts", Timeouts(2, 3))
    kwargs.setdefault("retry", RetryPolicy(attempts=3, backoff=0.05, backoff_max=0.2))
    kwargs.setdefault("pull_timeout", 3)
    kwargs.setdefault("async_timeout", 5)
    return MbedClient(server.base_url, KEY, **kwargs)


@pytest.fixture
def client(server: MbedServer) -> Iterator[MbedClient]:
    mbed = make_client(server)
    yield mbed
    mbed.close()


@pytest.fixture
def polling(client: MbedClient, server: MbedServer) -> MbedClient:
    client.start_long_polling(no_wait=True)
    wait_until(lambda: server.channel == "long_poll")
    return client


def test_versions_limits_endpoints(client: MbedClient) -> None:
    assert client.get_connector_version() == "DeviceServer v3.0.0-520\nREST version = v2"
    assert client.get_api_versions() == ["v1", "v2"]
    assert client.get_limits()["endpoint-quota"] == 100
    names = [e["name"] for e in client.get_endpoints()]
    assert names == ["node-001", "temp-sensor-01", "queue-node-01"]
    assert client.get_endpoints(type="QueueModeNode") == [
        {
            "name": "queue-node-01",
            "type": "QueueModeNode",
            "status": "ACTIVE",
            "q": True,
            "label": "queue-node-01",
            "suspended": False,
        }
    ]
    resources = client.get_resources("temp-sensor-01")
    assert resources[0] == {"uri": "/3303/0/5700", "rt": "5700", "obs": True, "type": "text/plain"}
    with pytest.raises(EndpointGoneError, match="404"):
        client.get_resources("ghost")


def test_wrong_key_is_an_auth_error_without_the_key(server: MbedServer) -> None:
    wrong = MbedClient(server.base_url, "wrong-key-9999", retry=RetryPolicy(attempts=1))
    with pytest.raises(AuthError) as info:
        wrong.get_endpoints()
    assert "401" in str(info.value) and "wrong-key-9999" not in str(info.value)
    assert "wrong-key-9999" not in repr(wrong)


def test_resource_value_from_device_then_cache(polling: MbedClient, server: MbedServer) -> None:
    value = polling.get_resource_value("node-001", "/3/0/1")
    assert (value.value, value.content_type, value.from_cache, value.encoding) == ("Mbed", "text/plain", False, "text")
    cached = polling.get_resource_value("node-001", "3/0/1")
    assert cached.value == "Mbed" and cached.from_cache


def test_cache_only_without_cache_and_no_resp(polling: MbedClient, server: MbedServer) -> None:
    with pytest.raises(NoCacheError, match="205"):
        polling.get_resource_value("node-001", "/3/0/0", cache_only=True)
    assert polling.get_resource_value("node-001", "/3/0/0", no_resp=True) is None
    with pytest.raises(QueueModeError, match="409.*queue mode"):
        polling.get_resource_value("queue-node-01", "/3/0/1", no_resp=True)


def test_binary_values_come_back_as_base64(polling: MbedClient, server: MbedServer) -> None:
    server.add_device(
        "bin-01",
        resources=[{"path": "/5/0/0", "value": b"\xff\x00\x01", "ct": "application/octet-stream", "obs": False}],
    )
    value = polling.get_resource_value("bin-01", "/5/0/0")
    assert value.encoding == "base64" and value.value == "/wAB" and value.raw == b"\xff\x00\x01"


def test_writes_are_raw_text_not_json(polling: MbedClient, server: MbedServer) -> None:
    answer = polling.put_resource_value("node-001", "/3311/0/5851", "x")
    assert answer.status == 200
    assert server.devices["node-001"].resources["/3311/0/5851"].value == b"x"  # no JSON quotes
    polling.put_resource_value("node-001", "/3311/0/5851", 42)
    assert server.devices["node-001"].resources["/3311/0/5851"].value == b"42"
    assert polling.put_resource_value("node-001", "/3311/0/5851", 7, no_resp=True) is None
    assert server.devices["node-001"].resources["/3311/0/5851"].value == b"7"
    async_id = polling.put_resource_value("node-001", "/3311/0/5851", "9", wait=False)
    assert isinstance(async_id, str) and "#" in async_id
    wait_until(lambda: server.devices["node-001"].resources["/3311/0/5851"].value == b"9")


def test_execute_delete_and_delete_endpoint(polling: MbedClient, server: MbedServer) -> None:
    assert polling.post_resource("node-001", "/3311/0/5800", "blink").ok
    assert polling.delete_resource("node-001", "/3311/0/5800").ok
    assert "/3311/0/5800" not in server.devices["node-001"].resources
    with pytest.raises(EndpointGoneError, match="404"):
        polling.post_resource("node-001", "/3311/0/5800")
    assert polling.delete_endpoint("queue-node-01").ok
    wait_until(lambda: not server.devices["queue-node-01"].registered)
    with pytest.raises(EndpointGoneError, match="410"):
        polling.get_resource_value("queue-node-01", "/3/0/1")


def test_endpoint_names_and_paths_are_url_encoded(polling: MbedClient, server: MbedServer) -> None:
    server.add_device("odd #1?x y", resources=[{"path": "/3/0/1", "value": "odd", "obs": True}])
    assert polling.get_resource_value("odd #1?x y", "/3/0/1").value == "odd"
    assert polling.subscribe("odd #1?x y", "/3/0/1")
    assert polling.get_endpoint_subscriptions("odd #1?x y") == ["/3/0/1"]


def test_device_errors_and_timeouts(polling: MbedClient, server: MbedServer) -> None:
    server.set_behaviour("node-001", fail_status=404, fail_error="NOT_FOUND")
    with pytest.raises(DeviceError, match="404 NOT_FOUND") as info:
        polling.get_resource_value("node-001", "/3/0/1")
    assert info.value.status == 404
    server.set_behaviour("node-001", fail_status=None, silent=True, timeout_after=0.1)
    with pytest.raises(DeviceError, match="504 TIMEOUT"):
        polling.put_resource_value("node-001", "/3311/0/5850", "1")
    server.set_behaviour("node-001", silent=True, timeout_after=None)
    started = time.monotonic()
    with pytest.raises(DeviceTimeoutError, match="no answer from the device within 0.5 s"):
        polling.get_resource_value("node-001", "/3311/0/5851", timeout=0.5)
    assert time.monotonic() - started < 3
    server.set_behaviour("node-001", silent=False, delay=0.3)
    assert polling.get_resource_value("node-001", "/3311/0/5851", timeout=3).value == "50"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.get_resource_value("node-001", "/3311/0/5851", timeout=2.5), id="get"),
        pytest.param(lambda c: c.put_resource_value("node-001", "/3311/0/5850", "1", timeout=2.5), id="put"),
    ],
)
def test_timeout_bounds_the_whole_call_including_a_slow_request(
    polling: MbedClient, server: MbedServer, call: Callable[[MbedClient], Any]
) -> None:
    # The wait for the device used to start only after the (possibly retried) request, so
    # timeout=55 could keep an action busy well past Platypush's 60 s /execute limit.
    server.set_behaviour("node-001", silent=True, timeout_after=None)
    real_request = polling.http.request

    def slow_request(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2.0)  # a slow or retried request
        return real_request(*args, **kwargs)

    polling.http.request = slow_request  # type: ignore[method-assign]
    started = time.monotonic()
    with pytest.raises(DeviceTimeoutError, match="within 2.5 s"):
        call(polling)
    assert time.monotonic() - started < 3.9  # 2.5 s in all, not 2 s + 2.5 s


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.subscribe("node-001", "/3303/0/5700", timeout=100), id="subscribe-timeout-100"),
        pytest.param(lambda c: c.delete_endpoint("node-001", timeout=0), id="delete_endpoint-timeout-0"),
    ],
)
def test_subscribe_and_delete_endpoint_check_the_timeout_before_any_request(
    client: MbedClient, server: MbedServer, call: Callable[[MbedClient], Any]
) -> None:
    before = len(server.requests)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        call(client)
    assert len(server.requests) == before


def test_no_channel_and_timeout_hint(client: MbedClient) -> None:
    with pytest.raises(NoChannelError, match="412.*No notification channel"):
        client.get_resource_value("node-001", "/3/0/1")
    client.pull(no_wait=True)  # the channel exists now, but nobody consumes it
    with pytest.raises(DeviceTimeoutError, match="being consumed"):
        client.get_resource_value("node-001", "/3/0/1", timeout=0.3)


def test_async_response_before_the_202(polling: MbedClient, server: MbedServer) -> None:
    server.race = True
    assert polling.get_resource_value("node-001", "/3/0/0").value == "ARM"
    assert polling.post_resource("node-001", "/3311/0/5800").ok
    assert polling.registry.unmatched() == 0


def test_busy_endpoint(polling: MbedClient, server: MbedServer) -> None:
    server.set_behaviour("node-001", silent=True)
    for _ in range(20):
        polling.put_resource_value("node-001", "/3311/0/5850", "1", wait=False)
    with pytest.raises(RateLimitedError, match="429.*busy"):
        polling.put_resource_value("node-001", "/3311/0/5850", "1", wait=False)


def test_subscriptions(polling: MbedClient, server: MbedServer) -> None:
    got: list[dict[str, Any]] = []
    polling.set_handler("notifications", got.append)
    assert polling.get_endpoint_subscriptions("temp-sensor-01") == []
    assert not polling.get_resource_subscription("temp-sensor-01", "/3303/0/5700")
    assert polling.subscribe("temp-sensor-01", "/3303/0/5700")
    assert polling.get_resource_subscription("temp-sensor-01", "/3303/0/5700")
    server.set_value("temp-sensor-01", "/3303/0/5700", "23.5")
    wait_until(lambda: got)
    assert got[0] == {
        "endpoint": "temp-sensor-01",
        "path": "/3303/0/5700",
        "value": "23.5",
        "encoding": "text",
        "content_type": "text/plain",
        "max_age": 60,
    }
    with pytest.raises(BadRequestError, match="412.*not observable"):
        polling.subscribe("temp-sensor-01", "/3303/0/5701")  # not observable
    polling.subscribe("node-001", "/3311/0/5850")
    polling.unsubscribe("temp-sensor-01", "/3303/0/5700")
    assert polling.get_endpoint_subscriptions("temp-sensor-01") == []
    polling.delete_endpoint_subscriptions("node-001")
    assert polling.get_endpoint_subscriptions("node-001") == []
    polling.subscribe("node-001", "/3311/0/5850")
    polling.delete_all_subscriptions()
    assert server.subscriptions == set()


def test_pre_subscriptions(client: MbedClient, server: MbedServer) -> None:
    rules = [{"endpoint-name": "node*", "resource-path": ["/3311/*"]}, {"endpoint-type": "Sensor"}]
    client.put_pre_subscriptions(rules)
    assert client.get_pre_subscriptions() == rules
    server.register("node-001")
    assert ("node-001", "/3311/0/5850") in server.subscriptions
    client.put_pre_subscriptions([])
    assert client.get_pre_subscriptions() == [] and server.subscriptions == set()


@pytest.mark.parametrize(
    "rules",
    [
        {"endpoint-name": "x"},
        ["x"],
        [{"endpoint": "x"}],
        [{"endpoint-name": "a*b"}],
        [{"resource-path": ["no-slash"]}],
        [{"endpoint-name": ""}],
        [{"resource-path": [1]}],
    ],
)
def test_pre_subscriptions_validated_before_sending(client: MbedClient, server: MbedServer, rules: Any) -> None:
    before = len(server.requests)
    with pytest.raises(InvalidArgumentError):
        client.put_pre_subscriptions(rules)
    assert len(server.requests) == before
    assert check_pre_subscriptions([{"resource-path": "/3/0/1"}]) == [{"resource-path": ["/3/0/1"]}]


def test_callback_registration(client: MbedClient, server: MbedServer) -> None:
    from platypush_ext.mbed.channels import CallbackChannel

    got: list[Any] = []
    channel = CallbackChannel(client, got.append)
    channel._start_receiver()
    try:
        assert client.get_callback() is None
        client.put_callback(channel.url, headers={"X-Platypush-Mbed-Secret": channel.secret})
        assert client.get_callback() == {"url": channel.url, "headers": {"X-Platypush-Mbed-Secret": channel.secret}}
        with pytest.raises(Exception, match="400") as info:
            client.put_callback(channel.url, headers={"X-Platypush-Mbed-Secret": "wrong-secret-value"})
        assert "wrong-secret-value" not in str(info.value)
        assert client.delete_callback() and not client.delete_callback()
    finally:
        channel.close()
    with pytest.raises(InvalidArgumentError, match="400 characters"):
        client.put_callback("http://127.0.0.1/" + "x" * 400)


@pytest.mark.parametrize("bad", ["ftp://x", "", None], ids=["ftp", "empty", "none"])
def test_callback_url_is_checked(client: MbedClient, bad: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        client.put_callback(bad)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c, s: c.get_resource_value("", "/3/0/1"), id="empty-endpoint"),
        pytest.param(lambda c, s: c.get_resource_value("node-001", ""), id="empty-path"),
        pytest.param(lambda c, s: c.get_resource_value("node-001", "/3/0/1?x"), id="query-in-path"),
        pytest.param(lambda c, s: c.get_resource_value("node-001", "/3/0/1", timeout=0), id="timeout-0"),
        pytest.param(lambda c, s: c.get_resource_value("node-001", "/3/0/1", timeout=120), id="timeout-120"),
        pytest.param(lambda c, s: c.get_resource_value("node-001", "/3/0/1", timeout="soon"), id="timeout-text"),
        pytest.param(lambda c, s: c.put_resource_value("node-001", "/3/0/1", {"a": 1}), id="put-an-object"),
        pytest.param(lambda c, s: c.set_handler("nope", print), id="unknown-handler"),
        pytest.param(lambda c, s: MbedClient(s.base_url, "", api="connector"), id="empty-key"),
        pytest.param(lambda c, s: MbedClient(s.base_url, KEY, api="other"), id="unknown-api"),
        pytest.param(lambda c, s: MbedClient("ftp://x", KEY), id="ftp-url"),
    ],
)
def test_bad_input_is_rejected_before_any_request(
    client: MbedClient, server: MbedServer, call: Callable[[MbedClient, MbedServer], Any]
) -> None:
    before = len(server.requests)
    with pytest.raises(InvalidArgumentError):
        call(client, server)
    assert len(server.requests) == before


def test_retries_on_5xx_and_gives_up(client: MbedClient, server: MbedServer) -> None:
    server.faults.add("status", count=2, status=503, retry_after=0.05, path="/v2/endpoints")
    assert len(client.get_endpoints()) == 3
    server.faults.add("status", count=5, status=502, path="/v2/limits")
    with pytest.raises(ServerError, match="502"):
        client.get_limits()


def test_reset_hang_and_malformed(server: MbedServer) -> None:
    client = make_client(server, timeouts=Timeouts(1, 0.5), retry=RetryPolicy(attempts=1))
    server.faults.add("reset", path="/v2/endpoints")
    with pytest.raises(ServiceConnectionError):
        client.get_endpoints()
    server.faults.add("hang", delay=1.5, path="/v2/limits")
    with pytest.raises(ServiceTimeoutError):
        client.get_limits()
    server.faults.add("malformed", path="/v2/endpoints")
    with pytest.raises(ProtocolError, match="not JSON"):
        client.get_endpoints()
    client.close()


def test_long_poll_survives_faults(server: MbedServer, caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(server)
    seen: list[dict[str, Any]] = []
    client.set_handler("reg-updates", seen.append)
    from platypush_ext.core.backoff import Backoff
    from platypush_ext.mbed.channels import LongPollChannel

    downs: list[str] = []
    channel = LongPollChannel(
        client, client.handle_notification, on_down=lambda e: downs.append(str(e)), backoff=Backoff(base=0.05, cap=0.2)
    )
    server.faults.add("status", count=2, status=500, path="/v2/notification/pull")
    server.faults.add("malformed", count=1, path="/v2/notification/pull")
    server.faults.add("reset", count=1, path="/v2/notification/pull")
    with caplog.at_level(logging.WARNING, logger="platypush_ext.mbed"):
        channel.start_thread()
        try:
            wait_until(lambda: len(downs) >= 3, timeout=10)  # 500, 500, reset
            assert "500" in downs[0] and "500" in downs[1] and len(downs) == 3
            # the malformed body is no failed exchange: the message is dropped, with one line
            dropped = [r.getMessage() for r in caplog.records if "dropped a notification message" in r.getMessage()]
            assert dropped == [
                "mbed long_poll: dropped a notification message: the message is not JSON at character 14 ('{\"malformed\": tru')"
            ]
            server.update_registration("node-001")
            wait_until(lambda: seen, timeout=10)
            # a malformed element does not hold up the rest of the batch
            server.enqueue("notifications", {"ep": "node-001"})  # no path
            server.enqueue("notifications", {"ep": "node-001", "path": "/x", "payload": "!!notbase64"})
            server.update_registration("temp-sensor-01")
            wait_until(lambda: len(seen) >= 2, timeout=10)
            assert seen[1]["endpoint"] == "temp-sensor-01"
            assert "notifications[0] of a notification message: path: missing" in caplog.text
            assert "notifications[1] of a notification message: payload: not valid base64" in caplog.text
        finally:
            channel.stop(timeout=5)
            client.close()
    assert channel.thread is not None and not channel.thread.is_alive()


def test_channel_survives_an_unexpected_exception(server: MbedServer, caplog: pytest.LogCaptureFixture) -> None:
    # Only ServiceError was caught: anything else ended the channel thread for good, silently.
    from platypush_ext.core.backoff import Backoff
    from platypush_ext.mbed.channels import LongPollChannel

    client = make_client(server)
    seen: list[dict[str, Any]] = []
    client.set_handler("reg-updates", seen.append)
    real_pull, failures = client.pull, [0]

    def pull(no_wait: bool = False, **kwargs: Any) -> Any:
        if failures[0] < 2:
            failures[0] += 1
            raise ValueError(f"surprise with {server.api_key}")
        return real_pull(no_wait, **kwargs)

    client.pull = pull  # type: ignore[method-assign]
    channel = LongPollChannel(client, client.handle_notification, backoff=Backoff(base=0.05, cap=0.2))
    with caplog.at_level(logging.ERROR, logger="platypush_ext.mbed"):
        channel.start_thread()
        try:
            wait_until(lambda: failures[0] >= 2, timeout=10)
            server.update_registration("node-001")
            wait_until(lambda: seen, timeout=10)
            assert channel.thread is not None and channel.thread.is_alive()
        finally:
            channel.stop(timeout=5)
            client.close()
    assert "unexpected failure (ValueError: surprise with ***)" in caplog.text
    assert server.api_key not in caplog.text


def test_long_poll_does_not_spin_on_instant_empty_answers(start_server: Any) -> None:
    # A server (or proxy) that answers 204 at once made the channel re-poll in a tight loop.
    from platypush_ext.mbed.channels import LongPollChannel

    instant = start_server(MbedServer, api_key=KEY, pull_timeout=0.0)
    client = make_client(instant)
    channel = LongPollChannel(client, client.handle_notification)
    channel.start_thread()
    try:
        time.sleep(2.0)
    finally:
        channel.stop(timeout=5)
        client.close()
    pulls = sum(1 for m, p, _ in instant.requests if (m, p) == ("GET", "/v2/notification/pull"))
    assert 2 <= pulls <= 10, pulls  # about one every MIN_EMPTY_CYCLE (0.5 s), not hundreds


def test_pelion_device_requests(server: MbedServer) -> None:
    client = make_client(server, api="pelion")
    client.start_long_polling(no_wait=True)
    wait_until(lambda: server.channel == "long_poll")
    try:
        assert client.get_resource_value("node-001", "/3/0/1").value == "Mbed"
        assert client.put_resource_value("node-001", "/3311/0/5851", "77").ok
        assert server.devices["node-001"].resources["/3311/0/5851"].value == b"77"
        assert any(p.startswith("/v2/device-requests/node-001") for _, p, _ in server.requests)
        with pytest.raises(EndpointGoneError, match="DEVICE_NOT_FOUND"):
            client.get_resource_value("ghost", "/3/0/1")
        with pytest.raises(EndpointGoneError, match="RESOURCE_NOT_FOUND"):
            client.get_resource_value("node-001", "/9/9/9")
    finally:
        client.close()
    assert MbedClient("https://api.us-east-1.mbedcloud.com", KEY).pelion
    assert not MbedClient("https://api.connector.mbed.com", KEY).pelion


def test_websocket_channel_with_reconnect(server: MbedServer) -> None:
    from platypush_ext.core.backoff import Backoff
    from platypush_ext.mbed.channels import WebSocketChannel

    client = make_client(server, api="pelion")
    ups: list[int] = []
    channel = WebSocketChannel(
        client, client.handle_notification, on_up=lambda: ups.append(1), backoff=Backoff(base=0.05, cap=0.2)
    )
    channel.start_thread()
    try:
        wait_until(lambda: ups, timeout=5)
        assert client.get_websocket() is not None and client.get_channel() == "WEB_SOCKET"
        assert client.get_resource_value("node-001", "/3/0/1").value == "Mbed"
        client.delete_websocket()  # the server closes the socket with 1001; the channel re-registers
        wait_until(lambda: len(ups) >= 2, timeout=10)
        assert client.put_resource_value("node-001", "/3311/0/5850", "1").ok
    finally:
        channel.stop(timeout=5)
        client.close()


def test_registry_buffer_is_bounded() -> None:
    registry = AsyncRegistry(buffer_size=3, buffer_age=60)
    for i in range(5):
        registry.deliver(AsyncResponse(async_id=str(i), status=200))
    assert registry.unmatched() == 3
    registry.expect("4")
    assert registry.wait("4", 0.1).async_id == "4"
    registry.expect("0")  # dropped: too old in the buffer
    assert registry.wait("0", 0.05) is None
    waiter = threading.Thread(target=lambda: registry.deliver(AsyncResponse(async_id="late", status=200)))
    registry.expect("late")
    waiter.start()
    assert registry.wait("late", 2).status == 200


def test_parse_message_shapes() -> None:
    items, problems = parse_message(
        {
            "registrations": [
                {"ep": "a", "ept": "T", "q": "true", "resources": [{"path": "/1", "obs": "false", "rf": "x"}]}
            ],
            "de-registrations": ["a", {"ep": "b"}, 3],
            "registrations-expired": ["c"],
            "async-responses": [
                {"id": "1#a@d/1", "status": 200, "payload": "MTI=", "ct": "text/plain", "max-age": "0"}
            ],
            "notifications": [{"ep": "a", "path": "/1", "payload": "MjMuNQ==", "max-age": "60", "timestamp": 5}],
            "bogus": [],
        }
    )
    kinds = [i.kind for i in items]
    assert kinds == [
        "registrations",
        "de-registrations",
        "de-registrations",
        "registrations-expired",
        "async-responses",
        "notifications",
    ]
    assert items[0].data["queue_mode"] is True and items[0].data["resources"][0] == {
        "path": "/1",
        "rt": "x",
        "ct": "",
        "obs": False,
        "if": "",
    }
    assert items[4].data["value"] == "12" and items[4].data["max_age"] == 0
    assert items[5].data["value"] == "23.5" and items[5].data["value_timestamp"] == 5
    assert [r.element for r in problems] == ["de-registrations[2]"]  # the number (the unknown kind is ignored)
    with pytest.raises(ProtocolError):
        parse_message(b"[1, 2]")
    assert decode_payload("", "text/plain") == (b"", "", "text")


@pytest.mark.parametrize("api", ["connector", "pelion"])
def test_requests_without_waiting_leave_nothing_in_the_async_registry(server: MbedServer, api: str) -> None:
    client = make_client(server, api=api)
    answers: list[Any] = []
    client.set_handler("async-responses", answers.append)
    client.start_long_polling(no_wait=True)
    wait_until(lambda: server.channel == "long_poll")
    try:
        ids = [client.put_resource_value("node-001", "/3311/0/5851", str(i), wait=False) for i in range(5)]
        assert all(isinstance(i, str) and i for i in ids)
        wait_until(lambda: {a["async_id"] for a in answers} >= set(ids), timeout=10)  # the answers came as events
        assert client.registry.waiting() == 0  # Pelion mode kept 5 of 5 ids for good
        assert client.get_resource_value("node-001", "/3/0/1").value == "Mbed"  # waiting calls still correlate
        assert client.registry.waiting() == 0
    finally:
        client.close()


# -- hostile answers: every field checked, every failure one ProtocolError naming it ----------


@pytest.mark.parametrize(
    "path, fault, call, message",
    [
        (
            "/v2/limits",
            {"pointer": "/endpoint-count", "json": "1e400"},
            "get_limits",
            "endpoint-count: expected a whole",
        ),
        ("/rest-versions", {"pointer": "/0", "value": {"v": 1}}, "get_api_versions", "[0]: expected a string"),
        ("/v2/endpoints", {"pointer": "/0/name", "value": ""}, "get_endpoints", "[0].name: empty"),
        (
            "/v2/endpoints",
            {"pointer": "/0/q", "op": "add", "value": "maybe"},
            "get_endpoints",
            "[0].q: expected true or false",
        ),
        ("/v2/endpoints", {"pointer": "/0/type", "json": '"\\udfff"'}, "get_endpoints", "[0].type: not valid Unicode"),
        ("/v2/endpoints", {"pointer": "", "value": {"a": 1}}, "get_endpoints", "the answer: expected a JSON array"),
        (
            "/v2/subscriptions",
            {"pointer": "", "value": [{"x": "y"}]},
            "get_pre_subscriptions",
            "the answer: not pre-sub",
        ),
        (
            "/v2/subscriptions",
            {"pointer": "", "value": 5},
            "get_pre_subscriptions",
            "the answer: expected a JSON array",
        ),
        ("/", {"raw_base64": "/w=="}, "get_connector_version", "the answer: not UTF-8 text (byte 0)"),
    ],
)
def test_answers_are_checked_field_by_field(
    client: MbedClient, server: MbedServer, path: str, fault: dict[str, Any], call: str, message: str
) -> None:
    if call == "get_pre_subscriptions":
        client.put_pre_subscriptions([{"endpoint-name": "node*"}])
    server.faults.add("body", method="GET", path=path, **fault)
    with pytest.raises(ProtocolError) as caught:
        getattr(client, call)()
    assert f": {message}" in str(caught.value) and len(str(caught.value)) <= 500, str(caught.value)
    getattr(client, call)()  # the next one works


def test_the_answer_to_a_listing_holds_only_its_checked_fields(client: MbedClient, server: MbedServer) -> None:
    server.faults.add("body", path="/v2/endpoints/node-001", pointer="/0/script", op="add", value="<b>x</b>")
    server.faults.add("body", path="/v2/endpoints", pointer="/0/extra", op="add", value={"deep": [1]})
    assert set(client.get_endpoints()[0]) == {
        "name",
        "type",
        "status",
        "q",
        "label",
        "suspended",
    }  # was passed on as it came
    assert {"uri", "rt", "obs", "type"} == set(client.get_resources("node-001")[0])


def test_a_resource_read_from_the_cache_is_bounded_and_typed(polling: MbedClient, server: MbedServer) -> None:
    assert polling.get_resource_value("node-001", "/3/0/1").value == "Mbed"  # cached from now on
    server.faults.add("body", path="/v2/endpoints/node-001/3/0/1", raw="x" * (10 << 20))
    with pytest.raises(ProtocolError, match=r"/3/0/1: the value: more than 65,536 bytes \(10,485,760\)$"):
        polling.get_resource_value("node-001", "/3/0/1")
    server.faults.add("body", path="/v2/endpoints/node-001/3/0/1", raw="x", headers={"Content-Type": "a\x7fb"})
    with pytest.raises(ProtocolError, match="Content-Type: expected a MIME type"):
        polling.get_resource_value("node-001", "/3/0/1")
    server.faults.add("body", path="/v2/endpoints/node-001/3/0/1", raw_base64="/w==")
    value = polling.get_resource_value("node-001", "/3/0/1")
    assert value is not None and (value.value, value.encoding) == ("/w==", "base64")  # bytes that are not text


@pytest.mark.parametrize("fault", [{"json": "1e400"}, {"value": ""}, {"value": "x" * 2000}, {"op": "remove"}])
def test_an_async_id_is_checked(polling: MbedClient, server: MbedServer, fault: dict[str, Any]) -> None:
    server.faults.add("body", path="/v2/endpoints/node-001", pointer="/async-response-id", **fault)
    with pytest.raises(ProtocolError, match="^PUT /v2/endpoints/node-001/3311/0/5850: async-response-id: "):
        polling.put_resource_value("node-001", "/3311/0/5850", "1")
