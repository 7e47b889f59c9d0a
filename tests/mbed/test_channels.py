"""Issue 18, items 2 and 3, in-process against the sandbox over real sockets.

* A stopped channel releases what the service holds for it (the long poll's connection), and the
  sandbox, as an event-driven server, notices a client that went away before it hands it a batch
  (long poll and WebSocket, both API modes): the batch stays queued for the next poll or connection.
* Device calls made while the plugin's channel is starting wait for it instead of answering
  ``412 No notification channel``; a 412 while the channel is really down says why.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from platypush_ext.core.backoff import Backoff
from platypush_ext.core.http import Timeouts
from platypush_ext.mbed.channels import LongPollChannel
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.sandbox.mbed import MbedServer
from tests.support import RecordingBus, wait_until

KEY = "channels-test-key-0123456789"
TEMP = "/3303/0/5700"


@pytest.fixture(params=["connector", "pelion"])
def server(request: pytest.FixtureRequest, start_server: Any) -> MbedServer:
    return start_server(MbedServer, api_key=KEY, pull_timeout=30, demo_devices=True, api=request.param)


def make_client(server: MbedServer) -> MbedClient:
    api = "pelion" if server.pelion else "connector"
    return MbedClient(server.base_url, KEY, api=api, timeouts=Timeouts(2, 5), pull_timeout=40)


def notify(server: MbedServer, count: int) -> None:
    for index in range(count):
        server.enqueue("de-registrations", f"gone-{index}")


def test_stop_releases_the_held_long_poll_and_the_next_batch_stays_queued(server: MbedServer) -> None:
    server._take_batch()  # the demo devices' registrations
    client = make_client(server)
    channel = LongPollChannel(client, lambda message: None, no_wait_first=False, backoff=Backoff(base=0.05, cap=0.2))
    channel.start_thread()
    try:
        wait_until(lambda: server._polling, timeout=5)
        started = time.monotonic()
        channel.stop(timeout=2)
        wait_until(lambda: not server._polling, timeout=2)  # before: held for the service's 30 s
        released = time.monotonic() - started
        assert channel.thread is not None and not channel.thread.is_alive()
        notify(server, 5)
        time.sleep(0.3)
        assert server.queued() == 5, "a batch went to the stopped channel's connection"
        print(f"\nlong poll ({'pelion' if server.pelion else 'connector'}): released {released:.3f} s after stop()")
    finally:
        channel.stop()
        client.close()


def test_a_channel_whose_thread_is_starting_is_not_reported_stopped(
    server: MbedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a new thread may run only milliseconds after it was started: a device call that
    asked the channel gate then (``mbed.subscribe`` in a procedure on ApplicationStartedEvent) got
    ``HTTP 412: ... the long_poll channel is stopped`` (seen in CI)."""
    client = make_client(server)
    channel = LongPollChannel(client, lambda message: None, backoff=Backoff(base=0.05, cap=0.2))
    seen, start = [], threading.Thread.start

    def slow_start(thread: threading.Thread) -> None:
        seen.append(channel.why_down())  # what a device call sees while the thread is not running yet
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", slow_start)
    try:
        channel.start_thread()
        monkeypatch.undo()
        assert seen[:1] == [None] and channel.why_down() is None
    finally:
        channel.stop()
        client.close()


def raw_poll(server: MbedServer) -> socket.socket:
    """A long poll sent on a raw connection (a client that can vanish without a word)."""
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(f"GET /v2/notification/pull HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode())
    return sock


def test_a_held_poll_whose_client_went_away_takes_nothing(server: MbedServer) -> None:
    server._take_batch()
    sock = raw_poll(server)
    wait_until(lambda: server._polling, timeout=5)
    sock.close()  # the client's process ended: the service holds a poll nobody reads
    notify(server, 5)  # at once, before the service could notice anything on its own
    client = make_client(server)
    try:
        message = client.pull(no_wait=not server.pelion)  # Pelion: no noWait, answers as soon as there are events
        assert message is not None and len(json.loads(message)["de-registrations"]) == 5  # before: lost
    finally:
        client.close()


def test_a_websocket_that_closed_gets_no_batch(server: MbedServer) -> None:
    server._take_batch()
    client = make_client(server)
    try:
        client.register_websocket()
        first = client.connect_websocket()
        wait_until(lambda: server._ws_connected, timeout=5)
        first.sock.shutdown(socket.SHUT_RDWR)  # gone without a close frame (a process that ended)
        first.sock.close()
        notify(server, 5)
        second = None
        for _ in range(20):  # the service may still count the first as connected for a moment
            try:
                second = client.connect_websocket()
                break
            except Exception:  # noqa: BLE001 - refused while the first is still counted
                time.sleep(0.1)
        assert second is not None
        second.settimeout(3)
        try:
            frame = json.loads(second.recv())
        except websocket.WebSocketTimeoutException:
            frame = {}
        second.close()
        assert len(frame.get("de-registrations", [])) == 5, "the batch was pushed into the closed socket"
    finally:
        client.close()


# -- item 3: device calls while the channel starts ---------------------------------------------------


#: The request that creates each channel on the service.
REGISTRATION = {
    "long_poll": ("GET", "/v2/notification/pull"),
    "callback": ("PUT", "/v2/notification/callback"),
    "websocket": ("PUT", "/v2/notification/websocket"),
}


@pytest.fixture
def fresh(start_server: Any, workdir: str) -> MbedServer:
    """A sandbox that has no notification channel yet (a first start)."""
    return start_server(MbedServer, api_key=KEY, pull_timeout=2, demo_devices=True)


def plugin_for(server: MbedServer, channel: str) -> MbedPlugin:
    return MbedPlugin(
        base_url=server.base_url,
        api_key=KEY,
        channel=channel,
        connect_timeout=1,
        read_timeout=3,
        pull_timeout=5,
        async_timeout=10,
        entities_enabled=False,
    )


@pytest.fixture
def started(entity_registry_redis: int) -> Iterator[list[MbedPlugin]]:
    """The plugins a test made, stopped after it (entity managers: they register in Redis)."""
    plugins: list[MbedPlugin] = []
    yield plugins
    for plugin in plugins:
        plugin.stop()


@pytest.mark.parametrize("channel", ["long_poll", "callback", "websocket"])
def test_subscribe_at_start_up_waits_for_the_starting_channel(
    fresh: MbedServer, bus: RecordingBus, started: list[MbedPlugin], channel: str
) -> None:
    assert fresh.channel is None
    # the channel's first registration fails (it retries): the start-up takes a moment, as on a real service
    method, path = REGISTRATION[channel]
    fresh.faults.add("status", count=1, status=503, method=method, path=path)
    plugin = plugin_for(fresh, channel)
    answers: list[Any] = []
    plugin.start()
    started.append(plugin)
    caller = threading.Thread(target=lambda: answers.append(plugin.subscribe(endpoint="temp-sensor-01", path=TEMP)))
    caller.start()  # the moment Platypush is ready, as a procedure on ApplicationStartedEvent does
    caller.join(15)
    output, errors = answers[0].output, answers[0].errors
    assert errors == [] and output == {"subscribed": True}, errors  # before: HTTP 412: No notification channel
    assert ("temp-sensor-01", TEMP) in fresh.subscriptions


def test_a_412_while_the_channel_is_really_down_says_why(
    fresh: MbedServer, bus: RecordingBus, started: list[MbedPlugin]
) -> None:
    plugin = plugin_for(fresh, "none")
    started.append(plugin)
    errors = plugin.subscribe(endpoint="temp-sensor-01", path=TEMP).errors
    assert len(errors) == 1 and "412" in errors[0] and "channel: none" in errors[0], errors
    assert "\n" not in errors[0] and len(errors[0]) <= 500
    plugin = plugin_for(fresh, "long_poll")
    plugin.start()
    started.append(plugin)
    wait_until(lambda: fresh.channel == "long_poll", timeout=10)
    assert plugin.stop_channel().output == {"stopped": True}

    def forgotten() -> bool:  # the service forgot the channel too (a poll already on its way would make it again)
        fresh._set_channel(None)
        time.sleep(0.3)
        return fresh.channel is None

    wait_until(forgotten, timeout=10)
    started_at = time.monotonic()
    errors = plugin.subscribe(endpoint="temp-sensor-01", path=TEMP, timeout=5).errors
    assert len(errors) == 1 and "mbed.start_channel" in errors[0], errors
    assert time.monotonic() - started_at < 2  # a channel that was stopped is not waited for
