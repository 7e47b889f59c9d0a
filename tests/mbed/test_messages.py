"""Parsing what the mbed service sends (``platypush_ext.mbed.messages``): untrusted input. Every
malformed element is refused alone with a one-line reason naming its field (a ``Rejected``) while
the rest flows; a message that cannot be read is a :class:`ProtocolError`; nothing else is raised.
(The generated table of every field and mutation, through the real transports, is
``tests/test_hostile_data.py``.)"""

from __future__ import annotations

import base64

import pytest

from platypush_ext.core.errors import ProtocolError
from platypush_ext.core.journal import Rejected
from platypush_ext.core.untrusted import received
from platypush_ext.mbed.messages import (
    MAX_PAYLOAD,
    SPECIMENS,
    AsyncResponse,
    decode_payload,
    parse_element,
    parse_message,
    refused_note,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_payloads_text_binary_and_refused() -> None:
    assert decode_payload(b64(b"21.5"), "text/plain") == (b"21.5", "21.5", "text")
    assert decode_payload(b64(b"\xff\xfe"), "") == (b"\xff\xfe", b64(b"\xff\xfe"), "base64")  # not UTF-8
    assert decode_payload(b64(b"\x00\x01"), "application/octet-stream")[2] == "base64"
    assert decode_payload(None, "text/plain") == decode_payload("", "") == (b"", "", "text")
    with pytest.raises(ProtocolError, match=r"^payload: expected a string \(got 5\)$"):
        decode_payload(5, "text/plain")
    with pytest.raises(ProtocolError, match="^payload: not valid base64"):
        decode_payload("é!", "text/plain")
    assert len(decode_payload("A" * 100_000, "")[0]) == 75_000  # an action's value: any size
    with pytest.raises(ProtocolError, match="^payload: longer than 87,384 characters"):
        decode_payload("A" * 100_000, "text/plain", limit=MAX_PAYLOAD)  # the channel's: at most 64 KiB


def test_malformed_elements_are_refused_alone_and_the_rest_flows() -> None:
    good = {"ep": "node-1", "path": "/3/0/1", "payload": b64(b"ok"), "ct": "text/plain"}
    items, rejected = parse_message(
        {
            "notifications": [good, {"ep": "node-1"}],
            "registrations": {"ep": "node-2"},
            "reg-updates": [{"ep": "node-3", "resources": "none"}],
            "async-responses": [
                {"id": "a1"},
                {"id": "a2", "status": 200, "payload": 5},
                {"id": "a3", "status": 200, "payload": b64(b"v")},
            ],
            "colours": [],  # a kind of a later version: ignored
        }
    )
    assert [(i.kind, i.data.get("value")) for i in items] == [("notifications", "ok"), ("async-responses", "v")]
    assert [(r.element, r.reason) for r in rejected] == [
        ("notifications[1]", "path: missing"),
        ("registrations", "registrations: expected a JSON array (got a JSON object of 1 items)"),
        ("reg-updates[0]", "resources: expected a JSON array (got 'none')"),
        ("async-responses[0]", "status: missing"),
        ("async-responses[1]", "payload: expected a string (got 5)"),
    ]
    assert rejected[0].excerpt == '{"ep": "node-1"}'


@pytest.mark.parametrize(
    "element, reason",
    [
        ({"ep": "a", "path": "/1", "max-age": 1e400}, "max-age: expected a whole, finite number (got inf)"),
        ({"ep": "a", "path": "/1", "max-age": -1e400}, "max-age: expected a whole, finite number (got -inf)"),
        ({"ep": "a", "path": "/1", "max-age": float("nan")}, "max-age: expected a whole, finite number (got nan)"),
        ({"ep": "a", "path": "/1", "max-age": -5}, "max-age: out of range"),
        ({"ep": "a", "path": "/1", "timestamp": [1]}, "timestamp: expected a number (got a JSON array of 1 items)"),
        ({"ep": "a\nb", "path": "/1"}, "ep: a control or format character (U+000A)"),
        ({"ep": "a\u202eb", "path": "/1"}, "ep: a control or format character (U+202E)"),
        ({"ep": "  ", "path": "/1"}, "ep: endpoint must be a non-empty endpoint name"),
        ({"ep": "a\ud800", "path": "/1"}, "ep: not valid Unicode (a lone surrogate at character 1)"),
        ({"ep": "a", "path": "/1?pmax=5"}, "path: path must not contain '?' or '#'"),
        ({"ep": "a", "path": "/1", "ct": "text/plain\x00"}, "ct: a control or format character (U+0000)"),
        ({"ep": "a", "path": "/1", "payload": "@@"}, "payload: not valid base64"),
        ({"ep": "a" * 70_000, "path": "/1"}, "ep: longer than 65,536 characters (70,000)"),
    ],
)
def test_each_bad_field_is_named_in_one_line(element: dict, reason: str) -> None:
    items, rejected = parse_message({"notifications": [element, {"ep": "ok", "path": "/2"}]})
    assert [i.data["endpoint"] for i in items] == ["ok"]
    assert len(rejected) == 1 and rejected[0].element == "notifications[0]"
    assert rejected[0].reason.startswith(reason) and "\n" not in rejected[0].reason


def test_free_texts_keep_any_character_and_identifiers_are_the_actions_ones() -> None:
    text = "line 1\nline 2\x00 \u202eevil"
    items, rejected = parse_message(
        {
            "notifications": [{"ep": "n", "path": "3/0/1", "payload": b64(text.encode()), "ct": "text/plain"}],
            "async-responses": [{"id": "x", "status": "404", "error": text, "max-age": "60"}],
        }
    )
    assert rejected == []
    note, answer = items
    assert note.data["value"] == text and note.data["path"] == "/3/0/1"  # as check_path normalises an argument
    assert answer.data["error"] == text and answer.data["status"] == 404 and answer.data["max_age"] == 60
    assert answer.response == AsyncResponse("x", 404, None, "", 60, text)


def test_every_specimen_parses() -> None:
    for kind, specimen in SPECIMENS.items():
        parse_element(kind, specimen["element"])


def test_registration_fields_are_checked_to_their_resources() -> None:
    element = {
        "ep": "n",
        "ept": "Light",
        "q": "true",
        "original-ep": "",
        "resources": [{"path": "/3/0/1", "obs": "false", "rf": "5850"}],
    }
    item = parse_element("registrations", element)
    assert item.data == {
        "endpoint": "n",
        "endpoint_type": "Light",
        "queue_mode": True,
        "original_endpoint": None,
        "resources": [{"path": "/3/0/1", "rt": "5850", "ct": "", "obs": False, "if": ""}],
    }
    element["resources"].append({"path": "/3/0/2", "obs": "maybe"})
    with pytest.raises(ProtocolError, match=r"^resources\[1\]\.obs: expected true or false"):
        parse_element("registrations", element)


@pytest.mark.parametrize(
    "message, error",
    [
        ("{not json", "the message is not JSON at character 1 ('{not json')"),
        (b"[1, 2]", "the message: expected a JSON object (got a JSON array of 2 items)"),
        (b'{"notifications": "\xff"}', "the message is not UTF-8 text (byte 19)"),
        (received(b'{"notifications": "\xff"}'), "the message is not UTF-8 text (byte 19)"),  # as journaled
        ("[" * 100_000 + "]" * 100_000, "the message is nested too deeply to be read (200,000 characters)"),
        (refused_note("a callback body of 9 bytes"), "a callback body of 9 bytes"),
    ],
)
def test_a_message_that_cannot_be_read_is_refused_whole(message: object, error: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_message(message)
    assert str(raised.value) == error


def test_an_empty_message_is_nothing() -> None:
    assert parse_message(b"  ") == ([], [])
    assert parse_message({}) == ([], [])


def test_a_bug_in_one_element_does_not_drop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from platypush_ext.mbed import messages

    real = messages._flag
    monkeypatch.setattr(messages, "_flag", lambda value, name: 1 / 0 if value == "boom" else real(value, name))
    items, rejected = parse_message({"registrations": [{"ep": "a", "q": "boom"}, {"ep": "b"}]})
    assert [i.data["endpoint"] for i in items] == ["b"]
    assert rejected == [Rejected("registrations[0]", "ZeroDivisionError: division by zero", '{"ep": "a", "q": "boom"}')]
