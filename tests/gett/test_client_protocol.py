"""The Ge.tt client against a server that answers well-formed HTTP with ill-formed Ge.tt objects:
each one is a clear :class:`ProtocolError` naming what was wrong, never a ``KeyError`` deep inside."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from platypush_ext.core.errors import ProtocolError
from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.gett.client import GettClient
from platypush_ext.sandbox.core import Request, Response, SandboxServer, json_response

LOGIN = {"accesstoken": "a.0101.u1.1.x", "refreshtoken": "r.0101.x", "expires": 86400, "user": {"userid": "u1"}}


class ScriptedGett(SandboxServer):
    """Answers ``answers[(method, path)]`` (JSON) to every request under ``/1/``."""

    name = "scripted-gett"
    api_prefix = "/1/"

    def __init__(self, **kwargs: Any):
        self.answers: dict[tuple[str, str], Any] = {("POST", "/1/users/login"): LOGIN}
        super().__init__(**kwargs)

    def setup_routes(self) -> None:
        for method in ("GET", "POST"):
            self.route(method, r"/1/.*", self._answer)

    def _answer(self, request: Request) -> Response:
        key = (request.method, request.path)
        return json_response(self.answers[key]) if key in self.answers else json_response({"error": "nope"}, 404)


pytestmark = pytest.mark.sandbox(cls=ScriptedGett)


def make_client(server: ScriptedGett) -> GettClient:
    return GettClient(
        server.base_url,
        api_key="k",
        email="e@x",
        password="p",
        timeouts=Timeouts(2, 2),
        retry=RetryPolicy(attempts=1, backoff=0.01, backoff_max=0.01),
    )


@pytest.mark.parametrize(
    "method, path, answer, call, message",
    [
        (
            "GET",
            "/1/shares",
            {"not": "a list"},
            lambda c: c.get_shares(),
            "GET /1/shares: the answer: expected a JSON array (got a JSON object of 1 items)",
        ),
        (
            "GET",
            "/1/shares",
            [{"title": "x"}],
            lambda c: c.get_shares(),
            "GET /1/shares: shares[0].sharename: missing",
        ),
        (
            "GET",
            "/1/files/abc/0",
            {"fileid": "0"},
            lambda c: c.get_file("abc", "0"),
            "GET /1/files/abc/0: file.filename: missing",
        ),
        (
            "GET",
            "/1/files/abc/0/upload",
            {"puturl": "http://127.0.0.1:1/x"},
            lambda c: c.upload_url("abc", "0"),
            "GET /1/files/abc/0/upload: upload.posturl: missing",
        ),
        (
            "GET",
            "/1/users/me",
            {"fullname": "nobody"},
            lambda c: c.get_user(),
            "GET /1/users/me: user.userid: missing",
        ),
        (
            "POST",
            "/1/users/login",
            {"expires": 60},
            lambda c: c.login(),
            "POST /1/users/login: accesstoken: missing",
        ),
    ],
)
def test_ill_formed_objects_are_protocol_errors(
    server: ScriptedGett, method: str, path: str, answer: Any, call: Callable[[GettClient], Any], message: str
) -> None:
    server.answers[(method, path)] = answer
    client = make_client(server)
    try:
        with pytest.raises(ProtocolError) as failure:
            call(client)
        assert str(failure.value) == message
    finally:
        client.close()


def test_expires_may_be_a_numeric_string_but_nothing_else(server: ScriptedGett) -> None:
    server.answers[("POST", "/1/users/login")] = {**LOGIN, "expires": "3600"}
    server.answers[("GET", "/1/users/me")] = {"userid": "u1", "email": "e@x"}
    client = make_client(server)
    try:
        assert [client.get_user().email for _ in range(3)] == ["e@x"] * 3
        # was read as a day: an answer the client cannot read is refused, nothing of it kept
        server.answers[("POST", "/1/users/login")] = {**LOGIN, "expires": "soon", "accesstoken": "a.0101.u1.2.y"}
        with pytest.raises(ProtocolError, match="^POST /1/users/login: expires: expected a whole number"):
            client.login()
        assert client.access_token() == LOGIN["accesstoken"]
    finally:
        client.close()
    assert [p for _, p, _ in server.requests].count("/1/users/login") == 2  # no renewal after each call


HUGE = "x" * (10 << 20)
FILE = {"fileid": "0", "filename": "a.txt", "sharename": "abc", "size": 5, "readystate": "uploaded"}


@pytest.mark.parametrize(
    "answer, message",
    [
        ({**FILE, "size": float("inf")}, "file.size: expected a whole, finite number (got inf)"),  # was OverflowError
        ({**FILE, "size": -1}, "file.size: out of range [0, 9223372036854775807] (got -1)"),
        ({**FILE, "downloads": "many"}, "file.downloads: expected a whole number (got 'many')"),
        ({**FILE, "fileid": 0}, "file.fileid: expected a string (got 0)"),
        ({**FILE, "sharename": "../x"}, "file.sharename: expected letters and digits, e.g. '4dsfd' (got '../x')"),
        ({**FILE, "filename": HUGE}, "file.filename: longer than 65,536 characters (10,485,760)"),
        ({**FILE, "filename": "a\ud800"}, "file.filename: not valid Unicode (a lone surrogate at character 1)"),
        ({**FILE, "getturl": ["x"]}, "file.getturl: expected a string (got a JSON array of 1 items)"),
        ({**FILE, "readystate": None}, "file.readystate: expected a string (got None)"),
    ],
)
def test_every_field_of_a_file_is_checked(server: ScriptedGett, answer: Any, message: str) -> None:
    server.answers[("GET", "/1/files/abc/0")] = answer
    client = make_client(server)
    try:
        with pytest.raises(ProtocolError) as failure:
            client.get_file("abc", "0")
        assert str(failure.value) == f"GET /1/files/abc/0: {message}"
    finally:
        client.close()


@pytest.mark.parametrize(
    "field, value",
    [
        ("accesstoken", HUGE),  # was kept: every later request failed (HTTP 414), the redactor slowed to a crawl
        ("accesstoken", "a.0101\r\nX-Forged: 1"),
        ("accesstoken", 12345),
        ("refreshtoken", "r.0101 with spaces"),
        ("expires", float("nan")),
        ("expires", -5),
        ("user", None),
    ],
)
def test_a_login_answer_is_kept_only_when_all_of_it_is_right(server: ScriptedGett, field: str, value: Any) -> None:
    server.answers[("POST", "/1/users/login")] = {**LOGIN, field: value}
    client = make_client(server)
    try:
        with pytest.raises(ProtocolError, match=f"^POST /1/users/login: {field}") as failure:
            client.login()
        assert len(str(failure.value)) <= 500 and "\n" not in str(failure.value)
        assert "X-Forged" not in str(failure.value)  # a token is never quoted
        server.answers[("POST", "/1/users/login")] = LOGIN
        assert client.access_token() == LOGIN["accesstoken"]  # nothing of the bad answer was kept
    finally:
        client.close()


def test_upload_urls_are_http_urls_and_never_quoted(server: ScriptedGett) -> None:
    signed = "javascript:alert(1)?sig=0123456789abcdef"
    server.answers[("GET", "/1/files/abc/0/upload")] = {"puturl": signed, "posturl": signed}
    client = make_client(server)
    try:
        with pytest.raises(ProtocolError) as failure:
            client.upload_url("abc", "0")
        assert str(failure.value) == "GET /1/files/abc/0/upload: upload.puturl: expected an http(s) URL"
    finally:
        client.close()


@pytest.mark.parametrize("sharename", ["abc\n", "abc\r\n", "a/b", "", "x" * 65])
def test_a_share_name_is_refused_as_an_argument_and_from_the_service_alike(
    server: ScriptedGett, sharename: str
) -> None:
    from platypush_ext.core.errors import InvalidArgumentError
    from platypush_ext.gett.checks import check_sharename

    with pytest.raises(InvalidArgumentError):
        check_sharename(sharename)  # a trailing line break passed (re.match with $)
    server.answers[("GET", "/1/shares/abc")] = {"sharename": sharename, "files": []}
    client = make_client(server)
    try:
        with pytest.raises(ProtocolError, match="^GET /1/shares/abc: share.sharename: "):
            client.get_share("abc")
    finally:
        client.close()
