"""Issue 21: TLS, proxies, basic auth and extra headers (``core.transport``) for the HTTP client and
the WebSocket client, against local servers: an HTTPS reverse proxy with its own CA (and basic auth,
and mutual TLS), a self-signed server, a plain-HTTP server, an HTTP forward proxy that counts
requests. Certificates are generated per session in a temporary folder."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import websocket

from platypush_ext.core.errors import (
    AuthError,
    InvalidArgumentError,
    NotFoundError,
    ServiceConnectionError,
    ServiceError,
    ServiceTLSError,
)
from platypush_ext.core.http import HttpClient, Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.core.transport import Transport, tls_failure
from platypush_ext.core.wsclient import connect
from platypush_ext.sandbox.core import SandboxServer, json_response
from platypush_ext.sandbox.ports import free_port
from platypush_ext.sandbox.pushjet import PushjetServer
from tests.proxies import Certs, ForwardProxy, TlsReverseProxy, make_certs

PASSWORD = "pa:ss w0rd/ü+%"  # every character that quoting and base64 would change
TOKEN = "Tok-3n-0123456789abcdef"
NO_RETRY = RetryPolicy(attempts=1)


class HeadersServer(SandboxServer):
    """Answers the headers it received (to see what reached the backend through a proxy)."""

    name = "headers"

    def setup_routes(self) -> None:
        self.route("GET", "/headers", lambda r: json_response({k.lower(): v for k, v in r.headers.items()}))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def backend() -> Iterator[HeadersServer]:
    server = HeadersServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_proxy(certs: Certs, backend: HeadersServer) -> Iterator[TlsReverseProxy]:
    proxy = TlsReverseProxy(certs, {"/": backend.url + "/"}, auth=("alice", PASSWORD))
    yield proxy
    proxy.stop()


@pytest.fixture
def forward() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    yield proxy
    proxy.stop()


def client(url: str, **settings: Any) -> HttpClient:
    return HttpClient(url, retry=NO_RETRY, timeouts=Timeouts(3, 5), transport=Transport.checked(**settings))


# -- the settings, checked -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "text"),
    [
        ({"verify": "/nonexistent/ca.pem"}, "verify (true, false, or the path of a CA bundle): no such file"),
        ({"verify": 3}, "verify (true, false, or the path of a CA bundle) must be the path of a file"),
        ({"client_cert": "/nonexistent/cert.pem"}, "client_cert: no such file"),
        ({"client_key": "{ca}"}, "client_key needs client_cert"),
        ({"client_cert": "{ca}"}, "client_cert / client_key: cannot load the certificate and its key"),
        ({"client_cert": "{client_cert}", "client_key": "{server_key}"}, "cannot load the certificate and its key"),
        (
            {"client_cert": "{encrypted_cert}", "client_key": "{encrypted_key}"},
            "client_cert / client_key: the key is protected by a passphrase",
        ),
        ({"proxy": "socks5://127.0.0.1:1080"}, "proxy must be an http:// or https:// URL"),
        ({"proxy": "http://"}, "proxy must be an http:// or https:// URL"),
        ({"proxy": "http://proxy:port"}, "proxy: the port is not a number"),
        ({"username": "a:b", "password": "x"}, "username must be a non-empty string without ':'"),
        ({"password": "x"}, "username must be a non-empty string"),
        ({"username": "alice"}, "password must be a string"),
        ({"headers": ["X-A: 1"]}, "headers must be a mapping"),
        ({"headers": {"X A": "1"}}, "is not a header name"),
        ({"headers": {"X-A": "1\r\nX-Injected: 2"}}, "headers.X-A must be one line"),
    ],
)
def test_each_setting_is_checked_in_one_line(certs: Certs, settings: dict[str, Any], text: str) -> None:
    settings = {k: v.format(**vars(certs)) if isinstance(v, str) else v for k, v in settings.items()}
    with pytest.raises(InvalidArgumentError) as caught:
        Transport.checked(**settings)
    assert text in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("verify", [True, False, "true", "False"])
def test_verify_takes_booleans_as_yaml_may_give_them(verify: Any) -> None:
    assert Transport.checked(verify=verify).verify is (str(verify).lower() == "true")


def test_a_ca_folder_is_accepted(certs: Certs) -> None:
    assert Transport.checked(verify=os.path.dirname(certs.ca)).verify == os.path.dirname(certs.ca)


# -- TLS -------------------------------------------------------------------------------------------


def test_a_server_with_its_own_ca_is_reached_with_verify_set_to_the_ca(
    certs: Certs, tls_proxy: TlsReverseProxy
) -> None:
    http = client(tls_proxy.url, verify=certs.ca, username="alice", password=PASSWORD)
    assert (
        http.request_json("GET", "headers")["authorization"]
        == "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    )


def test_a_refused_certificate_is_its_own_error_never_cannot_reach(tls_proxy: TlsReverseProxy) -> None:
    http = client(tls_proxy.url)  # the system's CAs: they do not know the test CA
    with pytest.raises(ServiceTLSError) as caught:
        http.request("GET", "headers")
    text = str(caught.value)
    assert text == (
        f"GET /headers: the certificate of 127.0.0.1:{tls_proxy.port} was not trusted: "
        "unable to get local issuer certificate; set `verify` to your CA file"
    )
    assert "cannot reach" not in text and not caught.value.transient


def test_a_refused_certificate_is_not_retried(tls_proxy: TlsReverseProxy) -> None:
    http = HttpClient(tls_proxy.url, retry=RetryPolicy(attempts=3), transport=Transport.checked())
    before = tls_proxy.accepted
    with pytest.raises(ServiceTLSError):
        http.request("GET", "headers")
    assert tls_proxy.accepted - before == 1


def test_a_self_signed_certificate_is_named(certs: Certs, backend: HeadersServer) -> None:
    proxy = TlsReverseProxy(
        certs, {"/": backend.url + "/"}, certificate=(certs.self_signed_cert, certs.self_signed_key)
    )
    try:
        with pytest.raises(ServiceTLSError, match="was not trusted: self-signed certificate; set `verify`"):
            client(proxy.url, verify=certs.ca).request("GET", "headers")
        assert "host" in client(proxy.url, verify=certs.self_signed_cert).request_json("GET", "headers")
    finally:
        proxy.stop()


def test_a_certificate_for_another_name_is_named(certs: Certs, backend: HeadersServer) -> None:
    proxy = TlsReverseProxy(certs, {"/": backend.url + "/"}, certificate=(certs.client_cert, certs.client_key))
    try:
        with pytest.raises(ServiceTLSError, match="was not trusted: .*(IP address mismatch|purpose)"):
            client(proxy.url, verify=certs.ca).request("GET", "headers")
    finally:
        proxy.stop()


def test_verify_false_accepts_any_certificate(tls_proxy: TlsReverseProxy) -> None:
    http = client(tls_proxy.url, verify=False, username="alice", password=PASSWORD)
    assert http.request_json("GET", "headers")["host"]


def test_https_to_a_plain_http_server_says_what_answered(backend: HeadersServer) -> None:
    with pytest.raises(ServiceTLSError, match=r"the TLS handshake with 127\.0\.0\.1:\d+ failed: .*is it an https://"):
        client(f"https://127.0.0.1:{backend.port}").request("GET", "headers")


def test_mutual_tls(certs: Certs, backend: HeadersServer) -> None:
    proxy = TlsReverseProxy(certs, {"/": backend.url + "/"}, client_ca=certs.ca)
    try:
        with pytest.raises(ServiceTLSError, match="TLS handshake with .* failed.*client_cert"):
            client(proxy.url, verify=certs.ca).request("GET", "headers")
        mutual = client(proxy.url, verify=certs.ca, client_cert=certs.client_cert, client_key=certs.client_key)
        assert mutual.request_json("GET", "headers")["host"]
    finally:
        proxy.stop()


def test_a_refused_connection_is_still_cannot_reach() -> None:
    http = client(f"https://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceConnectionError, match="cannot reach .*connection refused") as caught:
        http.request("GET", "headers")
    assert not isinstance(caught.value, ServiceTLSError) and tls_failure(caught.value) is None


# -- basic auth and headers ------------------------------------------------------------------------


def test_wrong_basic_auth_is_an_auth_error_without_the_password(certs: Certs, tls_proxy: TlsReverseProxy) -> None:
    wrong = "Wr0ng-" + PASSWORD
    http = client(tls_proxy.url, verify=certs.ca, username="alice", password=wrong)
    with pytest.raises(AuthError, match="HTTP 401") as caught:
        http.request("GET", "headers")
    assert_no_secret(str(caught.value) + repr(http) + repr(http.transport), wrong, f"alice:{wrong}")


def test_extra_headers_reach_the_server_and_secret_ones_are_masked(certs: Certs, tls_proxy: TlsReverseProxy) -> None:
    headers = {"X-Tenant": "home", "X-Auth-Token": TOKEN}
    http = client(tls_proxy.url, verify=certs.ca, username="alice", password=PASSWORD, headers=headers)
    seen = http.request_json("GET", "headers")
    assert seen["x-tenant"] == "home" and seen["x-auth-token"] == TOKEN
    assert http.redactor.text(f"token {TOKEN}, tenant home") == "token ***, tenant home"


def assert_no_secret(text: str, *secrets: str) -> None:
    """None of ``secrets`` in ``text``: raw, percent-encoded or base64."""
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()):
            assert form not in text, f"{form!r} leaked"


def test_every_secret_of_the_settings_is_masked(certs: Certs) -> None:
    proxy_password = "pr0xy-s3cret"
    transport = Transport.checked(
        username="alice",
        password=PASSWORD,
        proxy=f"http://bob:{proxy_password}@127.0.0.1:3128",
        headers={"X-Api-Key": TOKEN},
    )
    http = HttpClient("https://127.0.0.1:1/", transport=transport)
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    text = f"{PASSWORD} {quote(PASSWORD, safe='')} {token} {proxy_password} {TOKEN}"
    assert http.redactor.text(text) == "*** *** *** *** ***"
    assert_no_secret(repr(transport) + repr(http), PASSWORD, proxy_password, TOKEN)


# -- proxies ---------------------------------------------------------------------------------------


def test_an_https_service_through_a_forward_proxy(
    certs: Certs, tls_proxy: TlsReverseProxy, forward: ForwardProxy
) -> None:
    http = client(tls_proxy.url, verify=certs.ca, username="alice", password=PASSWORD, proxy=forward.url)
    for _ in range(3):
        assert http.request_json("GET", "headers")["host"]
    assert forward.requests == [("CONNECT", f"127.0.0.1:{tls_proxy.port}")] * 3


def test_an_http_service_through_a_forward_proxy(backend: HeadersServer, forward: ForwardProxy) -> None:
    seen = client(backend.url, proxy=forward.url).request_json("GET", "headers")
    assert seen["connection"] == "close"  # the proxy's (it forwarded the request)
    assert forward.requests == [("GET", f"{backend.url}/headers")]


def test_the_environment_proxy_still_applies_without_proxy(
    backend: HeadersServer, forward: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", forward.url)
    client(backend.url, verify=True).request_json("GET", "headers")
    assert forward.count("GET") == 1


def test_a_proxy_with_credentials(backend: HeadersServer) -> None:
    secret = "pr0xy-pa ss"
    proxy = ForwardProxy(auth=("bob", secret))
    try:
        good = client(backend.url, proxy=f"http://bob:{quote(secret)}@127.0.0.1:{proxy.port}")
        assert good.request_json("GET", "headers")["host"]
        wrong = client(backend.url, proxy=f"http://bob:{quote('x' + secret)}@127.0.0.1:{proxy.port}")
        with pytest.raises(ServiceError) as caught:
            wrong.request_json("GET", "headers")
        assert "407" in str(caught.value) and proxy.refused == 1 and proxy.count() == 1
        assert_no_secret(str(caught.value), secret, "x" + secret)
    finally:
        proxy.stop()


def test_a_proxy_refusing_connect_is_named(certs: Certs, tls_proxy: TlsReverseProxy) -> None:
    proxy = ForwardProxy(auth=("bob", "pr0xy-pass"))
    try:
        http = client(tls_proxy.url, verify=certs.ca, proxy=f"http://bob:wr0ng-pass@127.0.0.1:{proxy.port}")
        with pytest.raises(ServiceConnectionError) as caught:
            http.request("GET", "headers")
        text = str(caught.value)
        assert "through the proxy http://bob:***@127.0.0.1" in text and "it answered 407" in text
        assert "wr0ng-pass" not in text
    finally:
        proxy.stop()


def test_an_unreachable_proxy_is_named(backend: HeadersServer) -> None:
    with pytest.raises(ServiceConnectionError, match=r"through the proxy http://127\.0\.0\.1:\d+ \(the proxy refused"):
        client(f"https://127.0.0.1:{backend.port}", proxy=f"http://127.0.0.1:{free_port()}").request("GET", "h")


# -- the WebSocket client --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushjet(certs: Certs) -> Iterator[tuple[PushjetServer, TlsReverseProxy]]:
    server = PushjetServer().start()
    proxy = TlsReverseProxy(certs, {"/ws": server.realtime_url.replace("ws://", "http://")}, auth=("alice", PASSWORD))
    yield server, proxy
    proxy.stop()
    server.stop()


def ws_url(proxy: TlsReverseProxy) -> str:
    return proxy.url.replace("https://", "wss://") + "/ws"


def test_a_websocket_with_its_own_ca_basic_auth_and_a_forward_proxy(
    certs: Certs, pushjet: tuple[PushjetServer, TlsReverseProxy], forward: ForwardProxy
) -> None:
    _, proxy = pushjet
    transport = Transport.checked(verify=certs.ca, username="alice", password=PASSWORD, proxy=forward.url)
    ws = connect(ws_url(proxy), 5, **transport.ws_options())
    try:
        ws.send("0f1e2d3c-4b5a-4697-8899-aabbccddeeff")
        assert json.loads(ws.recv()) == {"status": "ok"}
    finally:
        ws.close()
    assert forward.requests == [("CONNECT", f"127.0.0.1:{proxy.port}")]


def test_a_websocket_to_an_untrusted_certificate_fails_as_tls(pushjet: tuple[PushjetServer, TlsReverseProxy]) -> None:
    with pytest.raises((websocket.WebSocketException, OSError)) as caught:
        connect(ws_url(pushjet[1]), 5, **Transport.checked().ws_options())
    assert tls_failure(caught.value) is not None


def test_a_websocket_without_basic_auth_is_refused(
    certs: Certs, pushjet: tuple[PushjetServer, TlsReverseProxy]
) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException, match="401"):
        connect(ws_url(pushjet[1]), 5, **Transport.checked(verify=certs.ca).ws_options())


def test_a_websocket_cannot_use_an_https_proxy() -> None:
    with pytest.raises(InvalidArgumentError, match="http:// proxy only"):
        Transport.checked(proxy="https://127.0.0.1:3128").ws_options()


def test_ws_options_of_the_default_settings_change_nothing() -> None:
    assert Transport.checked().ws_options() == {}
    assert Transport.checked().ws_options(["A: b"]) == {"header": ["A: b"]}


def test_an_error_answer_through_the_tls_proxy_is_the_services_own(certs: Certs, tls_proxy: TlsReverseProxy) -> None:
    http = client(tls_proxy.url, verify=certs.ca, username="alice", password=PASSWORD)
    with pytest.raises(NotFoundError, match=r"GET /no-such-path\?x=1: HTTP 404: 404 Not Found"):
        http.request("GET", "no-such-path?x=1")


def test_certificates_are_generated_not_committed(certs: Certs) -> None:
    root = Path(__file__).resolve().parents[1]
    assert not Path(certs.ca).resolve().is_relative_to(root)
