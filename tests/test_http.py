"""The one HTTP layer: timeouts, retries, error mapping and secret masking,
against a real local server with fault injection."""

from __future__ import annotations

import time

import pytest

from platypush_ext.core import untrusted
from platypush_ext.core.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    ServiceConnectionError,
    ServiceTimeoutError,
)
from platypush_ext.core.http import HttpClient, Timeouts
from platypush_ext.core.redaction import Redactor
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.sandbox.core import Response, SandboxServer, json_response, text_response
from platypush_ext.sandbox.ports import free_port

SECRET = "s3cr3t-value-0123456789"


class EchoServer(SandboxServer):
    name = "echo"

    def setup_routes(self) -> None:
        self.route("GET", "/echo", lambda r: json_response({"query": r.query}))
        self.route("POST", "/echo", lambda r: json_response({"form": r.form}))
        self.route(
            "GET",
            r"/status/(?P<code>\d+)",
            lambda r: json_response(
                {"message": f"status {r.params['code']} for {r.query.get('api_key', '')}"}, int(r.params["code"])
            ),
        )
        self.route(
            "GET",
            "/html-error",
            lambda r: text_response("<html><title>Broken gateway</title></html>", 502, "text/html"),
        )
        self.route("GET", "/busy", self._busy)

    @staticmethod
    def _busy(request):
        response = json_response({"message": "busy"}, 503)
        response.headers["Retry-After"] = request.query.get("retry_after", "")
        return response


pytestmark = pytest.mark.sandbox(cls=EchoServer)


def client(server, **kwargs) -> HttpClient:
    kwargs.setdefault("retry", RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.05))
    kwargs.setdefault("timeouts", Timeouts(1, 1))
    return HttpClient(server.base_url, **kwargs)


def calls(server, method: str, path: str) -> int:
    return sum(1 for m, p, _ in server.requests if (m, p) == (method, path))


def test_base_url_is_normalised(server):
    assert HttpClient(server.url + "/api").base_url == server.url + "/api/"
    assert HttpClient(server.url + "/api").url("x") == server.url + "/api/x"


@pytest.mark.parametrize("bad", ["", "ftp://x", "localhost:8080", None], ids=["empty", "ftp", "no-scheme", "none"])
def test_a_base_url_that_is_not_http_is_refused(bad):
    with pytest.raises(InvalidArgumentError):
        HttpClient(bad)


@pytest.mark.parametrize(
    "status, error",
    [
        (400, BadRequestError),
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (409, ConflictError),
        (410, NotFoundError),
        (422, BadRequestError),
        (429, RateLimitedError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_status_mapping_carries_status_endpoint_and_server_message(server, status, error):
    with pytest.raises(error) as caught:
        client(server, retry=RetryPolicy(attempts=1)).request("GET", f"status/{status}")
    assert caught.value.status == status
    assert caught.value.endpoint == f"GET /status/{status}"
    assert caught.value.server_message == f"status {status} for "
    assert f"HTTP {status}" in str(caught.value)


def test_html_error_page_gives_its_title(server):
    with pytest.raises(ServerError, match="Broken gateway"):
        client(server, retry=RetryPolicy(attempts=1)).request("GET", "html-error")


def test_idempotent_request_retries_5xx_then_succeeds(server):
    server.faults.add("status", count=2, status=503)
    assert client(server).request_json("GET", "echo", params={"a": "1"}) == {"query": {"a": "1"}}
    assert calls(server, "GET", "/echo") == 3


def test_retries_are_bounded(server):
    server.faults.add("status", count=10, status=500)
    with pytest.raises(ServerError):
        client(server).request("GET", "echo")
    assert calls(server, "GET", "/echo") == 3


def test_retry_after_is_honoured(server):
    server.faults.add("status", count=1, status=429, retry_after=0.4)
    http = client(server, retry=RetryPolicy(attempts=2, backoff=0.01, backoff_max=5))
    started = time.monotonic()
    http.request("GET", "echo")
    assert 0.35 <= time.monotonic() - started < 2.0


@pytest.mark.parametrize("value", ["soon", "nan", "Wed, 99 Foo 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00"])
def test_malformed_or_past_retry_after_is_still_a_retried_service_error(server, value):
    # a Retry-After the client cannot read must not turn a 503 into a ValueError
    # (that killed listener threads, which only expect ServiceError)
    http = client(server, retry=RetryPolicy(attempts=2, backoff=0.01, backoff_max=0.05))
    started = time.monotonic()
    with pytest.raises(ServerError, match="busy"):
        http.request("GET", "busy", params={"retry_after": value})
    assert calls(server, "GET", "/busy") == 2
    assert time.monotonic() - started < 5


def test_retry_budget_stops_long_waits(server):
    server.faults.add("status", count=1, status=503, retry_after=30)
    http = client(server, retry=RetryPolicy(attempts=3, backoff_max=60, budget=2))
    started = time.monotonic()
    with pytest.raises(ServerError):
        http.request("GET", "echo")
    assert time.monotonic() - started < 1.0  # did not sleep 30 s past the budget


def test_post_is_never_replayed_once_it_reached_the_server(server):
    server.faults.add("status", count=1, status=503)
    with pytest.raises(ServerError):
        client(server).request("POST", "echo", data={"x": "1"})
    assert calls(server, "POST", "/echo") == 1
    server.faults.add("reset", count=1)
    with pytest.raises(ServiceConnectionError):
        client(server).request("POST", "echo", data={"x": "1"})
    assert calls(server, "POST", "/echo") == 2


def test_post_marked_idempotent_is_retried(server):
    server.faults.add("status", count=1, status=503)
    assert client(server).request_json("POST", "echo", data={"x": "1"}, idempotent=True) == {"form": {"x": "1"}}


def test_destructive_get_can_opt_out_of_retries(server):
    server.faults.add("status", count=1, status=503)
    with pytest.raises(ServerError):
        client(server).request("GET", "echo", idempotent=False)
    assert calls(server, "GET", "/echo") == 1


def test_connection_reset_is_retried_for_idempotent_requests(server):
    server.faults.add("reset", count=2)
    assert client(server).request_json("GET", "echo") == {"query": {}}


def test_read_timeout(server):
    server.faults.add("hang", count=1, delay=1.5)
    http = client(server, timeouts=Timeouts(1, 0.3), retry=RetryPolicy(attempts=1))
    started = time.monotonic()
    with pytest.raises(ServiceTimeoutError, match="did not answer within 0.3 s"):
        http.request("GET", "echo")
    assert time.monotonic() - started < 1.2


def test_connection_refused_is_retried_even_for_post_and_reported_clearly():
    port = free_port()
    http = HttpClient(f"http://127.0.0.1:{port}/", retry=RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.02))
    with pytest.raises(ServiceConnectionError, match="connection refused") as caught:
        http.request("POST", "x", data={"secret": SECRET})
    assert caught.value.transient
    assert SECRET not in str(caught.value)


def test_malformed_body_is_a_protocol_error(server):
    server.faults.add("malformed", count=1)
    with pytest.raises(ProtocolError, match="not JSON"):
        client(server).request_json("GET", "echo")


def test_secrets_are_masked_in_errors_and_logs(server, caplog):
    caplog.set_level("DEBUG", logger="platypush_ext.http")
    http = client(server, retry=RetryPolicy(attempts=2, backoff=0.01, backoff_max=0.01))
    server.faults.add("status", count=5, status=503)
    with pytest.raises(ServerError) as caught:
        http.request("GET", f"status/500?accesstoken={SECRET}", params={"api_key": SECRET})
    assert SECRET not in str(caught.value) and caught.value.endpoint == "GET /status/500?accesstoken=***"
    # the server's own message echoing the secret is masked too
    server.faults.clear()
    with pytest.raises(ServerError) as caught:
        client(server, retry=RetryPolicy(attempts=1)).request("GET", "status/500", params={"api_key": SECRET})
    assert SECRET not in str(caught.value) and "***" in str(caught.value)
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)
    assert SECRET not in repr(http)


def test_server_message_of_service_specific_errors_is_masked(server):
    # The error factory's server_message was left as the server wrote it; clients reuse it
    # (NikDev dead-letter reasons and events, Ge.tt login errors), so an echoed key leaked.
    from platypush_ext.nikdev.client import _nikdev_error

    http = client(server, retry=RetryPolicy(attempts=1), error_factory=_nikdev_error)
    with pytest.raises(BadRequestError) as caught:
        http.request("GET", "status/400", params={"api_key": SECRET})
    assert caught.value.server_message == "status 400 for ***"
    assert SECRET not in str(caught.value)


def test_redactor():
    redactor = Redactor(["tok-123456"])
    assert redactor.url("http://u:pw12345@h/p?token=abc&x=1&secret=zz") == "http://u:***@h/p?token=***&x=1&secret=***"
    assert redactor.text("Bearer tok-123456 used") == "Bearer *** used"
    redactor.add_from({"password": "hunter22", "name": "bob"})
    assert redactor.text("hunter22 bob") == "*** bob"
    redactor.add("p@ss w/rd!")  # also masked where it appears percent-encoded in a URL
    assert redactor.text("?k=p%40ss%20w%2Frd%21&j=p%40ss+w%2Frd%21 p@ss w/rd!") == "?k=***&j=*** ***"
    redactor.add("abc")  # too short to be masked safely: ignored
    assert redactor.text("abc") == "abc"


def test_a_session_given_to_the_client_is_left_open_for_its_owner(server):
    import requests

    session = requests.Session()
    given = client(server, session=session)
    given.close()
    assert given.session is session and session.adapters  # not closed: its owner's
    assert session.get(server.url + "/echo", timeout=5).status_code == 200  # still usable
    own = client(server)
    own.request("GET", "echo")
    pool = own.session.get_adapter(server.url).poolmanager
    assert len(pool.pools) == 1
    own.close()
    assert len(pool.pools) == 0  # its own session is closed
    session.close()


def test_a_connection_never_made_is_told_by_the_exception_type_not_its_text():
    import requests
    import urllib3

    from platypush_ext.core.http import _never_connected

    refused = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    wrapped = urllib3.exceptions.MaxRetryError(None, "/x", reason=refused)  # type: ignore[arg-type]
    assert _never_connected(requests.exceptions.ConnectionError(wrapped))
    assert _never_connected(requests.exceptions.ConnectTimeout("connect timeout"))
    # a broken connection whose text happens to say "Connection refused" may have reached the server
    broken = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError("Connection refused"))
    assert not _never_connected(requests.exceptions.ConnectionError(broken))
    assert not _never_connected(requests.exceptions.ConnectionError("NewConnectionError Connection refused"))
    assert not _never_connected(requests.exceptions.ReadTimeout("read timeout"))


def test_a_post_whose_connection_broke_after_sending_is_not_replayed(server):
    server.faults.add("reset", count=1, method="POST", path="/echo")
    with pytest.raises(ServiceConnectionError, match="connection failed or was reset"):
        client(server).request("POST", "echo", data={"a": "1"})
    assert calls(server, "POST", "/echo") == 1  # it may have arrived: never sent twice


# -- hostile answers: decoded as untrusted input, every failure one short line ----------------


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "fault, expected",
    [
        (
            {"raw": "this is not JSON {"},
            "GET /echo: the answer (HTTP 200) is not JSON at character 0 ('this is not JSON {')",
        ),
        ({"raw": ""}, "GET /echo: the answer (HTTP 200) is not JSON at character 0 ('')"),
        ({"raw_base64": _b64(b'{"a": "\xff"}')}, "GET /echo: the answer (HTTP 200) is not UTF-8 text (byte 7)"),
        (
            {"raw": "[" * 100_000 + "]" * 100_000},  # was a RecursionError
            "GET /echo: the answer (HTTP 200) is nested too deeply to be read (200,000 characters)",
        ),
        (
            {"raw": "<!DOCTYPE html>\r\n<html><title>Proxy\r\n login</title></html>"},
            "GET /echo: the answer (HTTP 200) is not JSON at character 0 ('[HTML page: Proxy login]",
        ),
    ],
)
def test_a_body_that_is_not_json_is_a_protocol_error_of_one_line(server, fault, expected):
    server.faults.add("body", path="/echo", **fault)
    with pytest.raises(ProtocolError) as caught:
        client(server).request_json("GET", "echo")
    assert str(caught.value).startswith(expected) and len(str(caught.value)) <= 500, str(caught.value)
    assert "\n" not in str(caught.value) and caught.value.status == 200 and caught.value.endpoint == "GET /echo"


def test_a_protocol_error_masks_the_secrets_the_body_echoes(server):
    server.faults.add("body", path="/echo", raw=f"denied: api_key={SECRET}")
    with pytest.raises(ProtocolError) as caught:
        client(server, secrets=[SECRET]).request_json("GET", "echo")
    assert SECRET not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.parametrize(
    "fault",
    [
        {"raw": "[" * 100_000 + "]" * 100_000},  # was a RecursionError out of response.json()
        {"raw": '{"error":' * 900 + '"x"' + "}" * 900},
        {"raw": '{"message": "cut sho'},
        {"raw_base64": _b64(b'{"message": "\xff\xfe"}')},
        {"raw": ""},
        {"raw": '{"message": ["a list"], "error": 5}'},
        {"raw": '{"message": "' + "x" * (10 << 20) + '"}'},  # beyond the 64 KiB read of an error answer
    ],
)
def test_an_error_body_that_says_nothing_readable_is_the_status_error_alone(server, fault):
    server.faults.add("body", path="/status/400", **fault)
    with pytest.raises(BadRequestError) as caught:
        client(server, retry=RetryPolicy(attempts=1)).request("GET", "status/400")
    assert str(caught.value) == "GET /status/400: HTTP 400" and caught.value.server_message is None


def test_an_error_message_is_one_short_line_of_valid_unicode(server):
    huge = "first line\r\n2026-01-01 00:00:00 ERROR forged\u202e\ud800" + "x" * 60_000
    server.faults.add("body", path="/status/500", value=huge, pointer="/message")
    started = time.monotonic()
    with pytest.raises(ServerError) as caught:
        client(server, retry=RetryPolicy(attempts=1)).request("GET", "status/500")
    message = caught.value.server_message
    assert message is not None and len(message) <= 300 and message.startswith("first line\\r\\n2026-01-01")
    assert "\n" not in str(caught.value) and "\\u202e\\ud800" in message
    # a body without a content type: not decoded by guessing its charset (seconds for 10 MiB)
    server.faults.add("body", path="/status/500", raw="y" * (10 << 20), headers={"Content-Type": ""})
    with pytest.raises(ServerError) as caught:
        client(server, retry=RetryPolicy(attempts=1)).request("GET", "status/500")
    assert len(caught.value.server_message or "") <= 300
    assert time.monotonic() - started < 3


def test_an_html_title_is_looked_for_at_the_start_of_a_page_only():
    from platypush_ext.core.text import html_title

    started = time.monotonic()
    assert html_title("<title" * 20_000) is None  # each "<title" scanned the rest of the text
    assert html_title("<html><title>A</title>" + "x" * 10_000) == "A"
    assert time.monotonic() - started < 0.5


def test_a_streamed_error_answer_is_read_no_further_than_its_start(start_server):
    class Endless(SandboxServer):
        def setup_routes(self) -> None:
            self.route("GET", "/blob", lambda r: Response(502, iter(lambda: b"<" * 65536, None)))

    endless = start_server(Endless)
    started = time.monotonic()
    with pytest.raises(ServerError):
        client(endless, retry=RetryPolicy(attempts=1)).request("GET", "blob", stream=True)
    assert time.monotonic() - started < 2


# -- the checks of platypush_ext.core.untrusted that the service models use -------------------------


@pytest.mark.parametrize(
    "check, value, message",
    [
        (
            lambda v: untrusted.secret(v, "token"),
            "t0ken\n",
            "token: expected up to 4,096 printable ASCII characters without spaces",
        ),
        (
            lambda v: untrusted.secret(v, "token"),
            "a b",
            "token: expected up to 4,096 printable ASCII characters without spaces",
        ),
        (lambda v: untrusted.secret(v, "token"), "", "token: expected a non-empty string"),
        (lambda v: untrusted.url(v, "u"), "http://h/x\n", "u: expected an http(s) URL (got 'http://h/x\\n')"),
        (lambda v: untrusted.url(v, "u", secret=True), "ftp://h/?sig=s3cr3t", "u: expected an http(s) URL"),
        (lambda v: untrusted.url(v, "u"), "http://h\u00e9/", "u: expected an http(s) URL (got 'http://hé/')"),
        (lambda v: untrusted.text(v, "h", quote=False), 12345, "h: expected a string"),
        (lambda v: untrusted.identifier(v, "id", int, "digits"), "4a", "id: expected digits (got '4a')"),
        (lambda v: untrusted.identifier(v, "id", int, "digits"), "", "id: empty"),
    ],
)
def test_the_untrusted_checks_refuse_in_one_line_naming_the_field(check, value, message):
    with pytest.raises(ProtocolError) as caught:
        check(value)
    assert str(caught.value) == message
    assert untrusted.secret("t0ken", "token") == "t0ken" and untrusted.url("https://h/p?q=1", "u") == "https://h/p?q=1"


def test_masking_stays_fast_however_many_secrets_a_client_learnt():
    # every secret went into one pattern, rebuilt at each new one: a Pushjet client that created a
    # service per call (or a Ge.tt client per login) paid for all of them on every request
    redactor = Redactor()
    started = time.monotonic()
    for index in range(2000):
        redactor.add(f"secret-{index:06d}-{'x' * 20}")
        assert redactor.text(f"GET /service?secret=secret-{index:06d}-{'x' * 20}&n=1") == "GET /service?secret=***&n=1"
    assert time.monotonic() - started < 2
    assert redactor.text("secret-000001-xxxxxxxxxxxxxxxxxxxx and secret-000002-xxxxxxxxxxxxxxxxxxxx") == "*** and ***"
    nested = Redactor(["abcd-efgh", "abcd-efgh-ijkl"])  # the longer one first, as before
    assert nested.text("abcd-efgh-ijkl / abcd-efgh") == "*** / ***"
