"""A revoked key, for every plugin and listener, in-process against the sandboxes (the sandbox
revokes and restores the credentials with ``PUT /_sandbox/credentials``): one AuthFailed event per
transition, ``status`` names the refusal and since when, the listener retries rarely (at most 3
requests in the first ``auth_retry_window`` seconds, then one per ``auth_retry_interval``) and
recovers by itself with the connected event; one warning per transition. The windows are short
here (3 s / 4 s); ``test_mbed_before_and_after_in_the_first_30_seconds`` measures the defaults."""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from platypush_ext.core.backoff import Backoff
from platypush_ext.core.errors import AuthError
from platypush_ext.gett.events import GettAuthFailedEvent
from platypush_ext.gett.plugin import GettPlugin
from platypush_ext.mbed.channels import LongPollChannel, WebSocketChannel
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.events import MbedAuthFailedEvent, MbedConnectedEvent, MbedDisconnectedEvent
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.nikdev.events import (
    NikdevAuthFailedEvent,
    NikdevConnectedEvent,
    NikdevDeadLetteredEvent,
    NikdevEntriesPushedEvent,
)
from platypush_ext.nikdev.plugin import NikdevPlugin
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.pushjet.events import PushjetAuthFailedEvent, PushjetConnectedEvent, PushjetDisconnectedEvent
from platypush_ext.pushjet.plugin import PushjetPlugin
from platypush_ext.sandbox.core import SandboxServer
from platypush_ext.sandbox.gett import GettServer
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer
from platypush_ext.sandbox.pushjet import PushjetServer
from tests.support import RecordingBus, wait_until

KEY = "revocable-mbed-key-5150"
#: The short schedule of these tests: 3 requests in 3 s, then one per 4 s (3.6–4 s with jitter).
WINDOW, INTERVAL = 3.0, 4.0
SHORT = {"auth_retry_window": WINDOW, "auth_retry_interval": INTERVAL}

pytestmark = pytest.mark.usefixtures("workdir")


def revoke(server: SandboxServer, revoked: bool = True) -> None:
    """Revoke (or restore) the sandbox's credentials over its control API."""
    answer = requests.put(f"{server.url}/_sandbox/credentials", json={"revoked": revoked}, timeout=5)
    assert answer.json() == {"revoked": revoked}


def refusals(server: SandboxServer) -> list[float]:
    """When (seconds, monotonic) the server answered 401 or 403, from its recording."""
    return [a.at / 1e9 for a in list(server.recording or []) if a.status in (401, 403)]


def assert_rare(times: list[float]) -> None:
    """The schedule's shape: at most 3 requests in the window after the first refusal, the
    second and third after about a third and a half of it, the later ones an interval apart."""
    first = times[0]
    assert len([t for t in times if t - first < WINDOW]) <= 3, times
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= WINDOW / 3 - 0.05 and gaps[1] >= WINDOW / 2 - 0.05, gaps
    assert all(g >= 0.9 * INTERVAL - 0.05 for g in gaps[2:]), gaps


def rejected(status: dict[str, Any]) -> dict[str, str]:
    """``status``'s ``credentials_rejected``, its time checked (ISO 8601, UTC, not in the future)."""
    refusal = status["credentials_rejected"]
    assert refusal is not None, status
    since = datetime.datetime.fromisoformat(refusal["since"])
    assert since.utcoffset() == datetime.timedelta(0) and since.timestamp() <= time.time() + 1
    return refusal


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


@pytest.mark.parametrize(
    "cls, request_, expected",
    [
        (MbedServer, ("GET", "v2/endpoints", None), (401, "Unauthorized")),
        (NikdevServer, ("POST", "data", b"{}"), (401, '{"message":"Invalid API key"}')),
        (GettServer, ("GET", "users/me?accesstoken=x", None), (401, '{"error":"invalid accesstoken"}')),
        (GettServer, ("POST", "users/login", b'{"refreshtoken": "r"}'), (403, '{"error":"invalid refreshtoken"}')),
        (GettServer, ("POST", "users/login", b'{"apikey": "k"}'), (403, '{"error":"invalid apikey"}')),
        (PushjetServer, ("GET", "message?uuid=x", None), (401, "<title>401 Unauthorized</title>")),
    ],
    ids=["mbed", "nikdev", "gett-token", "gett-refresh", "gett-apikey", "pushjet"],
)
def test_each_sandbox_refuses_revoked_credentials_as_its_service_and_accepts_them_again(
    start_server: Callable[..., Any], cls: type, request_: tuple[str, str, bytes | None], expected: tuple[int, str]
) -> None:
    server = start_server(cls)
    method, path, body = request_
    headers = {"Authorization": f"Bearer {getattr(server, 'api_key', '')}", "Content-Type": "application/json"}

    def answer() -> requests.Response:
        return requests.request(method, server.base_url + path, data=body, headers=headers, timeout=5)

    before = answer().status_code
    revoke(server)
    refused = answer()
    assert (refused.status_code, expected[1] in refused.text) == (expected[0], True), refused.text
    revoke(server, False)
    assert answer().status_code == before
    bad = requests.put(f"{server.url}/_sandbox/credentials", json={"revoked": "yes"}, timeout=5)
    assert bad.status_code == 400 and "revoked" in bad.json()["error"]


# -- mbed: the notification channel -------------------------------------------------------


@pytest.fixture
def mbed(start_server: Callable[..., Any], bus: RecordingBus, entity_registry_redis: int) -> Iterator[Any]:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5)
    plugin = MbedPlugin(
        base_url=server.base_url,
        api_key=KEY,
        channel="long_poll",
        connect_timeout=1,
        read_timeout=2,
        pull_timeout=3,
        entities_enabled=False,
        **SHORT,
    )
    plugin.start()
    bus.wait_for(MbedConnectedEvent)
    yield server, plugin
    plugin.stop()


def test_mbed_revoked_key_one_event_status_rare_retries_and_recovery(
    mbed: Any, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    server, plugin = mbed
    server.recording = []
    revoke(server)
    (event,) = bus.wait_for(MbedAuthFailedEvent, timeout=10)
    assert event.args["status"] == 401 and event.args["channel"] == "long_poll"
    assert "HTTP 401: Unauthorized" in event.args["error"] and KEY not in str(event)
    refusal = rejected(plugin.status().output)
    assert refusal["error"] == event.args["error"]
    wait_until(lambda: len(refusals(server)) >= 4, timeout=WINDOW + INTERVAL + 5)
    revoke(server, False)
    wait_until(lambda: len(bus.of(MbedConnectedEvent)) == 2, timeout=INTERVAL + 5)
    assert plugin.status().output["credentials_rejected"] is None
    assert_rare(refusals(server))
    assert len(bus.of(MbedAuthFailedEvent)) == 1 and not bus.of(MbedDisconnectedEvent)  # not an outage
    assert len(warnings_about(caplog, "refused the credentials")) == 1 and not warnings_about(caplog, "unavailable")
    assert KEY not in caplog.text


def test_mbed_websocket_refusals_are_auth_errors_at_the_handshake_and_at_pelions_close(
    start_server: Callable[..., Any],
) -> None:
    """Pelion / Izuma upgrade the connection, then close it with 1008 for a refused key; the Connector
    answers the handshake 401: both are refusals of the key, not outages."""
    pelion, connector = start_server(MbedServer, api_key=KEY, api="pelion"), start_server(MbedServer, api_key=KEY)
    with MbedClient(pelion.base_url, KEY, api="pelion") as client:
        channel = WebSocketChannel(client, lambda *_: None)
        channel.client.register_websocket()
        channel._registered = True  # registered before the key was revoked: a reconnect only connects
        revoke(pelion)
        with pytest.raises(AuthError, match="code 1008: Policy violation: missing or invalid API key"):
            channel.step()
    revoke(connector)
    with MbedClient(connector.base_url, KEY) as client, pytest.raises(AuthError, match="HTTP 401") as refused:
        client.connect_websocket()
    assert refused.value.status == 401 and KEY not in str(refused.value)


def test_mbed_pelion_websocket_channel_refused_then_restored(
    start_server: Callable[..., Any], bus: RecordingBus, entity_registry_redis: int
) -> None:
    server = start_server(MbedServer, api_key=KEY, api="pelion")
    revoke(server)
    plugin = MbedPlugin(
        base_url=server.base_url, api_key=KEY, api="pelion", channel="websocket", entities_enabled=False, **SHORT
    )
    plugin.start()
    try:
        (event,) = bus.wait_for(MbedAuthFailedEvent, timeout=10)
        assert event.args["channel"] == "websocket" and event.args["status"] == 401
        rejected(plugin.status().output)
        revoke(server, False)
        bus.wait_for(MbedConnectedEvent, timeout=WINDOW + 5)
        assert plugin.status().output["credentials_rejected"] is None and not bus.of(MbedDisconnectedEvent)
    finally:
        plugin.stop()


def _count_refused_polls(channel_backoff: Any, server: MbedServer, seconds: float) -> int:
    """The requests a revoked key gets from a long-poll channel in its first ``seconds``."""
    client = MbedClient(server.base_url, KEY)
    channel = LongPollChannel(client, lambda *_: None, backoff=Backoff(base=1.0, cap=60.0), **channel_backoff)
    server.recording = []
    thread = channel.start_thread()
    time.sleep(seconds)
    channel.stop(2.0)
    thread.join(5)
    client.close()
    return len(refusals(server))


def test_mbed_before_and_after_in_the_first_30_seconds(start_server: Callable[..., Any]) -> None:
    """The figure of the issue, with the default schedule: before, a refused key waited as an outage
    (the channel's backoff, 1 s doubling: its auth waits set to the same) and got 5–6 requests in
    30 s and counting; now at most 3. Both channels run side by side, 30 s."""
    before_server, after_server = (start_server(MbedServer, api_key=KEY, pull_timeout=0.5) for _ in range(2))
    for server in (before_server, after_server):
        revoke(server)
    counts: dict[str, int] = {}
    as_outage = {"auth_backoff": Backoff(base=1.0, cap=60.0)}  # what the Listener did with any failure
    threads = [
        threading.Thread(target=lambda: counts.update(before=_count_refused_polls(as_outage, before_server, 30))),
        threading.Thread(target=lambda: counts.update(after=_count_refused_polls({}, after_server, 30))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(45)
    print(f"requests of a revoked mbed key in 30 s: before {counts['before']}, after {counts['after']}")
    assert counts["before"] >= 5 and counts["after"] <= 3


# -- pushjet: the poller -------------------------------------------------------------------


@pytest.fixture
def pushjet(start_server: Callable[..., Any], bus: RecordingBus, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(PushjetPlugin, "MIN_POLL_INTERVAL", 0.2)  # tests poll faster than users may
    server = start_server(PushjetServer)
    device = str(uuid.uuid4())
    plugin = PushjetPlugin(base_url=server.base_url, devices=[device], poll_interval=0.2, retries=0, **SHORT)
    plugin.start()
    bus.wait_for(PushjetConnectedEvent)
    yield server, plugin, device
    plugin.stop()


def test_pushjet_refused_polls_one_event_status_rare_retries_and_recovery(
    pushjet: Any, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    server, plugin, device = pushjet
    server.recording = []
    revoke(server)  # as a reverse proxy whose basic-auth user was removed: 401 on every request
    (event,) = bus.wait_for(PushjetAuthFailedEvent, timeout=10)
    assert event.args["status"] == 401 and event.args["path"] == "polling"
    rejected(plugin.status().output)
    wait_until(lambda: len(refusals(server)) >= 4, timeout=WINDOW + INTERVAL + 5)
    revoke(server, False)
    alerts = PushjetClient(server.base_url).create_service("after the key works again")
    PushjetClient(server.base_url).subscribe(device, alerts.public_key)
    wait_until(lambda: len(bus.of(PushjetConnectedEvent)) == 2, timeout=INTERVAL + 5)
    assert plugin.status().output["credentials_rejected"] is None
    assert_rare(refusals(server))
    assert len(bus.of(PushjetAuthFailedEvent)) == 1 and not bus.of(PushjetDisconnectedEvent)
    assert len(warnings_about(caplog, "refused the credentials")) == 1 and not warnings_about(caplog, "unavailable")


def test_pushjet_refused_connector_and_api_one_event_per_path_and_recovery(
    start_server: Callable[..., Any], bus: RecordingBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reverse proxy refusing both the API and the connector (its WebSocket handshake answered
    401): one event per path, rare handshakes, both paths back once the credentials work."""
    monkeypatch.setattr(PushjetPlugin, "MIN_POLL_INTERVAL", 0.2)
    server = start_server(PushjetServer)
    server.connector.recording = []
    for refusing in (server, server.connector):
        revoke(refusing)
    plugin = PushjetPlugin(
        base_url=server.base_url, devices=[str(uuid.uuid4())], realtime_url=server.realtime_url, **SHORT
    )
    plugin.start()
    try:
        wait_until(lambda: len(bus.of(PushjetAuthFailedEvent)) == 2, timeout=10)
        assert {e.args["path"] for e in bus.of(PushjetAuthFailedEvent)} == {"polling", "realtime"}
        wait_until(lambda: len(refusals(server.connector)) >= 4, timeout=WINDOW + INTERVAL + 5)
        for refusing in (server, server.connector):
            revoke(refusing, False)
        # each path retries on its own schedule (one try per INTERVAL at most): a loaded machine may need two
        wait_until(lambda: plugin.status().output["path"] == "realtime", timeout=2 * INTERVAL + 10)
        wait_until(lambda: plugin.status().output["credentials_rejected"] is None, timeout=2 * INTERVAL + 10)
    finally:
        plugin.stop()
    assert_rare(refusals(server.connector))
    assert len(bus.of(PushjetAuthFailedEvent)) == 2 and not bus.of(PushjetDisconnectedEvent)
    assert {e.args["path"] for e in bus.of(PushjetConnectedEvent)} == {"polling", "realtime"}


# -- nikdev: the flusher (the refused entries still go to the dead letters) ---------------------


@pytest.fixture
def nikdev(start_server: Callable[..., Any], bus: RecordingBus) -> Iterator[Any]:
    server = start_server(NikdevServer)
    plugin = NikdevPlugin(
        base_url=server.base_url, device_id=DEFAULT_DEVICE_ID, api_key=DEFAULT_API_KEY, flush_interval=1, **SHORT
    )
    plugin.start()
    yield server, plugin
    plugin.stop()


def test_nikdev_refused_key_dead_letters_as_before_one_event_rare_pushes_and_recovery(
    nikdev: Any, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    server, plugin = nikdev
    plugin.commit(values={"temp": 20})
    bus.wait_for(NikdevConnectedEvent)
    server.recording = []
    revoke(server)
    stop = threading.Event()

    def commit_often() -> None:  # a sensor that goes on recording while the key is refused
        value = 0
        while not stop.wait(0.3):
            value += 1
            plugin.commit(values={"temp": value})

    committer = threading.Thread(target=commit_often, daemon=True)
    committer.start()
    try:
        (event,) = bus.wait_for(NikdevAuthFailedEvent, timeout=10)
        assert event.args["status"] == 401 and "Invalid API key" in event.args["error"]
        assert bus.wait_for(NikdevDeadLetteredEvent)[0].args["status"] == 401  # dead letters, as before
        rejected(plugin.status().output)
        wait_until(lambda: len(refusals(server)) >= 4, timeout=WINDOW + INTERVAL + 5)
        revoke(server, False)
        wait_until(lambda: len(bus.of(NikdevConnectedEvent)) == 2, timeout=INTERVAL + 5)
    finally:
        stop.set()
        committer.join(5)
    assert plugin.status().output["credentials_rejected"] is None
    assert_rare(refusals(server))
    assert len(bus.of(NikdevAuthFailedEvent)) == 1
    assert len(warnings_about(caplog, "refused the credentials")) == 1


def test_nikdev_a_push_that_works_again_ends_the_flushers_long_wait(
    start_server: Callable[..., Any], bus: RecordingBus
) -> None:
    server = start_server(NikdevServer)
    plugin = NikdevPlugin(
        base_url=server.base_url, device_id=DEFAULT_DEVICE_ID, api_key=DEFAULT_API_KEY, flush_interval=1,
        auth_retry_window=3, auth_retry_interval=60,
    )  # fmt: skip
    plugin.start()
    try:
        server.recording = []
        revoke(server)
        for value in range(3):  # three refused pushes by the flusher: the next would wait about a minute
            plugin.commit(values={"temp": value})
            wait_until(lambda value=value: len(refusals(server)) == value + 1, timeout=10)
        plugin.commit(values={"temp": 99})  # pending: the flusher waits
        revoke(server, False)
        assert plugin.push().output["pushed"] == 1  # the user pushes: the key works again
        bus.wait_for(NikdevConnectedEvent)  # the first: nothing was pushed before the key was revoked
        pushed = len(bus.of(NikdevEntriesPushedEvent))
        plugin.commit(values={"temp": 100})
        wait_until(lambda: len(bus.of(NikdevEntriesPushedEvent)) > pushed, timeout=5)  # the flusher, not in a minute
        assert 100 in server.received_values("temp") and len(refusals(server)) == 3
    finally:
        plugin.stop()


# -- gett: no listener; its logins say whether the credentials work --------------------------


def test_gett_refused_login_one_event_status_and_recovery(
    start_server: Callable[..., Any], bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(GettServer)
    plugin = GettPlugin(
        base_url=server.base_url, api_key=server.apikey, email=server.email, password=server.password, retries=0
    )
    try:
        assert not plugin.get_user().errors and plugin.status().output["credentials_rejected"] is None
        revoke(server)  # the access and refresh tokens, the API key: all refused
        for _ in range(3):
            response = plugin.get_user()
            assert response.errors and "invalid apikey" in response.errors[0]
        (event,) = bus.wait_for(GettAuthFailedEvent)
        assert event.args["status"] == 403 and "invalid apikey" in event.args["error"]
        assert "invalid apikey" in rejected(plugin.status().output)["error"]
        revoke(server, False)
        assert not plugin.get_user().errors
        assert plugin.status().output["credentials_rejected"] is None
        assert len(bus.of(GettAuthFailedEvent)) == 1
        assert len(warnings_about(caplog, "refused the credentials")) == 1
        assert server.password not in caplog.text and server.apikey not in caplog.text
    finally:
        plugin.stop()


def test_gett_refused_refresh_token_without_a_password_is_a_refusal(start_server: Callable[..., Any]) -> None:
    from platypush_ext.gett.client import GettClient

    server = start_server(GettServer)
    logins: list[Any] = []
    with GettClient(server.base_url, api_key=server.apikey, email=server.email, password=server.password) as first:
        first.login()
        token = first.refresh_token
    client = GettClient(server.base_url, refresh_token=token)
    client.on_login = logins.append
    client.login()
    revoke(server)
    client._access_token = None  # the next call logs in again, with the (now refused) refresh token
    with pytest.raises(AuthError, match="refresh token was refused"):
        client.get_user()
    assert logins[0] is None and isinstance(logins[1], AuthError) and logins[1].status == 403
    client.close()
