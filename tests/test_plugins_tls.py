"""Issue 21: every plugin takes ``verify``, ``client_cert`` / ``client_key`` and ``proxy`` (one
:class:`~platypush_ext.core.transport.Transport`, through ``ServicePlugin._set_transport``): Ge.tt,
NikDev and mbed (its HTTP requests and its WebSocket channel) each behind an HTTPS reverse proxy
with its own CA requiring a client certificate, reached through an HTTP forward proxy that counts
what went through it. (Pushjet's own tests: ``tests/pushjet/test_tls.py``.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from platypush_ext.core.errors import InvalidArgumentError
from platypush_ext.gett.plugin import GettPlugin
from platypush_ext.mbed.events import MbedConnectedEvent, MbedNotificationEvent
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.nikdev.plugin import NikdevPlugin
from platypush_ext.sandbox.gett import GettServer
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer
from tests.mbed.support import KEY, run
from tests.proxies import Certs, ForwardProxy, TlsReverseProxy, make_certs
from tests.support import RecordingBus


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def forward() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    yield proxy
    proxy.stop()


@pytest.fixture
def https(certs: Certs) -> Iterator[Any]:
    """``https(server)``: an HTTPS reverse proxy (mutual TLS) in front of a sandbox; its URL."""
    started: list[TlsReverseProxy] = []

    def front(server: Any) -> TlsReverseProxy:
        proxy = TlsReverseProxy(certs, {"/": server.url + "/"}, client_ca=certs.ca)
        started.append(proxy)
        return proxy

    yield front
    for proxy in started:
        proxy.stop()


def settings(certs: Certs, forward: ForwardProxy) -> dict[str, Any]:
    return {"verify": certs.ca, "client_cert": certs.client_cert, "client_key": certs.client_key, "proxy": forward.url}


def ok(response: Any) -> Any:
    assert response.errors == [], response.errors
    return response.output


def test_gett(start_server: Any, https: Any, certs: Certs, forward: ForwardProxy, bus: RecordingBus) -> None:
    server = start_server(GettServer)
    proxy = https(server)
    plugin = GettPlugin(
        base_url=proxy.url + "/1/",
        api_key=server.apikey,
        email=server.email,
        password=server.password,
        **settings(certs, forward),
    )
    try:
        share = ok(plugin.create_share(title="over TLS"))
        assert ok(plugin.get_share(sharename=share["sharename"]))["title"] == "over TLS"
    finally:
        plugin.stop()
    assert forward.count("CONNECT") >= 1 and {t for _, t in forward.requests} == {f"127.0.0.1:{proxy.port}"}
    assert any(method == "POST" and "/shares/create" in path for method, path, _ in proxy.requests)


def test_nikdev(
    start_server: Any, https: Any, certs: Certs, forward: ForwardProxy, workdir: str, bus: RecordingBus
) -> None:
    server = start_server(NikdevServer)
    proxy = https(server)
    plugin = NikdevPlugin(
        base_url=proxy.url + "/api/v1/",
        device_id=DEFAULT_DEVICE_ID,
        api_key=DEFAULT_API_KEY,
        **settings(certs, forward),
    )
    assert ok(plugin.commit_and_push(values={"temp": 21.5}))["pushed"] == 1
    assert server.entries()[0]["values"] == [{"temp": 21.5}]
    assert forward.count("CONNECT") >= 1


def test_nikdev_without_the_client_certificate_names_the_handshake(
    start_server: Any, https: Any, certs: Certs, workdir: str, bus: RecordingBus
) -> None:
    proxy = https(start_server(NikdevServer))
    plugin = NikdevPlugin(
        base_url=proxy.url + "/api/v1/", device_id=DEFAULT_DEVICE_ID, api_key=DEFAULT_API_KEY, verify=certs.ca
    )
    answer = plugin.commit_and_push(values={"temp": 21.5})
    text = str(answer.output) + str(answer.errors)
    assert f"the TLS handshake with 127.0.0.1:{proxy.port} failed" in text and "client_cert" in text, text
    assert "cannot reach" not in text


@pytest.mark.usefixtures("workdir", "entity_registry_redis")
@pytest.mark.parametrize(
    ("channel", "path"), [("websocket", "/v2/notification/websocket-connect"), ("long_poll", "/v2/notification/pull")]
)
def test_mbed_requests_and_channel(
    start_server: Any, https: Any, certs: Certs, forward: ForwardProxy, bus: RecordingBus, channel: str, path: str
) -> None:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5, demo_devices=True)
    proxy = https(server)
    mbed = MbedPlugin(
        base_url=proxy.url,
        api_key=KEY,
        channel=channel,
        api="pelion" if channel == "websocket" else "connector",
        **{"connect_timeout": 2, "read_timeout": 5, "async_timeout": 5, "retries": 1, "entities_enabled": False},
        **settings(certs, forward),
    )
    mbed.start()
    try:
        bus.wait_for(MbedConnectedEvent, timeout=15)
        assert run(mbed, "get_resource_value", endpoint="node-001", path="/3/0/1") == ("Mbed", [])
        run(mbed, "subscribe", endpoint="temp-sensor-01", path="/3303/0/5700")
        server.set_value("temp-sensor-01", "/3303/0/5700", "18.0")
        assert bus.wait_for(MbedNotificationEvent)[0].args["value"] == "18.0"
    finally:
        mbed.stop()
    where = {(method, target.split("?")[0]) for method, target, _ in proxy.requests}
    assert ("GET", path) in where  # the channel came through the front
    assert forward.count("CONNECT") >= 2 and {t for _, t in forward.requests} == {f"127.0.0.1:{proxy.port}"}


@pytest.mark.parametrize("plugin", [GettPlugin, NikdevPlugin])
def test_settings_are_refused_at_start_up_naming_the_plugin(plugin: type, workdir: str) -> None:
    name = plugin.__name__.removesuffix("Plugin").lower()
    base = {"base_url": "https://127.0.0.1:1/"}
    extra = {"device_id": DEFAULT_DEVICE_ID, "api_key": DEFAULT_API_KEY} if plugin is NikdevPlugin else {}
    with pytest.raises(InvalidArgumentError, match=f"^{name}: client_cert: no such file"):
        plugin(**base, **extra, client_cert="/nonexistent/client.pem")
