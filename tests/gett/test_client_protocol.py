"""The Ge.tt client against a server that answers well-formed HTTP with ill-formed Ge.tt objects:
each one is a clear :class:`ProtocolError` naming what was wrong, never a ``KeyError`` deep inside."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from platypush_ext.gett.client import GettClient
from platypush_ext.http import ProtocolError, RetryPolicy, Timeouts
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


@pytest.fixture
def server(start_server: Any) -> ScriptedGett:
    return start_server(ScriptedGett)


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
        ("GET", "/1/shares", {"not": "a list"}, lambda c: c.get_shares(), "GET /shares: the answer is not a list"),
        (
            "GET",
            "/1/shares",
            [{"title": "x"}],
            lambda c: c.get_shares(),
            "unexpected share object from Ge.tt (KeyError('sharename'))",
        ),
        (
            "GET",
            "/1/files/abc/0",
            {"fileid": "0"},
            lambda c: c.get_file("abc", "0"),
            "unexpected file object from Ge.tt (KeyError('filename'))",
        ),
        (
            "GET",
            "/1/files/abc/0/upload",
            {"puturl": "http://127.0.0.1:1/x"},
            lambda c: c.upload_url("abc", "0"),
            "unexpected upload URLs from Ge.tt (KeyError('posturl'))",
        ),
        (
            "GET",
            "/1/users/me",
            {"fullname": "nobody"},
            lambda c: c.get_user(),
            "unexpected user object from Ge.tt (KeyError('userid'))",
        ),
        (
            "POST",
            "/1/users/login",
            {"expires": 60},
            lambda c: c.login(),
            "POST /users/login: the answer lacks an accesstoken",
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


def test_an_unreadable_expires_counts_as_a_day(server: ScriptedGett) -> None:
    server.answers[("POST", "/1/users/login")] = {**LOGIN, "expires": "soon"}
    server.answers[("GET", "/1/users/me")] = {"userid": "u1", "email": "e@x"}
    client = make_client(server)
    try:
        assert [client.get_user().email for _ in range(3)] == ["e@x"] * 3
    finally:
        client.close()
    assert [p for _, p, _ in server.requests].count("/1/users/login") == 1  # no renewal after each call
