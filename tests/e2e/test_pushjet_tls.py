"""End to end, issue 21: a real ``platypush`` process (real Redis, the installed bundle) whose
Pushjet server sits behind an HTTPS reverse proxy with the home's own CA and basic auth — the API
under ``/api/``, the connector under ``/ws``, as nginx publishes them — and reached through an HTTP
forward proxy: ``/execute pushjet.send`` works and a ``config.yaml`` hook fires for the message,
through the connector, then through polling while the connector is down; nothing is refused by the
reverse proxy, everything went through the forward proxy, and the password is nowhere in the log."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.pushjet import PushjetServer
from tests.e2e.pushjet import send_and_wait_hook, wait_path
from tests.proxies import ForwardProxy, TlsReverseProxy, make_certs

USER, PASSWORD = "home", "n0t-in-any-l0g:Ωmega"
POLL_INTERVAL = 4


@pytest.fixture(scope="module")
def env(serve: Any, launch: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server: PushjetServer = serve(PushjetServer)
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    routes = {"/api/": server.base_url, "/ws": server.realtime_url.replace("ws://", "http://")}
    reverse = TlsReverseProxy(certs, routes, auth=(USER, PASSWORD))
    forward = ForwardProxy()
    remote = PushjetClient(server.base_url)
    alerts = remote.create_service("Alerts")
    device = str(uuid.uuid4())
    remote.subscribe(device, alerts.public_key)
    config = {
        "pushjet": {
            "base_url": reverse.url + "/api/",
            "realtime_url": reverse.url.replace("https://", "wss://") + "/ws",
            "verify": certs.ca,
            "username": USER,
            "password": PASSWORD,
            "headers": {"X-Home": "platypush"},
            "proxy": forward.url,
            "devices": [device],
            "services": {"alerts": {"secret": alerts.secret_key}},
            "poll_interval": POLL_INTERVAL,
        },
        "event.hook.TlsPushjetMessage": {
            "if": {"type": "platypush_ext.pushjet.events.PushjetMessageEvent", "title": "door"},
            "then": [{"action": "variable.set", "args": {"door": "${message}"}}],
        },
    }
    platypush = launch(config, "platypush")
    yield {"platypush": platypush, "server": server, "reverse": reverse, "forward": forward}
    platypush.stop()
    reverse.stop()
    forward.stop()


def test_send_and_the_listener_on_the_connector_through_https_and_basic_auth(env: dict[str, Any]) -> None:
    platypush, reverse = env["platypush"], env["reverse"]
    wait_path(platypush, "realtime", 30)
    assert send_and_wait_hook(platypush, "opened (pushed)", 10) < 3
    assert ("GET", "/", 0) in reverse.requests  # the connector's handshake went through the reverse proxy


def test_send_and_the_listener_polling_through_https_and_basic_auth(env: dict[str, Any]) -> None:
    platypush, server, reverse = env["platypush"], env["server"], env["reverse"]
    wait_path(platypush, "realtime", 30)
    server.connector.stop()
    try:
        wait_path(platypush, "polling", 15)
        since = len(reverse.requests)
        send_and_wait_hook(platypush, "closed (polled)", POLL_INTERVAL + 10)
        polls = [r for r in reverse.requests[since:] if r[0] == "GET" and r[1].startswith("/message?")]
        assert polls, "the message did not come by polling through the reverse proxy"
    finally:
        server.connector.start()
    wait_path(platypush, "realtime", 40)


def test_nothing_was_refused_everything_went_through_the_forward_proxy_and_no_log_has_the_password(
    env: dict[str, Any],
) -> None:
    reverse, forward, platypush = env["reverse"], env["forward"], env["platypush"]
    assert reverse.requests and [r for r in reverse.requests if r[2]] == []  # no 401: basic auth on every request
    assert forward.count("CONNECT") >= 2 and {t for _, t in forward.requests} == {f"127.0.0.1:{reverse.port}"}
    log = platypush.log_path.read_text(errors="replace")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert log and PASSWORD not in log and token not in log
