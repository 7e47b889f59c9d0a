"""The sandbox servers' shared core over real HTTP: its control API (faults armed, listed and
cleared, the request log), a handler's bug answered as a 500 page, streamed bodies, the log's bound."""

from __future__ import annotations

import socket
from typing import Any, Iterator

import pytest
import requests

from platypush_ext.sandbox.core import Abort, Request, Response, SandboxServer, json_response, take_failures
from tests.support import fail_on_sandbox_bugs

TIMEOUT = 5


class Echo(SandboxServer):
    name = "echo"

    def setup_routes(self) -> None:
        self.route("GET", "/echo", lambda r: json_response({"q": r.query.get("q")}))
        self.route("GET", "/bug", self._bug)
        self.route("GET", "/abort", self._abort)
        self.route("GET", "/stream", lambda r: Response(200, self._chunks()))

    @staticmethod
    def _bug(request: Request) -> Response:
        raise RuntimeError("a bug in the handler")

    @staticmethod
    def _abort(request: Request) -> Response:
        raise Abort(json_response({"error": "a teapot"}, 418), "a teapot")

    @staticmethod
    def _chunks() -> Iterator[bytes]:
        yield b"one,"
        yield b"two"


@pytest.fixture
def echo(start_server: Any) -> Echo:
    return start_server(Echo)


def test_faults_over_the_control_api(echo: Echo) -> None:
    control = echo.url + "/_sandbox/faults"
    armed = requests.post(
        control, json={"kind": "status", "status": 503, "count": 2, "path": "/echo"}, timeout=TIMEOUT
    ).json()["armed"]
    assert (armed["kind"], armed["status"], armed["count"]) == ("status", 503, 2)
    assert [f["path"] for f in requests.get(control, timeout=TIMEOUT).json()["faults"]] == ["/echo"]
    assert requests.get(echo.url + "/echo", timeout=TIMEOUT).status_code == 503
    assert requests.delete(control, timeout=TIMEOUT).json() == {"faults": []}
    assert requests.get(echo.url + "/echo", params={"q": "x"}, timeout=TIMEOUT).json() == {"q": "x"}
    log = requests.get(echo.url + "/_sandbox/requests", timeout=TIMEOUT).json()["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in log if e["path"] == "/echo"] == [
        ("GET", "/echo", 503),
        ("GET", "/echo", 200),
    ]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"kind": "explode"}, "unknown fault kind 'explode'; use one of status, hang, reset, malformed"),
        ({"kind": "status", "count": 0}, "count must be at least 1"),
        ({"kind": "status", "colour": "red"}, "unexpected keyword argument 'colour'"),
    ],
)
def test_bad_fault_specs_are_400_and_arm_nothing(echo: Echo, spec: dict[str, Any], message: str) -> None:
    answer = requests.post(echo.url + "/_sandbox/faults", json=spec, timeout=TIMEOUT)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert echo.faults.armed() == []


@pytest.mark.sandbox_bug  # on purpose: checked by the next test
def test_a_bug_in_a_handler_is_a_500_page_and_the_server_goes_on(echo: Echo, caplog: Any) -> None:
    answer = requests.get(echo.url + "/bug", timeout=TIMEOUT)
    assert answer.status_code == 500 and "<title>500 Internal Server Error</title>" in answer.text
    assert "handler failed for GET /bug" in caplog.text and "a bug in the handler" in caplog.text
    assert requests.get(echo.url + "/echo", timeout=TIMEOUT).status_code == 200


def test_a_bug_in_a_handler_is_recorded_to_fail_the_test_but_an_abort_is_an_answer(echo: Echo) -> None:
    # like pytest-httpserver: the server records the bug, tests/conftest.py fails the test that caused it
    assert requests.get(echo.url + "/abort", timeout=TIMEOUT).status_code == 418
    assert take_failures() == []
    assert requests.get(echo.url + "/bug", timeout=TIMEOUT).status_code == 500
    failures = take_failures()
    assert [str(f) for f in failures] == ["echo: the handler of GET /bug failed: RuntimeError: a bug in the handler"]
    assert take_failures() == []  # taken once
    requests.get(echo.url + "/bug", timeout=TIMEOUT)
    with pytest.raises(pytest.fail.Exception, match="the handler of GET /bug failed"):
        fail_on_sandbox_bugs()  # what tests/conftest.py runs after every test
    fail_on_sandbox_bugs()  # nothing new


def test_a_streamed_body_without_length_closes_the_connection(echo: Echo) -> None:
    with socket.create_connection((echo.host, echo.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):  # ends: the server closes after the body
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"Connection: close" in head and body == b"one,two"


def test_the_request_log_is_bounded(echo: Echo) -> None:
    with echo.lock:
        echo.requests.extend([("GET", "/old", 200)] * 10000)
        echo.targets.extend(["/old"] * 10000)
    requests.get(echo.url + "/echo", timeout=TIMEOUT)
    assert len(echo.requests) == len(echo.targets) == 5001
    assert echo.requests[-1] == ("GET", "/echo", 200)


def test_describe_names_the_base_url(echo: Echo) -> None:
    assert echo.describe() == f"echo: http://127.0.0.1:{echo.port}/"
