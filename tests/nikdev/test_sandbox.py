"""Fidelity of the NikDev sandbox against the observed exchanges of ``protocols/nikdev.md``.

Raw HTTP (``requests``, no client of ours), plus the original ``nikdev_iot``
0.5.5 library, which must work against the sandbox unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, DEFAULT_READ_ONLY_KEY, NikdevServer

pytestmark = pytest.mark.sandbox(cls=NikdevServer)

AUTH = {"x-device-id": DEFAULT_DEVICE_ID, "x-api-key": DEFAULT_API_KEY}
OBSERVED_BODY = {
    "clientTimestamp": 1795303179,
    "entries": [
        {"timestamp": 1795303179, "values": [{"temp": 22.0}, {"hum": 40}]},
        {"timestamp": 1795303179, "values": [{"temp": 23}]},
    ],
}


def post(server: NikdevServer, body: Any = None, headers: Any = None, **kwargs: Any) -> requests.Response:
    return requests.post(
        server.base_url + "entries/", json=body, headers=AUTH if headers is None else headers, timeout=5, **kwargs
    )


def test_observed_push_is_accepted_and_stored(server: NikdevServer) -> None:
    answer = post(server, OBSERVED_BODY)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"status": "ok"}
    entries = requests.get(server.url + "/_sandbox/entries", timeout=5).json()["entries"]
    assert [e["values"] for e in entries] == [[{"temp": 22.0}, {"hum": 40}], [{"temp": 23}]]
    assert all(e["timestamp"] == 1795303179 and e["client_timestamp"] == 1795303179 for e in entries)
    assert entries[0]["batch"] == entries[1]["batch"] == 1
    assert server.state()["entries"] == 2 and server.state()["values"] == 3


def test_empty_push_is_accepted(server: NikdevServer) -> None:
    answer = post(server, {"clientTimestamp": int(time.time()), "entries": []})
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    assert (server.state()["batches"], server.state()["entries"]) == (1, 0)


def test_legacy_header_names_are_accepted(server: NikdevServer) -> None:
    answer = post(server, OBSERVED_BODY, headers={"x-device": DEFAULT_DEVICE_ID, "x-token": DEFAULT_API_KEY})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "headers, status, message",
    [
        ({}, 401, "Missing credentials"),
        ({"x-device-id": DEFAULT_DEVICE_ID}, 401, "Missing credentials"),
        ({"x-device-id": DEFAULT_DEVICE_ID, "x-api-key": "wrong"}, 401, "Invalid API key"),
        ({"x-device-id": "other-device", "x-api-key": DEFAULT_API_KEY}, 401, "Invalid API key"),
        ({"x-device-id": DEFAULT_DEVICE_ID, "x-api-key": DEFAULT_READ_ONLY_KEY}, 403, "write access"),
    ],
)
def test_push_auth_errors_have_a_message(server: NikdevServer, headers: dict, status: int, message: str) -> None:
    answer = post(server, OBSERVED_BODY, headers=headers)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/json"
    assert message in answer.json()["message"]
    assert server.state()["entries"] == 0


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"entries": []},
        {"clientTimestamp": 1, "entries": {}},
        {"clientTimestamp": 1, "entries": [{"values": []}]},
        {"clientTimestamp": 1, "entries": [{"timestamp": 1, "values": [{"a": 1, "b": 2}]}]},
        {"clientTimestamp": 1, "entries": [{"timestamp": 1, "values": [{"a": [1]}]}]},
        {"clientTimestamp": 1, "entries": [{"timestamp": 1, "values": [{"a": 1}, {"a": 2}]}]},
    ],
)
def test_malformed_data_is_a_400_with_message(server: NikdevServer, body: Any) -> None:
    answer = post(server, body)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("Malformed data")
    assert server.state()["entries"] == 0


def test_non_json_body_is_a_400(server: NikdevServer) -> None:
    answer = requests.post(server.base_url + "entries/", data=b"not json", headers=AUTH, timeout=5)
    assert answer.status_code == 400 and "not JSON" in answer.json()["message"]


def test_get_values_shape(server: NikdevServer) -> None:
    now = int(time.time())
    post(server, {"clientTimestamp": now, "entries": [{"timestamp": now - 30, "values": [{"temp": 1.5}, {"hum": 40}]}]})
    answer = requests.get(server.base_url + "values/temp,hum", headers=AUTH, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    data = answer.json()["data"]
    assert abs(data["servertime"] - time.time()) < 5
    assert [list(v) for v in data["values"]] == [["temp"], ["hum"]]
    temp, hum = data["values"][0]["temp"], data["values"][1]["hum"]
    assert (temp["value"], hum["value"]) == (1.5, 40)
    assert abs(temp["timestamp"] - (now - 30)) <= 1 and hum["timestamp"] == temp["timestamp"]


def test_get_values_uses_the_newest_and_skew_corrects(server: NikdevServer) -> None:
    now = int(time.time())
    # a device whose clock is 1000 s behind: its timestamps are shifted on arrival
    post(server, {"clientTimestamp": now - 1000, "entries": [{"timestamp": now - 1010, "values": [{"t": 1}]}]})
    post(server, {"clientTimestamp": now, "entries": [{"timestamp": now - 500, "values": [{"t": 2}]}]})
    values = requests.get(server.base_url + "values/t", headers=AUTH, timeout=5).json()["data"]["values"]
    assert values[0]["t"]["value"] == 1
    assert abs(values[0]["t"]["timestamp"] - (now - 10)) <= 2


def test_get_values_errors(server: NikdevServer) -> None:
    unknown = requests.get(server.base_url + "values/nope", headers=AUTH, timeout=5)
    assert unknown.status_code == 404 and "nope" in unknown.json()["message"]
    no_auth = requests.get(server.base_url + "values/nope", timeout=5)
    assert no_auth.status_code == 401 and no_auth.json()["message"]
    # a read-only key may read
    post(server, OBSERVED_BODY)
    read = requests.get(
        server.base_url + "values/temp",
        headers={"x-device-id": DEFAULT_DEVICE_ID, "x-api-key": DEFAULT_READ_ONLY_KEY},
        timeout=5,
    )
    assert read.status_code == 200 and read.json()["data"]["values"][0]["temp"]["value"] == 23


def test_percent_encoded_field_ids(server: NikdevServer) -> None:
    now = int(time.time())
    post(server, {"clientTimestamp": now, "entries": [{"timestamp": now, "values": [{"room 1/temp": 20}]}]})
    answer = requests.get(server.base_url + "values/room%201%2Ftemp", headers=AUTH, timeout=5)
    assert answer.status_code == 200
    assert answer.json()["data"]["values"][0]["room 1/temp"]["value"] == 20


def test_duplicates_are_counted(server: NikdevServer) -> None:
    post(server, OBSERVED_BODY)
    post(server, OBSERVED_BODY)
    assert server.state()["duplicates"] == 2
    entries = requests.get(server.url + "/_sandbox/entries?field=hum", timeout=5).json()["entries"]
    assert [e["duplicate"] for e in entries] == [False, True]


def test_control_api_keys_and_reset(server: NikdevServer) -> None:
    added = requests.post(server.url + "/_sandbox/keys", json={"api_key": "k2-key", "write": True}, timeout=5)
    assert (
        added.status_code == 200
        and {"device_id": DEFAULT_DEVICE_ID, "api_key": "k2-key", "write": True} in added.json()["keys"]
    )
    assert post(server, OBSERVED_BODY, headers={"x-device-id": DEFAULT_DEVICE_ID, "x-api-key": "k2-key"}).ok
    assert requests.delete(server.url + "/_sandbox/keys/k2-key", timeout=5).status_code == 200
    assert (
        post(server, OBSERVED_BODY, headers={"x-device-id": DEFAULT_DEVICE_ID, "x-api-key": "k2-key"}).status_code
        == 401
    )
    assert requests.delete(server.url + "/_sandbox/keys/k2-key", timeout=5).status_code == 404
    assert requests.post(server.url + "/_sandbox/keys", json={"write": True}, timeout=5).status_code == 400
    assert requests.delete(server.url + "/_sandbox/entries", timeout=5).json() == {"entries": []}
    assert server.state()["entries"] == 0
    state = requests.get(server.url + "/_sandbox/state", timeout=5).json()
    assert state["entries"] == 0 and state["keys"] == 2


def test_unknown_route_is_json_404(server: NikdevServer) -> None:
    answer = requests.get(server.base_url + "nothing", headers=AUTH, timeout=5)
    assert answer.status_code == 404 and "message" in answer.json()


def test_fault_injection_answers(server: NikdevServer) -> None:
    server.faults.add("status", status=500, path="/api/v1/entries/")
    assert post(server, OBSERVED_BODY).status_code == 500
    assert post(server, OBSERVED_BODY).status_code == 200


def test_the_original_library_works_against_the_sandbox(server: NikdevServer, tmp_path: Any) -> None:
    """The observed exchange, replayed with ``nikdev_iot`` 0.5.5 itself in a child process
    (its values/entries are class attributes and it registers atexit hooks)."""
    pytest.importorskip("nikdev_iot")
    script = f"""
import time
from nikdev_iot import Api, GetException, PushException
api = Api({{"baseUrl": "{server.base_url}", "deviceId": "{DEFAULT_DEVICE_ID}", "apiKey": "{DEFAULT_API_KEY}",
           "stageUncommittedValues": False, "stageUnpushedEntries": False}})
api.add_value("temp", 21.5); api.add_value("hum", 40); api.add_value("temp", 22.0); api.commit()
api.add_value("temp", 23); api.commit(); api.push()
got = api.get(["temp", "hum"])
print(sorted((v.field_id, v.value) for v in got))
bad = Api({{"baseUrl": "{server.base_url}", "deviceId": "{DEFAULT_DEVICE_ID}", "apiKey": "wrong",
           "stageUncommittedValues": False, "stageUnpushedEntries": False}})
bad.add_value("x", 1); bad.commit()
try:
    bad.push()
except PushException as exc:
    print("push:", exc, exc.retained_data)
try:
    api.get(["nope"])
except GetException as exc:
    print("get:", exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "[('hum', 40), ('temp', 23)]"
    assert lines[1] == "push: Bad request: Invalid API key True"
    assert lines[2] == "get: Bad request: Unknown field(s): nope"
    entries = server.entries()
    assert [e["values"] for e in entries] == [[{"temp": 22.0}, {"hum": 40}], [{"temp": 23}]]


def test_cli_starts_with_given_credentials() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "platypush_ext.sandbox",
            "nikdev",
            "--port",
            "0",
            "--device-id",
            "my-dev",
            "--api-key",
            "my-key-123",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("nikdev: http://127.0.0.1:") and "my-dev" in line and "my-key-123" in line
        base_url = line.split()[1]
        answer = requests.post(
            base_url + "entries/",
            json=OBSERVED_BODY,
            headers={"x-device-id": "my-dev", "x-api-key": "my-key-123"},
            timeout=5,
        )
        assert answer.status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
