"""Parsing what the mbed service sends (NotificationMessages, async responses, payloads): every
malformed element is reported and skipped while the rest flows; a message that is not an object
is a :class:`ProtocolError`."""

from __future__ import annotations

import base64

import pytest

from platypush_ext.http import ProtocolError
from platypush_ext.mbed.client import decode_payload, parse_message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_payloads_text_binary_and_refused() -> None:
    assert decode_payload(b64(b"21.5"), "text/plain") == (b"21.5", "21.5", "text")
    assert decode_payload(b64(b"\xff\xfe"), "") == (b"\xff\xfe", b64(b"\xff\xfe"), "base64")  # not UTF-8
    assert decode_payload(b64(b"\x00\x01"), "application/octet-stream")[2] == "base64"
    with pytest.raises(ProtocolError, match="payload is not a base64 string \\(int\\)"):
        decode_payload(5, "text/plain")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="not valid base64"):
        decode_payload("é!", "text/plain")


def test_malformed_elements_are_reported_and_the_rest_flows() -> None:
    good = {"ep": "node-1", "path": "/3/0/1", "payload": b64(b"ok"), "ct": "text/plain"}
    items, problems = parse_message(
        {
            "notifications": [good, {"ep": "node-1"}],
            "registrations": {"ep": "node-2"},
            "reg-updates": [{"ep": "node-3", "resources": "none"}],
            "async-responses": [
                {"id": "a1"},
                {"id": "a2", "status": 200, "payload": 5},
                {"id": "a3", "status": 200, "payload": b64(b"v")},
            ],
            "colours": [],
        }
    )
    assert [(i.kind, i.data.get("value")) for i in items] == [("notifications", "ok"), ("async-responses", "v")]
    assert problems == [
        "notifications[1]: notification of 'node-1' without a path",
        "registrations: not an array",
        "reg-updates[0]: registration of 'node-3': resources is not an array",
        "async-responses[0]: async response 'a1' without a valid status",
        "async-responses[1]: async response 'a2': payload is not a string",
        "unknown notification kind 'colours'",
    ]


@pytest.mark.parametrize(
    "message, error",
    [
        ("{not json", "notification message is not JSON: '{not json'"),
        (b"[1, 2]", "notification message is not a JSON object"),
    ],
)
def test_a_message_that_is_not_an_object_is_refused(message: object, error: str) -> None:
    with pytest.raises(ProtocolError, match=error.replace("[", "\\[").replace("(", "\\(")):
        parse_message(message)


def test_an_empty_message_is_nothing() -> None:
    assert parse_message(b"  ") == ([], [])
