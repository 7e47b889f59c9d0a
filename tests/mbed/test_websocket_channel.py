"""The mbed WebSocket channel (Pelion / Izuma) against the mbed sandbox in Pelion mode, whose
``websocket-connect`` this module's :class:`FaultyMbed` can make accept and drop every
connection (another client took the channel's socket) or send a hostile frame (issue 18):
no reconnect storm, one registration, one outage reported once, messages bounded."""

from __future__ import annotations

import logging
import os
import struct
import time
from typing import Any

import pytest

from platypush_ext.core.backoff import Backoff
from platypush_ext.core.http import Timeouts
from platypush_ext.core.listening import Availability
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.mbed.channels import WebSocketChannel
from platypush_ext.mbed.client import MbedClient
from platypush_ext.sandbox.core import Request
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.websocket import TEXT, accept_upgrade, is_upgrade, ws_close, ws_frame, ws_read
from tests.support import wait_until

KEY = "websocket-channel-test-key-1357"
#: The production timings (1 s backoff base, 30 s settle, a 30 s window) scaled by this factor;
#: ``STORM_SCALE=1`` measures the real 30 s.
STORM_SCALE = float(os.environ.get("STORM_SCALE", "0.1"))
CONNECT, REGISTER = ("GET", "/v2/notification/websocket-connect", 101), ("PUT", "/v2/notification/websocket")


class FaultyMbed(MbedServer):
    """The Pelion-mode sandbox; with ``mode`` set, its WebSocket accepts each connection to the
    registered channel, then ``drop``: closes it at once with 1001 (going away), ``huge``:
    sends a frame header announcing 1 GiB and streams up to 16 MiB (``sent`` counts them), or
    ``in_flight``: sends five messages, then answers the client's close frame."""

    mode: str | None = None
    sent = 0

    def _websocket_connect(self, request: Request) -> Any:
        if self.mode is None or not is_upgrade(request):
            return super()._websocket_connect(request)
        sock = accept_upgrade(request)
        with self._cond:
            registered = self.channel == "websocket"
        if not registered:
            ws_close(sock, 1011, "No WebSocket channel registered")
        elif self.mode == "drop":
            ws_close(sock, 1001, "Going away")
        elif self.mode == "in_flight":  # five messages pushed, then the client's close answered
            for n in range(5):
                sock.sendall(ws_frame(b'{"de-registrations": ["in-flight-%d"]}' % n, TEXT))
            ws_read(sock)
            ws_close(sock, 1000, "")
            return None
        else:
            self._huge(sock)
        ws_read(sock)  # the client's close frame, or the end
        return None

    def _huge(self, sock: Any) -> None:
        try:
            sock.sendall(bytes([0x81, 127]) + struct.pack("!Q", 1 << 30))
            for _ in range(256):
                sock.sendall(b"x" * 65_536)
                self.sent += 65_536
        except OSError:
            pass  # the client dropped the connection


@pytest.fixture
def pelion():
    server = FaultyMbed(api_key=KEY, pull_timeout=1, api="pelion").start()
    yield server
    server.stop()


def make_client(server: MbedServer) -> MbedClient:
    retry = RetryPolicy(attempts=2, backoff=0.05, backoff_max=0.2)
    return MbedClient(server.base_url, KEY, api="pelion", timeouts=Timeouts(2, 3), async_timeout=5, retry=retry)


class Outages:
    """The channel's ``on_up`` / ``on_down`` through an :class:`Availability`, as the plugin has them."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.availability = Availability(
            "mbed", logging.getLogger("test"), lambda: self.events.append("up"), lambda e: self.events.append("down")
        )


def test_a_websocket_that_accepts_and_drops_every_connection_causes_no_storm(pelion, monkeypatch):
    monkeypatch.setattr(WebSocketChannel, "SETTLE", 30.0 * STORM_SCALE, raising=False)  # new in issue 18
    client, outages = make_client(pelion), Outages()
    pelion.mode = "drop"
    channel = WebSocketChannel(
        client,
        lambda message: None,
        on_up=outages.availability.ok,
        on_down=outages.availability.failed,
        backoff=Backoff(base=1.0 * STORM_SCALE, cap=60.0 * STORM_SCALE),
    )
    channel.start_thread()
    time.sleep(30.0 * STORM_SCALE)
    channel.stop(timeout=5)
    client.close()
    connections = sum(1 for r in pelion.requests if r == CONNECT)
    registrations = sum(1 for r in pelion.requests if r[:2] == REGISTER)
    print(
        f"\nstorm: mbed/websocket {connections} connections, {len(outages.events)} events, "
        f"{registrations} PUT /v2/notification/websocket in 30 s (x{STORM_SCALE:g})"
    )
    assert 2 <= connections <= 8 and len(outages.events) <= 4
    assert outages.events == ["up", "down"]  # one outage: reported once
    assert registrations == 1  # the channel exists: registered once, not at every reconnect


def test_the_channel_registers_again_only_when_the_service_says_it_is_missing(pelion):
    client, outages = make_client(pelion), Outages()
    pelion.add_device("node-001", "Light", resources=[{"path": "/3/0/1", "value": "Mbed"}])
    channel = WebSocketChannel(
        client, client.handle_notification, on_up=outages.availability.ok, backoff=Backoff(base=0.05, cap=0.2)
    )
    channel.start_thread()
    try:
        wait_until(lambda: pelion._ws_connected, timeout=5)
        assert (
            client.get_resource_value(MbedServer.device_id("node-001"), "/3/0/1").value == "Mbed"
        )  # data: the connection proved itself
        pelion.mode = "drop"
        with pelion._cond:
            pelion._ws_generation += 1  # the open socket is closed with 1001 (another socket took it)
            pelion._cond.notify_all()
        wait_until(lambda: sum(1 for r in pelion.requests if r == CONNECT) >= 3, timeout=5)
        assert sum(1 for r in pelion.requests if r[:2] == REGISTER) == 1  # the channel is still there
        pelion.mode = None
        client.delete_websocket()  # now it is gone: the next attempt is told so, and registers
        wait_until(lambda: sum(1 for r in pelion.requests if r[:2] == REGISTER) == 2, timeout=10)
        wait_until(lambda: pelion._ws_connected, timeout=5)
        assert client.get_resource_value(MbedServer.device_id("node-001"), "/3/0/1").value == "Mbed"
    finally:
        channel.stop(timeout=5)
        client.close()


def test_a_hostile_frame_drops_the_connection_unread(pelion, caplog):
    client, errors = make_client(pelion), []
    pelion.mode = "huge"
    channel = WebSocketChannel(
        client, lambda message: None, on_down=errors.append, backoff=Backoff(base=5, cap=5), max_message=1 << 20
    )
    channel.start_thread()
    try:
        wait_until(lambda: errors, timeout=10)
    finally:
        channel.stop(timeout=5)
        client.close()
    assert "a frame of 1,073,741,824 bytes announced (at most 1,048,576)" in str(errors[0])
    assert len(str(errors[0])) <= 500 and pelion.sent < 8 << 20  # of 16 MiB offered


def test_a_frame_that_is_not_utf8_is_handed_over_as_received_and_the_connection_goes_on(pelion):
    """websocket-client refused such a text frame with an exception quoting it whole (megabytes in a
    log line) and the connection was dropped: the frame was lost uncounted, the channel reconnected.
    Now its bytes are handed over (the plugin journals and drops it) and the next frame follows."""
    client, received, errors = make_client(pelion), [], []
    channel = WebSocketChannel(client, received.append, on_down=errors.append, backoff=Backoff(base=0.05, cap=0.2))
    channel.start_thread()
    try:
        wait_until(lambda: pelion._ws_connected, timeout=5)
        pelion.enqueue_raw(b'{"de-registrations": ["\xff\xfe"]}')
        pelion.enqueue("de-registrations", "next")
        wait_until(lambda: len(received) == 2, timeout=5)
        assert received == [b'{"de-registrations": ["\xff\xfe"]}', b'{"de-registrations": ["next"]}']
    finally:
        channel.stop(timeout=5)
        client.close()
    wait_until(lambda: CONNECT in pelion.requests, timeout=5)  # a connection is logged once it ended
    assert errors == [] and sum(1 for r in pelion.requests if r == CONNECT) == 1


def test_what_the_service_sent_before_a_close_is_received_not_discarded(pelion):
    """Issue 18: the channel closed with websocket-client's ``close()``, which reads until the
    service's close frame and discards every message before it: what the service had pushed when
    the plugin stopped was lost (the service hands each message out once). Now the close sends
    our close frame and dispatches what comes before the service's answer."""
    client, received = make_client(pelion), []
    pelion.mode = "in_flight"
    channel = WebSocketChannel(client, received.append, backoff=Backoff(base=5, cap=5))
    try:
        channel._open()  # connected; nothing read yet: the five messages wait in the socket
        time.sleep(0.2)
        channel.close()
    finally:
        client.close()
    assert received == [b'{"de-registrations": ["in-flight-%d"]}' % n for n in range(5)]
