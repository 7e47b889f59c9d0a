"""Issue 21: a Pushjet server behind an HTTPS reverse proxy with the home's own CA and basic auth
(the API under ``/api/``, the connector under ``/ws``, as nginx publishes them), and an HTTP forward
proxy: the plugin in-process (a recording bus), its API and its realtime connector alike."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from platypush_ext.core.errors import InvalidArgumentError, ServiceTLSError
from platypush_ext.pushjet.events import (
    PushjetAuthFailedEvent,
    PushjetConnectedEvent,
    PushjetDisconnectedEvent,
    PushjetMessageEvent,
)
from platypush_ext.pushjet.plugin import PushjetPlugin
from platypush_ext.pushjet.realtime import RealtimeChannel, RealtimeTLSError
from platypush_ext.sandbox.pushjet import PushjetServer
from tests.proxies import Certs, ForwardProxy, TlsReverseProxy, make_certs
from tests.support import wait_until

pytestmark = pytest.mark.sandbox(cls=PushjetServer)

USER, PASSWORD = "home", "Sésame-0uvre-toi:42"
SECRETS = (PASSWORD, f"{USER}:{PASSWORD}")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def proxy(server: PushjetServer, certs: Certs) -> Iterator[TlsReverseProxy]:
    routes = {"/api/": server.base_url, "/ws": server.realtime_url.replace("ws://", "http://")}
    proxy = TlsReverseProxy(certs, routes, auth=(USER, PASSWORD))
    yield proxy
    proxy.stop()


@pytest.fixture
def make_plugin(workdir: str, bus: Any, monkeypatch: pytest.MonkeyPatch, proxy: TlsReverseProxy, certs: Certs):
    monkeypatch.setattr(PushjetPlugin, "MIN_POLL_INTERVAL", 0.2)
    monkeypatch.setattr(PushjetPlugin, "BACKOFF_BASE", 0.05)
    monkeypatch.setattr(PushjetPlugin, "REALTIME_BACKOFF_CAP", 0.4)
    made = []

    def make(device: str, alerts: Any, **config: Any) -> PushjetPlugin:
        config = {
            "base_url": proxy.url + "/api/",
            "realtime_url": proxy.url.replace("https://", "wss://") + "/ws",
            "devices": [device],
            "services": {"alerts": {"secret": alerts.secret_key}},
            "poll_interval": 0.5,
            "retries": 0,
            "verify": certs.ca,
            "username": USER,
            "password": PASSWORD,
            **config,
        }
        plugin = PushjetPlugin(**{k: v for k, v in config.items() if v is not None})
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.stop()


def texts(bus: Any) -> list[str]:
    return [e.args["message"] for e in bus.of(PushjetMessageEvent)]


def path(plugin: PushjetPlugin) -> str:
    return plugin.status().output["path"]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        for form in (secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()):
            assert form not in text, f"{form!r} leaked"


def test_send_and_listen_through_the_https_proxy_on_the_connector_then_polling(
    make_plugin, bus, server, proxy, remote, alerts, device
):
    plugin = make_plugin(device, alerts)
    plugin.start()
    wait_until(lambda: path(plugin) == "realtime")
    assert plugin.send(service="alerts", message="pushed").output == {"sent": True}
    wait_until(lambda: texts(bus) == ["pushed"])
    server.connector.stop()
    wait_until(lambda: path(plugin) == "polling")
    assert plugin.send(service="alerts", message="polled").output == {"sent": True}
    wait_until(lambda: texts(bus) == ["pushed", "polled"])
    seen = {(method, where.split("?")[0]) for method, where, _ in proxy.requests}
    assert {("POST", "/message"), ("GET", "/message"), ("GET", "/")} <= seen  # the API and the connector
    assert [status for *_, status in proxy.requests if status] == []  # nothing refused: auth on everything
    assert bus.of(PushjetDisconnectedEvent)[0].args["path"] == "realtime"


def test_an_untrusted_certificate_says_so_in_the_action_and_the_events(make_plugin, bus, alerts, device, proxy):
    plugin = make_plugin(device, alerts, verify=None)  # the system's CAs: they do not know the home CA
    answer = plugin.send(service="alerts", message="x")
    host = f"127.0.0.1:{proxy.port}"
    assert answer.errors == [
        f"POST /api/message: the certificate of {host} was not trusted: unable to get local issuer "
        "certificate; set `verify` to your CA file"
    ]
    plugin.start()
    down = {e.args["path"]: e.args["error"] for e in bus.wait_for(PushjetDisconnectedEvent, 2, timeout=15)}
    assert "GET /api/message: the certificate of" in down["polling"]
    assert f"Pushjet connector wss://{host}/ws: the certificate of {host} was not trusted" in down["realtime"]
    assert bus.of(PushjetConnectedEvent) == []


def test_without_basic_auth_the_proxy_refuses_and_no_secret_is_anywhere(
    make_plugin, bus, alerts, device, proxy, caplog
):
    caplog.set_level(logging.DEBUG)
    plugin = make_plugin(device, alerts, password="wr0ng-" + PASSWORD)
    answer = plugin.send(service="alerts", message="x")
    assert answer.errors == ["POST /api/message: HTTP 401"]
    plugin.start()
    refused = {e.args["path"]: e.args["error"] for e in bus.wait_for(PushjetAuthFailedEvent, 2, timeout=15)}
    assert "401" in refused["realtime"] and "HTTP 401" in refused["polling"]  # the credentials, not an outage
    assert not [e for e in bus.events if isinstance(e, PushjetDisconnectedEvent)]
    wrong = "wr0ng-" + PASSWORD
    everything = caplog.text + str(answer) + str([str(e) for e in bus.events]) + repr(plugin) + str(plugin.status())
    assert_no_secret(everything.replace(wrong, "<the wrong one, checked below>"))
    for form in (wrong, quote(wrong, safe=""), base64.b64encode(f"{USER}:{wrong}".encode()).decode()):
        assert form not in everything


def test_an_https_proxy_is_fine_without_the_connector(make_plugin, alerts, device):
    plugin = make_plugin(device, alerts, realtime_url=None, proxy="https://127.0.0.1:3128")
    assert plugin._client.http.session.proxies == {"http": "https://127.0.0.1:3128", "https": "https://127.0.0.1:3128"}


def test_verify_false_is_a_warning_at_start_up(make_plugin, alerts, device, caplog):
    caplog.set_level(logging.WARNING)
    make_plugin(device, alerts, verify=False)
    assert "pushjet: verify is false: the server's TLS certificate is not checked" in caplog.text


def test_the_realtime_channel_raises_a_tls_error(proxy):
    channel = RealtimeChannel(
        proxy.url.replace("https://", "wss://") + "/ws",
        "0f1e2d3c-4b5a-4697-8899-aabbccddeeff",
        lambda *_: None,
        lambda: None,
        connect_timeout=3,
    )
    with pytest.raises(RealtimeTLSError) as caught:
        channel.step()
    assert isinstance(caught.value, ServiceTLSError) and "set `verify` to your CA file" in str(caught.value)


def test_everything_through_a_forward_proxy(make_plugin, bus, proxy, alerts, device):
    forward = ForwardProxy()
    try:
        plugin = make_plugin(device, alerts, proxy=forward.url)
        plugin.start()
        wait_until(lambda: path(plugin) == "realtime")
        plugin.send(service="alerts", message="via the proxy")
        wait_until(lambda: texts(bus) == ["via the proxy"])
        # the API's requests and the connector's WebSocket each tunnelled through it
        assert forward.count("CONNECT") >= 2 and {t for _, t in forward.requests} == {f"127.0.0.1:{proxy.port}"}
    finally:
        forward.stop()


@pytest.mark.parametrize(
    ("config", "text"),
    [
        ({"verify": "/nonexistent/home-ca.pem"}, "pushjet: verify (true, false, or the path of a CA bundle): no such"),
        ({"proxy": "https://127.0.0.1:3128"}, "a WebSocket connection goes through an http:// proxy only"),
        ({"password": None}, "pushjet: password must be a string"),
        ({"headers": {"X-A": "1\n2"}}, "pushjet: headers.X-A must be one line"),
    ],
)
def test_settings_are_refused_at_start_up(make_plugin, alerts, device, config, text):
    with pytest.raises(InvalidArgumentError, match=None) as caught:
        make_plugin(device, alerts, **config)
    assert text in str(caught.value)
    assert_no_secret(str(caught.value))
