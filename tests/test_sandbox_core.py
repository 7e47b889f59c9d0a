"""The sandbox servers' shared core over real HTTP: its control API (faults armed, listed and
cleared, the request log), a handler's bug answered as a 500 page, streamed bodies, the log's bound."""

from __future__ import annotations

import socket
from typing import Any, Iterator

import pytest
import requests

from platypush_ext.sandbox.core import Abort, Request, Response, SandboxServer, json_response, take_failures
from platypush_ext.sandbox.pushjet import PushjetServer
from tests.support import fail_on_sandbox_bugs

TIMEOUT = 5
DOC = {"messages": [{"level": 3, "text": "hi"}], "a/b": {"~": 1}}


class Echo(SandboxServer):
    name = "echo"

    def setup_routes(self) -> None:
        self.route("GET", "/echo", lambda r: json_response({"q": r.query.get("q")}))
        self.route("GET", "/bug", self._bug)
        self.route("GET", "/abort", self._abort)
        self.route("GET", "/stream", lambda r: Response(200, self._chunks()))
        self.route("GET", "/doc", lambda r: json_response(DOC, 201, headers={"X-Kept": "yes"}))

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
        ({"kind": "explode"}, "unknown fault kind 'explode'; use one of status, hang, reset, malformed, body"),
        ({"kind": "status", "count": 0}, "count must be at least 1"),
        ({"kind": "status", "colour": "red"}, "unexpected keyword argument 'colour'"),
        ({"kind": "status", "skip": -1}, "skip must not be negative"),
        ({"kind": "body"}, "a body fault needs one of pointer, raw or raw_base64"),
        ({"kind": "body", "raw": "x", "pointer": "/a"}, "a body fault needs one of pointer, raw or raw_base64"),
        ({"kind": "body", "pointer": "/a", "op": "move"}, "unknown op 'move'; use one of replace, remove, add"),
        ({"kind": "body", "pointer": "a"}, "pointer must be empty or start with '/', got 'a'"),
        ({"kind": "body", "raw_base64": "not base64!"}, "raw_base64 is not base64"),
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


def _doc(echo: Echo, **fault: Any) -> requests.Response:
    echo.faults.add("body", **fault)
    return requests.get(echo.url + "/doc", timeout=TIMEOUT)


@pytest.mark.parametrize(
    "fault, body",
    [
        ({"pointer": "/messages/0/level", "value": "high"}, b'"level":"high"'),
        ({"pointer": "/messages/0/level", "op": "replace", "json": "1e400"}, b'"level":1e400'),
        ({"pointer": "/messages/0/level", "json": "NaN"}, b'"level":NaN'),
        ({"pointer": "/messages/0/text", "json": '"\\ud800"'}, b'"text":"\\ud800"'),
        ({"pointer": "/messages/0/level", "op": "remove"}, b'[{"text":"hi"}]'),
        ({"pointer": "/messages/0/extra", "op": "add", "value": None}, b'"extra":null'),
        ({"pointer": "/messages/-", "op": "add", "value": 7}, b'"text":"hi"},7]'),
        ({"pointer": "/messages/0", "op": "add", "value": []}, b'"messages":[[],{'),
        ({"pointer": "/a~1b/~0", "value": 2}, b'"a/b":{"~":2}'),
        ({"pointer": "", "json": "[" * 1000 + "]" * 1000}, b"[" * 1000 + b"]" * 1000),
    ],
)
def test_a_body_fault_edits_the_handlers_json_at_a_pointer(echo: Echo, fault: dict[str, Any], body: bytes) -> None:
    answer = _doc(echo, **fault)
    assert body in answer.content, answer.content
    # the handler's status and headers, a Content-Length that fits the new body
    assert answer.status_code == 201 and answer.headers["X-Kept"] == "yes"
    assert int(answer.headers["Content-Length"]) == len(answer.content)
    assert requests.get(echo.url + "/doc", timeout=TIMEOUT).json() == DOC  # one answer only


def test_a_body_fault_replaces_the_whole_body_status_and_headers_if_given(echo: Echo) -> None:
    page = "<html><title>502 Bad Gateway</title></html>"
    answer = _doc(echo, raw=page, status=502, headers={"Content-Type": "text/html"})
    assert (answer.status_code, answer.text, answer.headers["Content-Type"]) == (502, page, "text/html")
    answer = _doc(echo, raw_base64="/+4A")  # bytes that are not UTF-8
    assert (answer.status_code, answer.content) == (201, b"\xff\xee\x00")
    assert answer.headers["Content-Type"] == "application/json" and answer.headers["Content-Length"] == "3"
    assert _doc(echo, raw="").content == b""


def test_a_fault_can_skip_matching_requests(echo: Echo) -> None:
    echo.faults.add("body", raw="third", skip=2, method="GET", path="/doc")
    texts = [requests.get(echo.url + path, timeout=TIMEOUT).text for path in ("/doc", "/echo", "/doc", "/doc", "/doc")]
    assert texts[2:] == [json_response(DOC).body.decode(), "third", json_response(DOC).body.decode()]
    assert echo.faults.armed() == []


def test_a_body_fault_over_the_control_api(echo: Echo) -> None:
    spec = {"kind": "body", "pointer": "/messages/0/level", "json": "-1e400", "path": "/doc"}
    armed = requests.post(echo.url + "/_sandbox/faults", json=spec, timeout=TIMEOUT).json()["armed"]
    assert (armed["kind"], armed["json"], armed["status"]) == ("body", "-1e400", None)
    assert b'"level":-1e400' in requests.get(echo.url + "/doc", timeout=TIMEOUT).content


@pytest.mark.sandbox_bug  # on purpose: a fault that does not fit the answer is the test's mistake
def test_a_body_fault_that_does_not_fit_the_answer_fails_the_test(echo: Echo) -> None:
    assert _doc(echo, pointer="/messages/5/level", value=1).status_code == 500
    assert "does not lead to a value" in str(take_failures()[0])
    echo.faults.add("body", pointer="/q", value=1, path="/stream")
    assert requests.get(echo.url + "/stream", timeout=TIMEOUT).status_code == 500
    assert "needs a JSON answer" in str(take_failures()[0])


def test_answers_are_recorded_as_sent_when_asked(echo: Echo) -> None:
    requests.get(echo.url + "/echo", timeout=TIMEOUT)
    assert echo.recording is None
    echo.recording = []
    _doc(echo, pointer="/messages/0/level", value=4)
    requests.get(echo.url + "/stream", timeout=TIMEOUT)
    requests.get(echo.url + "/_sandbox/health", timeout=TIMEOUT)  # the control API is not the service's
    doc, stream = echo.recording
    assert (doc.method, doc.path, doc.status, doc.headers["X-Kept"]) == ("GET", "/doc", 201, "yes")
    assert b'"level":4' in (doc.body or b"") and stream.body is None and doc.at < stream.at


def _kernel_ports() -> range:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as limits:
        low, high = map(int, limits.read().split())
    return range(low, high + 1)


def test_a_server_on_port_0_restarts_on_its_port_which_the_kernel_never_hands_out(start_server: Any) -> None:
    echo = start_server(Echo)
    connector = start_server(PushjetServer).connector
    ports = (echo.port, connector.port, connector.tcp_port)
    # bind(("", 0)) took a port of the kernel's range, which any outgoing connection could take
    # while the server was stopped: the restart then failed with EADDRINUSE
    assert not any(port in _kernel_ports() for port in ports)
    echo.stop()
    connector.stop()
    echo.start()
    connector.start()
    assert (echo.port, connector.port, connector.tcp_port) == ports
    assert requests.get(echo.url + "/echo", params={"q": "back"}, timeout=TIMEOUT).json() == {"q": "back"}
    socket.create_connection(("127.0.0.1", connector.tcp_port), timeout=TIMEOUT).close()
