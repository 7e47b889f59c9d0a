"""What the client sends, as the server sees it: never ``HEAD /message``.

Upstream, ``HEAD /message`` runs the ``GET`` handler and marks the device's messages read
(``protocols/pushjet.md`` §12), so a client that probed the route with ``HEAD`` would lose them.
The sandbox does the same (``docs/pushjet.md``); these tests drive every method of the client,
every action of the plugin and its listener (polling, the connector, their faults) against it
and check every request it saw."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.pushjet.events import PushjetConnectedEvent, PushjetDisconnectedEvent, PushjetMessageEvent
from platypush_ext.pushjet.plugin import PushjetPlugin
from platypush_ext.sandbox.pushjet import PushjetServer
from tests.support import wait_until

pytestmark = pytest.mark.sandbox(cls=PushjetServer)

#: The methods a Pushjet client has any use for.
USED = {"GET", "POST", "PATCH", "DELETE"}


def methods_seen(server: PushjetServer) -> set[tuple[str, str]]:
    """``(method, path)`` of every request of the Pushjet API the server saw."""
    with server.lock:
        return {(m, p) for m, p, _ in server.requests if not p.startswith("/_sandbox/")}


def check(seen: set[tuple[str, str]], server: PushjetServer | None = None) -> None:
    assert ("HEAD", "/message") not in seen
    assert {m for m, _ in seen} <= USED, sorted(seen)
    assert ("GET", "/message") in seen  # the messages were fetched: the check had something to look at
    if server is not None:  # a parameter given twice would be read by its first value upstream: never sent
        with server.lock:
            queries = [urlsplit(t).query for t in server.targets if not t.startswith("/_sandbox/")]
        for query in queries:
            names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
            assert len(names) == len(set(names)), query


def test_the_sandbox_eats_messages_on_head_as_upstream(server, remote, alerts, device):
    """Why the rule matters (and that the checks below can fail): a HEAD reads the messages."""
    remote.send(alerts.secret_key, "lost")
    with requests.head(server.base_url + "message", params={"uuid": device}, timeout=5) as head:
        assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 20
    assert remote.fetch_messages(device) == []
    with pytest.raises(AssertionError):
        check(methods_seen(server))


def test_every_client_method_and_no_head(server, remote, alerts):
    client = PushjetClient(server.base_url)
    device = str(uuid.uuid4())
    calls = {
        "create_service": lambda: client.create_service("Methods", "http://example.com/i.png"),
        "get_service": lambda: (
            client.get_service(public_key=alerts.public_key),
            client.get_service(secret_key=alerts.secret_key),
        ),
        "edit_service": lambda: client.edit_service(alerts.secret_key, name="Renamed", icon_url=""),
        "subscribe": lambda: client.subscribe(device, alerts.public_key),
        "get_subscriptions": lambda: client.get_subscriptions(device),
        "send": lambda: client.send(alerts.secret_key, "one", title="T", link="http://l/", importance=4),
        "fetch_message_payloads": lambda: client.fetch_message_payloads(device),
        "fetch_messages": lambda: (client.send(alerts.secret_key, "two"), client.fetch_messages(device)),
        "mark_read": lambda: client.mark_read(device),
        "unsubscribe": lambda: client.unsubscribe(device, alerts.public_key),
        "delete_service": lambda: client.delete_service(client.create_service("Gone").secret_key),
    }
    public = {n for n, v in vars(PushjetClient).items() if not n.startswith("_") and callable(v)}
    assert set(calls) == public, "a new client method: exercise it here"
    for call in calls.values():
        call()
    seen = methods_seen(server)
    check(seen, server)
    assert {p for _, p in seen} == {"/service", "/subscription", "/message"}


@pytest.fixture
def make_plugin(server, workdir, bus, monkeypatch):
    monkeypatch.setattr(PushjetPlugin, "MIN_POLL_INTERVAL", 0.2)
    monkeypatch.setattr(PushjetPlugin, "BACKOFF_BASE", 0.05)
    monkeypatch.setattr(PushjetPlugin, "REALTIME_BACKOFF_CAP", 0.4)
    made: list[PushjetPlugin] = []

    def make(**config) -> PushjetPlugin:
        plugin = PushjetPlugin(base_url=server.base_url, retries=1, **config)
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.stop()


def test_every_action_and_the_listener_send_no_head(make_plugin, bus, server, remote, alerts, device):
    plugin = make_plugin(devices=[device], services={"alerts": {"secret": alerts.secret_key}}, poll_interval=0.2)
    actions = {
        "create_service": lambda: plugin.create_service(name="Actions", alias="actions"),
        "get_service": lambda: plugin.get_service(service="alerts"),
        "edit_service": lambda: plugin.edit_service(service="actions", name="Renamed"),
        "subscribe": lambda: plugin.subscribe(service="actions"),
        "get_subscriptions": lambda: plugin.get_subscriptions(),
        "send": lambda: plugin.send(service="actions", message="by action"),
        "get_messages": lambda: plugin.get_messages(),
        "mark_read": lambda: plugin.mark_read(),
        "status": lambda: plugin.status(),
        "diagnostics": lambda: plugin.diagnostics(),
        "unsubscribe": lambda: plugin.unsubscribe(service="actions"),
        "delete_service": lambda: plugin.delete_service(service="actions"),
    }
    assert set(actions) == {n for n in dir(PushjetPlugin) if hasattr(getattr(PushjetPlugin, n), "wrapped")}
    for name, call in actions.items():
        assert call().errors == [], name
    # the polling listener, through an outage of the API
    plugin.start()
    bus.wait_for(PushjetConnectedEvent)
    server.faults.add("status", count=2, status=503, method="GET", path="/message")
    server.faults.add("reset", count=1, method="GET", path="/message")
    remote.send(alerts.secret_key, "polled")
    bus.wait_for(PushjetDisconnectedEvent, 1, timeout=15)
    assert [e.args["message"] for e in bus.wait_for(PushjetMessageEvent, 2, timeout=15)][-1] == "polled"
    check(methods_seen(server), server)


def test_the_listener_on_the_connector_sends_no_head(make_plugin, bus, server, remote, alerts, device):
    plugin = make_plugin(
        devices=[device],
        services={"alerts": {"secret": alerts.secret_key}},
        poll_interval=0.2,
        realtime_url=server.realtime_url,
    )
    plugin.start()
    wait_until(lambda: plugin.status().output["path"] == "realtime", timeout=15)
    remote.send(alerts.secret_key, "pushed")
    bus.wait_for(PushjetMessageEvent, 1, timeout=15)
    server.connector.fault("drop")  # back to polling until the connector is reached again
    remote.send(alerts.secret_key, "after the drop")
    wait_until(lambda: any(e.args["message"] == "after the drop" for e in bus.of(PushjetMessageEvent)), timeout=15)
    wait_until(lambda: ("GET", "/message") in methods_seen(server), timeout=15)
    check(methods_seen(server), server)
