"""The realtime path: the sandbox's WebSocket connector (``protocols/pushjet.md`` §8), the
client's :class:`RealtimeChannel` and the plugin's listener on it, with polling as the
fallback, under every fault (drop, stall, garbage, connector down, server restart)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import struct
import threading
import time
import uuid
from typing import Any

import platypush.context
import pytest
import requests
import websocket

from platypush_ext.core.errors import InvalidArgumentError
from platypush_ext.pushjet.events import PushjetConnectedEvent, PushjetDisconnectedEvent, PushjetMessageEvent
from platypush_ext.pushjet.plugin import PushjetPlugin
from platypush_ext.pushjet.realtime import CrossPathFilter, RealtimeChannel, RealtimeError, check_realtime_url
from platypush_ext.sandbox.core import Request, SandboxServer
from platypush_ext.sandbox.pushjet import PushjetServer
from platypush_ext.sandbox.pushjet.connector import _Connection, _ws_text
from platypush_ext.sandbox.websocket import TEXT, accept_upgrade, ws_close, ws_frame, ws_read
from tests.support import wait_until

pytestmark = pytest.mark.sandbox(cls=PushjetServer)


def connect(server: PushjetServer, device: str | None = None) -> websocket.WebSocket:
    ws = websocket.create_connection(server.realtime_url, timeout=5)
    if device is not None:
        ws.send(device)
        assert json.loads(ws.recv()) == {"status": "ok"}
    return ws


def received(ws: websocket.WebSocket) -> dict:
    return json.loads(ws.recv())


# -- the sandbox's connector -------------------------------------------------


def test_connector_replays_unread_then_pushes_live_marking_read(server, remote, alerts, device):
    remote.send(alerts.secret_key, "while offline", importance=4)
    ws = connect(server, device)
    replayed = received(ws)["message"]
    assert (replayed["message"], replayed["level"], replayed["service"]["public"]) == (
        "while offline",
        4,
        alerts.public_key,
    )
    remote.send(alerts.secret_key, "live")
    assert received(ws)["message"]["message"] == "live"
    remote.send(alerts.secret_key, "x" * 65_535)  # the longest: a frame over 64 KiB
    assert received(ws)["message"]["message"] == "x" * 65_535
    wait_until(lambda: server._subscriptions[0].last_read == 3)  # marked read, as the connector's DELETE
    assert remote.fetch_messages(device) == []
    assert server.connector.connected() == [device]
    ws.close()
    wait_until(lambda: server.connector.connected() == [])


def test_connector_pushes_subscription_changes_and_toggles_topics(server, remote, device):
    ws = connect(server, device)
    other = remote.create_service("Other")
    remote.subscribe(device, other.public_key)
    change = received(ws)["subscription"]
    assert (change["uuid"], change["service"]["public"]) == (device, other.public_key)
    remote.send(other.secret_key, "on the new service")
    assert received(ws)["message"]["message"] == "on the new service"
    remote.delete_service(other.secret_key)
    assert received(ws)["subscription"]["service"]["public"] == other.public_key
    ws.close()


def test_connector_errors_and_upgrade_required(server, device):
    ws = connect(server)
    ws.send_binary(b"\x00\x01")
    assert received(ws) == {"error": {"id": -1, "message": "Expected text got binary data"}}
    ws.send("not-a-uuid")
    assert received(ws) == {"error": {"id": 1, "message": "Invalid client uuid"}}
    ws.send(device + "trailing bytes are ignored")  # the first 36 characters
    assert received(ws) == {"status": "ok"}
    ws.ping(b"x")
    assert ws.recv_data_frame(control_frame=True)[0] == websocket.ABNF.OPCODE_PONG
    for size in (200, 70_000):  # the two longer length encodings of a client frame
        ws.send("later text frames are ignored".ljust(size))
    ws.close()
    plain = requests.get(server.realtime_url.replace("ws://", "http://") + "/", timeout=5)
    assert plain.status_code == 426


def test_connector_faults_and_control_api(server, remote, alerts, device):
    state = requests.get(server.url + "/_sandbox/state", timeout=5).json()
    assert state["realtime_url"] == server.realtime_url and server.realtime_url in server.describe()
    ws = connect(server, device)
    control = server.url + "/_sandbox/realtime"
    assert requests.post(control, json={"fault": "garbage"}, timeout=5).json()["connections"] == [device]
    assert ws.recv().startswith("}{ not JSON")
    requests.post(control, json={"fault": "stall"}, timeout=5)
    remote.send(alerts.secret_key, "held back")
    assert server.take_unread(device)[0].message == "held back"  # a stalled connection marks nothing read
    requests.post(control, json={"fault": "drop"}, timeout=5)
    with pytest.raises((websocket.WebSocketException, OSError)):
        ws.recv()
    assert requests.post(control, json={"up": False}, timeout=5).json() == {"up": False, "connections": []}
    with pytest.raises((websocket.WebSocketException, OSError)):
        connect(server)
    assert requests.post(control, json={"up": True, "mark_read_delay": 0.1}, timeout=5).json()["up"] is True
    assert server.mark_read_delay == 0.1
    connect(server, device).close()
    assert requests.post(control, json={"fault": "melt"}, timeout=5).status_code == 400
    assert requests.post(control, json={"colour": 1}, timeout=5).status_code == 400


def test_sandbox_command_line_puts_the_connectors_on_their_default_ports_or_free_ones():
    parser_args = type("Args", (), {"realtime_port": None, "tcp_port": None})()
    connector = PushjetServer.from_args(parser_args, "127.0.0.1", 8081).connector
    assert (connector.port, connector.tcp_port) == (8181, 7171)
    connector = PushjetServer.from_args(parser_args, "127.0.0.1", 0).connector
    assert (connector.port, connector.tcp_port) == (0, 0)
    parser_args.realtime_port, parser_args.tcp_port = 9999, 9998
    connector = PushjetServer.from_args(parser_args, "127.0.0.1", 0).connector
    assert (connector.port, connector.tcp_port) == (9999, 9998)


def tcp_items(sock: socket.socket, count: int) -> list[dict]:
    """``count`` items of the TCP connector (``\\x02`` JSON ``\\x03``)."""
    data = b""
    while data.count(b"\x03") < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    frames = data.split(b"\x03")[:count]
    assert all(f.startswith(b"\x02") for f in frames)
    return [json.loads(f[1:]) for f in frames]


def test_tcp_connector_frames_status_replay_and_live_pushes(server, remote, alerts, device):
    remote.send(alerts.secret_key, "while offline")
    with socket.create_connection(("127.0.0.1", server.connector.tcp_port), timeout=5) as sock:
        sock.sendall(device.encode() + b"anything after the uuid is ignored")
        status, replayed = tcp_items(sock, 2)
        assert status == {"status": "ok"} and replayed["message"]["message"] == "while offline"
        remote.send(alerts.secret_key, "live")
        assert tcp_items(sock, 1)[0]["message"]["message"] == "live"
        assert server.connector.connected() == [device]
    wait_until(lambda: server.connector.connected() == [])
    assert remote.fetch_messages(device) == []  # both marked read
    with socket.create_connection(("127.0.0.1", server.connector.tcp_port), timeout=5) as sock:
        sock.sendall(b"x" * 36)
        assert tcp_items(sock, 1) == [{"error": {"id": 1, "message": "Invalid client uuid"}}]
        assert sock.recv(10) == b""  # then closed
    with socket.create_connection(("127.0.0.1", server.connector.tcp_port), timeout=5):
        pass  # gone before its uuid: nothing to answer
    server.connector.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.connector.tcp_port), timeout=2)


# -- the client's channel ------------------------------------------------------


class Channel:
    """A :class:`RealtimeChannel` run by a thread, recording what it got and its errors."""

    def __init__(self, url: str, device: str, **options):
        self.messages: list[dict] = []  # the message objects of the frames that could be read
        self.unreadable: list[str] = []  # the frames that could not (as received)
        self.errors: list[str] = []
        self.ready = threading.Event()
        self.channel = RealtimeChannel(url, device, self._deliver, self.ready.set, **options)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _deliver(self, frame: str, payload: Any) -> None:
        (self.unreadable.append(frame) if payload is None else self.messages.append(payload))

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        while not self.channel._closed and time.monotonic() < deadline:
            try:
                self.channel.step()
            except RealtimeError as exc:
                self.errors.append(str(exc))
                time.sleep(0.05)

    def close(self) -> None:
        self.channel.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


def test_channel_receives_replay_and_live_then_stops_at_once(server, remote, alerts, device):
    remote.send(alerts.secret_key, "replayed")
    channel = Channel(server.realtime_url, device, ping_interval=0.2, ping_timeout=2)
    assert channel.ready.wait(5)
    remote.send(alerts.secret_key, "pushed")
    wait_until(lambda: len(channel.messages) == 2)
    time.sleep(0.5)  # a few pings, answered
    assert [m["message"] for m in channel.messages] == ["replayed", "pushed"] and channel.errors == []
    started = time.monotonic()
    channel.close()
    assert time.monotonic() - started < 1 and channel.errors == []


def test_channel_detects_a_stall_and_a_drop_and_reconnects_without_loss(server, remote, alerts, device):
    channel = Channel(server.realtime_url, device, ping_interval=0.2, ping_timeout=0.3)
    assert channel.ready.wait(5)
    server.connector.fault("stall")
    remote.send(alerts.secret_key, "sent during the stall")
    wait_until(lambda: channel.errors)
    assert "stalled (no answer in 0.3 s)" in channel.errors[0]
    wait_until(lambda: [m["message"] for m in channel.messages] == ["sent during the stall"])  # replayed
    server.connector.fault("drop")
    wait_until(lambda: len(channel.errors) == 2)
    assert "connection lost" in channel.errors[1]
    wait_until(lambda: channel.channel.up)  # reconnected
    server.connector.fault("garbage")  # on the new connection: handed over as received (the plugin drops it)
    remote.send(alerts.secret_key, "after")
    wait_until(lambda: len(channel.messages) == 2)
    assert len(channel.errors) == 2 and channel.unreadable == ["}{ not JSON \x01"]
    channel.close()


def test_channel_reports_an_unreachable_connector(server, device):
    server.connector.stop()
    channel = Channel(server.realtime_url, device, connect_timeout=1)
    wait_until(lambda: channel.errors)
    assert channel.errors[0].startswith(f"cannot reach the Pushjet connector {server.realtime_url} (")
    channel.close()


class HostileConnector(SandboxServer):
    """A connector that answers the uuid with scripted frames (then a close frame)."""

    name = "hostile-connector"
    frames: list[bytes] = []

    def setup_routes(self) -> None:
        self.route("GET", "/", self._connect)

    def _connect(self, request: Request) -> None:
        sock = accept_upgrade(request)
        ws_read(sock)  # the uuid
        for frame in self.frames:
            sock.sendall(ws_frame(frame, TEXT))
        time.sleep(0.2)
        ws_close(sock, 1000, "bye")
        ws_read(sock)
        return None


def test_channel_survives_a_hostile_connector(start_server, device, caplog):
    HostileConnector.frames = [
        b'{"status": "ok"}',
        b"[1, 2]",
        b'{"error": {"id": 7, "message": "odd\\nerror"}}',
        b'{"message": {"message": "kept"}}',
        b'{"something": "else"}',
        b'{"message": "\xff not UTF-8"}',  # the library would have closed the connection, quoting it whole
        b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ]
    hostile = start_server(HostileConnector)
    channel = Channel(f"ws://127.0.0.1:{hostile.port}/", device)
    wait_until(lambda: channel.errors)
    assert channel.errors[0].endswith("the connector closed the connection")
    assert channel.messages == [{"message": "kept"}]
    # what cannot be read (it may have been a message) is handed over as received: the plugin drops it
    assert channel.unreadable[:2] == ["[1, 2]", '{"message": "\udcff not UTF-8"}']
    assert len(channel.unreadable) == 3 and len(channel.unreadable[2]) == 200_013
    assert "an error: odd\\nerror" in caplog.text
    HostileConnector.frames = [b'{"error": {"id": 1, "message": "Invalid client uuid"}}']
    wait_until(lambda: any("refused the device uuid (Invalid client uuid)" in e for e in channel.errors))
    channel.close()


def test_a_connection_opened_while_closing_is_not_kept(server, device):
    channel = RealtimeChannel(server.realtime_url, device, lambda m: None, lambda: None)
    channel.close()
    assert channel.step() == 0.0  # closed: nothing to do
    channel._open()  # as if close() had come during the handshake
    assert channel._ws is None
    wait_until(lambda: server.connector.requests[-1:] == [("GET", "/", 101)])


def test_realtime_url_is_checked():
    assert check_realtime_url("wss://pushjet.example.org/ws") == "wss://pushjet.example.org/ws"
    with pytest.raises(InvalidArgumentError, match="credentials") as caught:
        check_realtime_url("ws://user:hunter2@host/")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("bad", ["http://host/", "ws://", 8181, None], ids=["http", "no-host", "number", "none"])
def test_a_realtime_url_that_is_not_a_websocket_url_is_refused(bad):
    with pytest.raises(InvalidArgumentError, match="invalid realtime_url"):
        check_realtime_url(bad)


def test_cross_path_filter_merges_only_across_paths():
    paths = CrossPathFilter(window=0.2, limit=3)
    message = {"message": "m", "timestamp": 1, "service": {"public": "p"}}
    twice = [message, dict(message)]
    assert paths.admit("realtime", "d", twice) == twice  # identical, same path: both kept
    assert paths.admit("polling", "d", twice) == []  # each matches one pushed arrival
    assert paths.admit("polling", "d", [message]) == [message]  # nothing left to match
    assert paths.admit("polling", "other-device", ["not an object"]) == ["not an object"]
    assert paths.duplicates == 2
    time.sleep(0.25)
    assert paths.admit("realtime", "d", [message]) == [message]  # the polled arrival expired
    for i in range(5):
        paths.admit("realtime", "d", [{**message, "timestamp": i + 10}])
    assert len(paths._order) <= 4


# -- the plugin --------------------------------------------------------------


@pytest.fixture
def make_plugin(server, workdir, bus, monkeypatch):
    monkeypatch.setattr(PushjetPlugin, "MIN_POLL_INTERVAL", 0.2)
    monkeypatch.setattr(PushjetPlugin, "BACKOFF_BASE", 0.05)
    monkeypatch.setattr(PushjetPlugin, "REALTIME_BACKOFF_CAP", 0.4)
    made = []

    def make(device: str, alerts, **config):
        config = {
            "base_url": server.base_url,
            "devices": [device],
            "services": {"alerts": {"secret": alerts.secret_key}},
            "poll_interval": 0.5,
            "realtime_url": server.realtime_url,
            "retries": 0,
            **config,
        }
        plugin = PushjetPlugin(**config)
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.stop()


def message_texts(bus) -> list[str]:
    return [e.args["message"] for e in bus.of(PushjetMessageEvent)]


def polls(server, since: int = 0) -> int:
    return sum(1 for method, path, _ in server.requests[since:] if (method, path) == ("GET", "/message"))


def on_realtime(plugin) -> bool:
    return plugin.status().output["path"] == "realtime"


def test_messages_arrive_pushed_and_polling_stops(make_plugin, bus, server, remote, alerts, device):
    remote.send(alerts.secret_key, "before the start")
    plugin = make_plugin(device, alerts)
    plugin.start()
    wait_until(lambda: on_realtime(plugin))
    connected = [e.args for e in bus.wait_for(PushjetConnectedEvent, 2)]
    assert {(e["path"], e["realtime_url"]) for e in connected} == {
        ("polling", None),
        ("realtime", server.realtime_url),
    }
    wait_until(lambda: message_texts(bus) == ["before the start"])
    since = len(server.requests)
    started = time.monotonic()
    plugin.send(service="alerts", message="pushed")
    wait_until(lambda: "pushed" in message_texts(bus), timeout=5, interval=0.005)
    assert time.monotonic() - started < 0.4  # faster than one poll interval
    time.sleep(1.2)  # two poll intervals: no poll while the connector carries the messages
    assert polls(server, since) == 0
    status = plugin.status().output
    assert status["realtime"] == {"url": server.realtime_url, "connected": [device], "merged": 0}
    assert status["journal"]["posted"] == 2 and bus.of(PushjetDisconnectedEvent) == []


def test_fallback_to_polling_while_the_connector_is_down_and_back(make_plugin, bus, server, remote, alerts, device):
    plugin = make_plugin(device, alerts)
    plugin.start()
    wait_until(lambda: on_realtime(plugin))
    server.connector.stop()
    down = bus.wait_for(PushjetDisconnectedEvent)[0].args
    assert down["path"] == "realtime" and down["realtime_url"] == server.realtime_url
    assert not on_realtime(plugin) and plugin.status().output["realtime"]["connected"] == []
    since = len(server.requests)
    remote.send(alerts.secret_key, "polled")
    wait_until(lambda: message_texts(bus) == ["polled"])
    assert polls(server, since) >= 1
    server.connector.start()
    wait_until(lambda: on_realtime(plugin), timeout=5)
    remote.send(alerts.secret_key, "pushed again")
    wait_until(lambda: message_texts(bus) == ["polled", "pushed again"])
    # the connector is back once a connection proved itself (issue 18): by the message it pushed
    assert [e.args["path"] for e in bus.of(PushjetConnectedEvent)][-1] == "realtime"
    assert len(bus.of(PushjetDisconnectedEvent)) == 1


def test_no_message_lost_across_drops_stalls_garbage_and_a_server_restart(
    make_plugin, bus, server, remote, alerts, device, monkeypatch
):
    monkeypatch.setattr(PushjetPlugin, "PING_INTERVAL", 0.2)
    monkeypatch.setattr(PushjetPlugin, "PING_TIMEOUT", 0.3)
    plugin = make_plugin(device, alerts, poll_interval=5)  # the connector, not polling, must recover these
    plugin.start()
    wait_until(lambda: on_realtime(plugin))
    sent = []
    for fault in ("garbage", "drop", "stall", "restart"):
        if fault == "restart":
            server.stop()
            server.start()
        else:
            server.connector.fault(fault)
        sent.append(f"after {fault}")
        remote.send(alerts.secret_key, sent[-1])
        wait_until(lambda: message_texts(bus) == sent, timeout=10)
        wait_until(lambda: on_realtime(plugin), timeout=5)
    assert len(bus.of(PushjetDisconnectedEvent)) >= 3  # drop, stall, restart (garbage is only logged)
    assert plugin.status().output["journal"]["duplicates"] == 0


def test_pushed_and_polled_posts_one_event_and_twins_two(make_plugin, bus, server, remote, alerts, device):
    plugin = make_plugin(device, alerts)
    plugin.start()
    wait_until(lambda: on_realtime(plugin))
    server.mark_read_delay = 1.0  # the connector's DELETE /message comes late: a poll sees the message too
    remote.send(alerts.secret_key, "both ways")
    wait_until(lambda: message_texts(bus) == ["both ways"])
    assert [m["message"] for m in plugin.get_messages().output] == []  # polled again, merged
    assert plugin.status().output["realtime"]["merged"] == 1
    server.mark_read_delay = 0.0
    remote.send(alerts.secret_key, "twin")
    remote.send(alerts.secret_key, "twin")  # the same second, same text: two messages, two events
    wait_until(lambda: message_texts(bus) == ["both ways", "twin", "twin"])
    time.sleep(1.0)  # the late mark-read of the first message has run
    assert len(bus.of(PushjetMessageEvent)) == 3


def test_a_journal_failure_is_logged_and_the_connection_goes_on(
    make_plugin, bus, server, remote, alerts, device, caplog, monkeypatch
):
    plugin = make_plugin(device, alerts)
    plugin.start()
    wait_until(lambda: on_realtime(plugin))
    journal = plugin.journal
    append = journal.append

    def disk_full(*args):
        monkeypatch.setattr(journal, "append", append)  # once
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(journal, "append", disk_full)
    remote.send(alerts.secret_key, "not journaled")
    wait_until(lambda: "a pushed message was not journaled: OperationalError" in caplog.text)
    remote.send(alerts.secret_key, "journaled")
    wait_until(lambda: message_texts(bus) == ["journaled"])
    assert on_realtime(plugin)


def test_messages_sent_while_platypush_is_down_are_replayed(make_plugin, bus, server, remote, alerts, device):
    first = make_plugin(device, alerts)
    first.start()
    wait_until(lambda: on_realtime(first))
    first.stop()
    wait_until(lambda: server.connector.connected() == [])
    remote.send(alerts.secret_key, "while stopped")
    second = make_plugin(device, alerts, poll_interval=5)
    second.start()
    wait_until(lambda: message_texts(bus) == ["while stopped"])


def test_plugin_stops_at_once_on_the_connector(make_plugin, bus, server, alerts, device):
    plugin = make_plugin(device, alerts)
    plugin.start()
    wait_until(lambda: on_realtime(plugin))
    started = time.monotonic()
    plugin.stop()
    wait_until(lambda: server.connector.connected() == [], timeout=2)
    assert time.monotonic() - started < 2
    assert [e.args["path"] for e in bus.of(PushjetDisconnectedEvent)] == []  # a stop is no outage


class StalledBus:
    """Platypush's bus while Platypush stops: its loop is gone, a message event's post never returns
    (until :meth:`release`); the connected and disconnected events pass."""

    def __init__(self) -> None:
        self.released, self.attempts = threading.Event(), 0

    def post(self, event: Any) -> None:
        if isinstance(event, PushjetMessageEvent):
            self.attempts += 1
            self.released.wait(30)

    def release(self) -> None:
        self.released.set()


def test_frames_pushed_while_the_bus_takes_nothing_are_all_journaled_by_the_stop(
    make_plugin, server, remote, alerts, device, monkeypatch
):
    # issue 18: the first frame's post blocked the connection's reader; the 39 frames behind it,
    # marked read by the connector, stayed in the socket until the stop closed it: lost
    stalled = StalledBus()
    monkeypatch.setattr(platypush.context.get_context(), "bus", stalled)
    plugin = make_plugin(device, alerts)
    try:
        plugin.start()
        wait_until(lambda: on_realtime(plugin))
        for i in range(40):
            remote.send(alerts.secret_key, f"pushed {i}")
        wait_until(lambda: server._subscriptions[0].last_read == 40)  # the connector pushed them all
        wait_until(lambda: stalled.attempts >= 1)
        plugin.stop()
        counts = plugin.inbox.journal.counts()
        assert counts["pending"] + counts["posted"] == 40 and counts["dropped"] == 0
    finally:
        stalled.release()


def test_bad_realtime_url_is_rejected(server, workdir):
    with pytest.raises(InvalidArgumentError, match="invalid realtime_url 'http://x/'"):
        PushjetPlugin(base_url=server.base_url, realtime_url="http://x/")


def test_without_devices_the_connector_is_not_used(make_plugin, server, alerts):
    plugin = make_plugin(str(uuid.uuid4()), alerts, devices=[])
    assert plugin.status().output["path"] == "polling"
    with socket.create_connection(("127.0.0.1", server.connector.port), timeout=2):
        pass  # the connector is up; nobody connected to it
    assert server.connector.connected() == []


# -- reconnect storms, doubled channels, hostile frames, a connection closing (issue 18) ----

#: The storm tests run the production timings (1 s backoff base, 30 s cap and settle, a 30 s
#: window) scaled by this factor; ``STORM_SCALE=1`` measures the real 30 s.
STORM_SCALE = float(os.environ.get("STORM_SCALE", "0.1"))


def test_a_connector_that_accepts_and_drops_every_connection_causes_no_storm(
    make_plugin, bus, server, alerts, device, monkeypatch
):
    monkeypatch.setattr(PushjetPlugin, "BACKOFF_BASE", 1.0 * STORM_SCALE)
    monkeypatch.setattr(PushjetPlugin, "REALTIME_BACKOFF_CAP", 30.0 * STORM_SCALE)
    monkeypatch.setattr(PushjetPlugin, "REALTIME_SETTLE", 30.0 * STORM_SCALE, raising=False)  # new
    server.connector.drop_new = True  # another client took the device's connection, each time
    plugin = make_plugin(device, alerts, poll_interval=5)
    plugin.start()
    time.sleep(30.0 * STORM_SCALE)
    connections = sum(1 for r in server.connector.requests if r[2] == 101)
    events = bus.of(PushjetConnectedEvent) + bus.of(PushjetDisconnectedEvent)
    print(f"\nstorm: pushjet/realtime {connections} connections, {len(events)} events in 30 s (x{STORM_SCALE:g})")
    assert 2 <= connections <= 8 and len(events) <= 4
    assert [e.args["path"] for e in bus.of(PushjetDisconnectedEvent)] == ["realtime"]  # one outage: one event


def test_main_ended_by_an_error_neither_doubles_nor_leaves_connections(
    make_plugin, bus, server, remote, alerts, device, caplog
):
    plugin = make_plugin(device, alerts)
    poll, failed = plugin._poll, []

    def poll_failing_once() -> float:
        if not failed:
            failed.append(1)
            time.sleep(0.3)  # the channel is up by now
            raise RuntimeError("a bug in the poll loop")
        return poll()

    plugin._poll = poll_failing_once
    plugin.start()  # Platypush's runner logs the error and runs main() again
    wait_until(lambda: failed and "a bug in the poll loop" in caplog.text)
    wait_until(lambda: on_realtime(plugin), timeout=5)
    time.sleep(0.5)
    assert server.connector.connected() == [device]  # one connection, not two
    remote.send(alerts.secret_key, "once")
    wait_until(lambda: message_texts(bus) == ["once"])
    time.sleep(0.3)
    assert message_texts(bus) == ["once"]  # one event, not one per connection
    plugin.stop()
    wait_until(lambda: server.connector.connected() == [], timeout=2)  # none left open


class HugeFrames(SandboxServer):
    """A connector that answers the uuid with ``{"status": "ok"}``, then a hostile frame:
    a header announcing ``announce`` bytes, or fragments without end; counts what it got out."""

    name = "huge-frames"
    mode, sent, limit = "header", 0, 16 << 20

    def setup_routes(self) -> None:
        self.route("GET", "/", self._connect)

    def _connect(self, request: Request) -> None:
        sock = accept_upgrade(request)
        ws_read(sock)
        sock.sendall(ws_frame(b'{"status": "ok"}', TEXT))
        chunk = b"x" * 65_000
        if self.mode == "header":
            sock.sendall(bytes([0x81, 127]) + struct.pack("!Q", 1 << 30))  # 1 GiB announced
            frames = (chunk for _ in range(self.limit // len(chunk)))
        else:  # a text frame without FIN, then continuation frames without FIN
            frames = (
                bytes([0x01 if i == 0 else 0x00, 126]) + struct.pack("!H", len(chunk)) + chunk
                for i in range(self.limit // len(chunk))
            )
        type(self).sent = 0
        try:
            for data in frames:
                sock.sendall(data)
                type(self).sent += len(data)
        except OSError:
            pass  # the client dropped the connection
        return None


@pytest.mark.parametrize("mode", ["header", "fragments"])
def test_a_hostile_connector_cannot_make_the_channel_buffer_a_huge_message(start_server, device, mode):
    HugeFrames.mode = mode
    hostile = start_server(HugeFrames)
    channel = Channel(f"ws://127.0.0.1:{hostile.port}/", device, max_message=1 << 20)
    wait_until(lambda: channel.errors, timeout=10)
    channel.close()
    assert "dropped the connection: a " in channel.errors[0] and len(channel.errors[0]) <= 500
    assert HugeFrames.sent < 8 << 20  # of the 16 MiB offered: the channel stopped reading at 1 MiB
    assert RealtimeChannel(f"ws://127.0.0.1:{hostile.port}/", device, print, print).max_message == 16 << 20


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """The server's and the client's ends of a TCP connection on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        client = socket.create_connection(listening.getsockname()[:2], timeout=5)
        return listening.accept()[0], client


def test_the_sandbox_pushes_nothing_into_a_connection_whose_client_went_away(server, remote, alerts, device):
    ours, theirs = tcp_pair()
    connection = _Connection(ours, device, server.topics(device), _ws_text)
    server.connector._connections.append(connection)  # no reader yet: as if it had not run
    theirs.close()  # the client went away
    remote.send(alerts.secret_key, "kept for the next connection")
    assert [m.message for m in server.take_unread(device)] == ["kept for the next connection"]
    ours_again, theirs_again = tcp_pair()
    closing = _Connection(ours_again, device, server.topics(device), _ws_text)
    server.connector._connections[:] = [closing]
    theirs_again.sendall(bytes([0x88, 0x80]) + b"\0\0\0\0")  # a close frame, not read yet
    remote.send(alerts.secret_key, "kept too")
    assert [m.message for m in server.take_unread(device)] == ["kept too"]
    server.connector._connections.clear()
    ours.close(), ours_again.close(), theirs_again.close()


def test_a_handshake_that_never_ends_is_given_up_at_the_connect_timeout(device):
    """Header lines trickled a byte at a time (each read within the timeout): one deadline."""
    stop = threading.Event()

    def trickle(listening: socket.socket) -> None:
        sock = listening.accept()[0]
        sock.recv(4096)
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nX-Endless: ")
        while not stop.wait(0.05):
            with contextlib.suppress(OSError):
                sock.sendall(b"y")
        sock.close()

    with socket.create_server(("127.0.0.1", 0)) as listening:
        threading.Thread(target=trickle, args=(listening,), daemon=True).start()
        channel = Channel(f"ws://127.0.0.1:{listening.getsockname()[1]}/", device, connect_timeout=0.5)
        started = time.monotonic()
        wait_until(lambda: channel.errors, timeout=5)
        stop.set()
        channel.close()
    assert time.monotonic() - started < 2
    assert "no complete handshake within 0.5 s" in channel.errors[0]
