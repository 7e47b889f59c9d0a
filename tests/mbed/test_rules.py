"""Notification rules keep their precision on the wire (issue 18, item 8): each value is the shortest
decimal that reads back as the same number, without an exponent; whole numbers as the API's examples
write them (``/5/0/1?lt=10&gt=60&pmax=120``)."""

from __future__ import annotations

import json
import random
import sys

import pytest

from platypush_ext.mbed.checks import check_rules, rules_query
from platypush_ext.sandbox.mbed import MbedServer
from tests.mbed.pelion import SENSOR, TEMP, Inbox, make_client
from tests.support import wait_until


@pytest.mark.parametrize(
    "value, text",
    [
        (101325.5, "101325.5"),
        (1234567.5, "1234567.5"),
        (0.1, "0.1"),
        (0.3, "0.3"),
        (1e-05, "0.00001"),
        (1.5e-07, "0.00000015"),
        (-0.5, "-0.5"),
        (21.123456789, "21.123456789"),
        (999999999999999.9, "999999999999999.9"),
        (1e15, "1000000000000000"),
        (120, "120"),
        (120.0, "120"),
        (0, "0"),
        (-0.0, "0"),
        (-40, "-40"),
    ],
)
def test_a_rule_value_is_written_exactly(value: float, text: str) -> None:
    assert rules_query({"gt": value}) == f"gt={text}"


def test_every_rule_value_reads_back_as_itself() -> None:
    rng = random.Random(18)
    values = [rng.uniform(-1e15, 1e15) for _ in range(3000)]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 15) for _ in range(3000)]
    values += [sys.float_info.min, 5e-324, 0.1 + 0.2]
    for value in values:
        text = rules_query({"lt": value}).removeprefix("lt=")
        assert float(text) == value and "e" not in text.lower(), (value, text)


def test_the_query_of_checked_rules() -> None:
    rules = check_rules({"pmin": 10, "pmax": 120.0, "gt": 101325.5, "lt": 1234567.5 - 2e6, "st": 0.25})
    assert rules_query(rules) == "pmin=10&pmax=120&gt=101325.5&lt=-765432.5&st=0.25"


def test_the_device_receives_the_rules_it_was_given(pelion: MbedServer) -> None:
    client = make_client(pelion)
    try:
        with Inbox(client):
            wait_until(lambda: pelion._ws_connected, timeout=5)
            client.set_notification_rules(SENSOR, TEMP, gt=101325.5, lt=-1234567.5, pmax=30.0)
        requests = [e for e in pelion.exchanges or [] if e.path.startswith("/v2/device-requests/")]
        assert json.loads(requests[-1].request_body)["uri"] == f"{TEMP}?pmax=30&gt=101325.5&lt=-1234567.5"
        assert pelion.devices[SENSOR].resources[TEMP].rules == {"gt": 101325.5, "lt": -1234567.5, "pmax": 30.0}
    finally:
        client.close()
