"""The NikDev client against the sandbox over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from platypush_ext.core.errors import (
    InvalidArgumentError,
    ProtocolError,
    ServerError,
    ServiceConnectionError,
    ServiceTimeoutError,
)
from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.nikdev.client import (
    Entry,
    NikdevAuthError,
    NikdevClient,
    NikdevNotFoundError,
    NikdevRejectedError,
    check_field,
)
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, DEFAULT_READ_ONLY_KEY, NikdevServer
from platypush_ext.sandbox.ports import free_port

pytestmark = pytest.mark.sandbox(cls=NikdevServer)

FAST = RetryPolicy(attempts=3, backoff=0.05, backoff_max=0.2, budget=5)


def make(server: NikdevServer, key: str = DEFAULT_API_KEY, **kwargs: Any) -> NikdevClient:
    kwargs.setdefault("retry", FAST)
    return NikdevClient(server.base_url, DEFAULT_DEVICE_ID, key, **kwargs)


def test_push_and_get_values(server: NikdevServer) -> None:
    client = make(server)
    now = int(time.time())
    client.push(
        [
            Entry.build({"temp": 21.5, "hum": 40, "ok": True, "note": "hé"}, timestamp=now - 60),
            Entry.build([("temp", 22.0)], timestamp=now - 30),
        ]
    )
    entries = server.entries()
    assert [e["values"] for e in entries] == [
        [{"temp": 21.5}, {"hum": 40}, {"ok": True}, {"note": "hé"}],
        [{"temp": 22.0}],
    ]
    assert abs(entries[0]["client_timestamp"] - now) <= 2
    values = client.get_values(["temp", "hum"])
    assert [(v.field, v.value) for v in values] == [("temp", 22.0), ("hum", 40)]
    assert abs(values[0].timestamp - (now - 30)) <= 2  # converted back to the local clock
    assert values[0].to_dict()["field"] == "temp"
    assert [v.field for v in client.get_values("temp,hum")] == ["temp", "hum"]


def test_base_url_without_trailing_slash(server: NikdevServer) -> None:
    client = NikdevClient(server.base_url.rstrip("/"), DEFAULT_DEVICE_ID, DEFAULT_API_KEY)
    client.push([Entry.build({"a": 1})])
    assert server.state()["entries"] == 1


def test_odd_field_ids_are_percent_encoded(server: NikdevServer) -> None:
    client = make(server)
    client.push([Entry.build({"room 1/temp?": 19, "ü": "x"})])
    assert [(v.field, v.value) for v in client.get_values(["room 1/temp?", "ü"])] == [("room 1/temp?", 19), ("ü", "x")]


@pytest.mark.parametrize(
    "key, status, text",
    [("wrong-key", 401, "Invalid API key"), (DEFAULT_READ_ONLY_KEY, 403, "write access")],
)
def test_push_auth_errors(server: NikdevServer, key: str, status: int, text: str) -> None:
    with pytest.raises(NikdevAuthError) as caught:
        make(server, key).push([Entry.build({"a": 1})])
    assert caught.value.status == status and text in caught.value.server_message
    assert "nikdev.api_key" in str(caught.value) and not caught.value.transient
    assert key not in str(caught.value)


def test_rejected_data(server: NikdevServer) -> None:
    bad = Entry(timestamp=1, values=(("a", [1]),))  # type: ignore[arg-type]  # bypasses validation
    with pytest.raises(NikdevRejectedError) as caught:
        make(server).push([bad])
    assert caught.value.status == 400 and caught.value.server_message.startswith("Malformed data")


def test_non_json_4xx_body_falls_back_to_status_text(server: NikdevServer) -> None:
    server.faults.add("status", status=400)
    with pytest.raises(NikdevRejectedError) as caught:
        make(server).push([Entry.build({"a": 1})])
    assert caught.value.server_message == "400 Bad Request"


def test_unknown_field(server: NikdevServer) -> None:
    with pytest.raises(NikdevNotFoundError) as caught:
        make(server).get_values(["nope"])
    assert "nope" in caught.value.server_message


def test_5xx_is_retried_then_succeeds(server: NikdevServer) -> None:
    server.faults.add("status", count=2, status=503, retry_after=0.05)
    make(server).push([Entry.build({"a": 1})])
    assert [r[2] for r in server.requests if r[1] == "/api/v1/entries/"] == [503, 503, 200]
    assert server.state()["entries"] == 1


def test_persistent_5xx_raises_a_transient_error(server: NikdevServer) -> None:
    server.faults.add("status", count=5, status=500)
    with pytest.raises(ServerError) as caught:
        make(server).push([Entry.build({"a": 1})])
    assert caught.value.transient and server.state()["entries"] == 0


def test_hang_times_out(server: NikdevServer) -> None:
    server.faults.add("hang", count=3, delay=2)
    started = time.monotonic()
    with pytest.raises(ServiceTimeoutError):
        make(server, timeouts=Timeouts(1, 0.3), retry=RetryPolicy(attempts=2, backoff=0.05, budget=5)).push(
            [Entry.build({"a": 1})]
        )
    assert time.monotonic() - started < 5


def test_reset_connection(server: NikdevServer) -> None:
    server.faults.add("reset", count=3)
    with pytest.raises(ServiceConnectionError):
        make(server).push([Entry.build({"a": 1})])


def test_refused_connection() -> None:
    client = NikdevClient(f"http://127.0.0.1:{free_port()}/api/v1/", DEFAULT_DEVICE_ID, DEFAULT_API_KEY, retry=FAST)
    with pytest.raises(ServiceConnectionError) as caught:
        client.get_values(["a"])
    assert "connection refused" in str(caught.value)


def test_malformed_answer_to_get(server: NikdevServer) -> None:
    make(server).push([Entry.build({"a": 1})])
    server.faults.add("malformed", count=3, path="/api/v1/values/")
    with pytest.raises(ProtocolError):
        make(server).get_values(["a"])


@pytest.mark.parametrize(
    "args, message",
    [
        ((None, DEFAULT_API_KEY), "device_id is required"),
        ((DEFAULT_DEVICE_ID, ""), "api_key is required"),
        ((DEFAULT_DEVICE_ID, "with space"), "without spaces"),
        ((DEFAULT_DEVICE_ID, 123), "must be a string"),
    ],
)
def test_credentials_are_checked_locally(server: NikdevServer, args: tuple, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as caught:
        NikdevClient(server.base_url, *args)
    assert "with space" not in str(caught.value)
    assert server.requests == []


def test_bad_base_url() -> None:
    with pytest.raises(InvalidArgumentError, match="base_url"):
        NikdevClient("iot.nik-dev.se", DEFAULT_DEVICE_ID, DEFAULT_API_KEY)


@pytest.mark.parametrize(
    "values, message",
    [
        ({}, "at least one value"),
        ({"": 1}, "non-empty string"),
        ({"a,b": 1}, "commas"),
        ({"a\nb": 1}, "control characters"),
        ({"x" * 256: 1}, "too long"),
        ({"a": None}, "must be a string, an integer"),
        ({"a": [1]}, "must be a string, an integer"),
        ({"a": float("nan")}, "finite"),
        ({"a": "x" * 10_001}, "too long"),
    ],
)
def test_values_are_checked_locally(values: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Entry.build(values)


@pytest.mark.parametrize("fields", [[], None, [""], ["a", 3]], ids=["no-field", "none", "empty-name", "number"])
def test_fields_are_checked_locally(server: NikdevServer, fields: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        make(server).get_values(fields)
    assert server.requests == []


def test_a_field_name_passes_the_check() -> None:
    assert check_field("temp") == "temp"


def test_later_value_of_a_field_replaces_earlier_one() -> None:
    assert Entry.build([("temp", 21.5), ("hum", 40), ("temp", 22.0)]).values == (("temp", 22.0), ("hum", 40))


def test_api_key_never_appears(server: NikdevServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-key-0000"
    server.add_key(secret)
    client = make(server, secret)
    caplog.set_level("DEBUG")
    server.faults.add("status", count=1, status=503, retry_after=0.01)
    client.push([Entry.build({"a": 1})])
    server.revoke_key(secret)
    with pytest.raises(NikdevAuthError) as caught:
        client.push([Entry.build({"a": 1})])
    assert secret not in str(caught.value) and secret not in repr(caught.value.args)
    assert secret not in repr(client) and secret not in repr(client.http)
    assert secret not in caplog.text


@pytest.mark.parametrize(
    "fault, message",
    [
        (
            {"pointer": "/data/servertime", "json": "1e400"},
            "data.servertime: expected a whole, finite number (got inf)",
        ),
        ({"pointer": "/data/values/0/temp/timestamp", "json": "-1e400"}, "data.values[0].temp.timestamp: expected a"),
        ({"pointer": "/data/values/0/temp/value", "value": {"x": 1}}, "data.values[0].temp.value: expected a string"),
        (
            {"pointer": "/data/values/0/temp/value", "json": "NaN"},
            "data.values[0].temp.value: expected a finite number",
        ),
        ({"pointer": "/data/values/0/temp/value", "op": "remove"}, "data.values[0].temp.value: missing"),
        ({"pointer": "/data/values/0/hostile", "op": "add", "value": {}}, "data.values[0]: expected an object of one"),
        ({"pointer": "/data/values/0", "value": {"a,b": {"value": 1}}}, "data.values[0] key: expected a field id"),
        ({"pointer": "/data/values", "value": "x"}, "data.values: expected a JSON array (got 'x')"),
        ({"pointer": "/data", "op": "remove"}, "data: missing"),
    ],
)
def test_values_from_the_server_are_checked_field_by_field(server: NikdevServer, fault: Any, message: str) -> None:
    client = make(server)
    client.push([Entry.build({"temp": 21.5})])
    server.faults.add("body", path="/api/v1/values/", **fault)
    with pytest.raises(ProtocolError) as caught:
        client.get_values(["temp"])  # OverflowError, AttributeError, a dict value passed on, before
    assert str(caught.value).startswith(f"GET /api/v1/values/temp: {message}"), str(caught.value)
    assert [v.value for v in client.get_values(["temp"])] == [21.5]
