"""End to end, the realtime path: one real ``platypush`` process (real Redis, the installed
bundle) with ``realtime_url`` set to the Pushjet sandbox's WebSocket connector. A message sent
over ``/execute pushjet.send`` fires a ``config.yaml`` hook through the connector, then through
polling while the connector is down, then through the connector once it is back; a message sent
while Platypush is stopped fires it after the restart; 40 messages sent while Platypush is
stopping (SIGINT) fire 40 hooks after the restart, on polling and on the connector (issue 18:
hook runs counted by their ``http.post`` to a recording server, not by ``/ws/events``)."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.pushjet import PushjetServer
from tests.e2e.pushjet import send_and_wait_hook, wait_path

MESSAGE = "platypush_ext.pushjet.events.PushjetMessageEvent"
CONNECTED = "platypush_ext.pushjet.events.PushjetConnectedEvent"
DISCONNECTED = "platypush_ext.pushjet.events.PushjetDisconnectedEvent"
POLL_INTERVAL = 4  # the plugin's minimum: a message polled takes up to 4 s, one pushed milliseconds


class Recorder(ThreadingHTTPServer):
    """Where the restart hook's ``http.post`` lands: the texts, in order."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/pushjet"

    def count(self, texts: list[str]) -> int:
        with self.lock:
            return len(set(texts) & set(self.texts))


class _RecorderHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with self.server.lock:
            self.server.texts.append(body)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def env(serve, launch):
    server, recorder = serve(PushjetServer), Recorder()
    remote = PushjetClient(server.base_url)
    alerts = remote.create_service("Alerts")
    device = str(uuid.uuid4())
    remote.subscribe(device, alerts.public_key)
    config = {
        "pushjet": {
            "base_url": server.base_url,
            "realtime_url": server.realtime_url,
            "devices": [device],
            "services": {"alerts": {"secret": alerts.secret_key}},
            "poll_interval": POLL_INTERVAL,
        },
        "event.hook.RealtimePushjetMessage": {
            "if": {"type": MESSAGE, "title": "door"},
            "then": [{"action": "variable.set", "args": {"door": "${message}"}}],
        },
        "event.hook.RestartPushjetMessage": {
            "if": {"type": MESSAGE, "title": "restart"},
            "then": [{"action": "http.post", "args": {"url": recorder.url, "data": "${message}"}}],
        },
    }
    platypush = launch(config, "platypush")
    yield {"platypush": platypush, "server": server, "remote": remote, "alerts": alerts, "recorder": recorder}
    platypush.stop()
    recorder.shutdown()


def polls_since(server: PushjetServer, since: int) -> int:
    return sum(1 for method, path, _ in server.requests[since:] if (method, path) == ("GET", "/message"))


def test_hook_fires_via_the_connector_then_polling_then_the_connector_again(env):
    platypush, server = env["platypush"], env["server"]
    wait_path(platypush, "realtime", 20)
    since = len(server.requests)
    assert send_and_wait_hook(platypush, "opened (pushed)", 5) < 2
    assert polls_since(server, since) == 0  # the connector carried it

    with platypush.events() as events:
        server.connector.stop()
        down = events.wait_for(lambda e: e["type"] == DISCONNECTED, 10)
        assert (down["path"], down["realtime_url"]) == ("realtime", server.realtime_url)
        wait_path(platypush, "polling", 5)
        since = len(server.requests)
        send_and_wait_hook(platypush, "closed (polled)", POLL_INTERVAL + 6)
        assert polls_since(server, since) >= 1

        server.connector.start()
        up = events.wait_for(lambda e: e["type"] == CONNECTED and e["path"] == "realtime", 40)
        assert up["realtime_url"] == server.realtime_url
    wait_path(platypush, "realtime", 5)
    since = len(server.requests)
    assert send_and_wait_hook(platypush, "opened again (pushed)", 5) < 2
    assert polls_since(server, since) == 0


def test_hook_does_not_fire_for_another_title(env):
    platypush = env["platypush"]
    platypush.run("variable.set", door="unchanged")
    with platypush.events() as events:
        platypush.run("pushjet.send", service="alerts", message="the window", title="window")
        events.wait_for(lambda e: e["type"] == MESSAGE and e["message"] == "the window", 10)
    time.sleep(1)  # give a wrongly matching hook the time to run
    assert platypush.run("variable.get", name="door")["door"] == "unchanged"


def test_a_message_sent_while_platypush_is_stopped_fires_the_hook_after_a_restart(env):
    platypush, server = env["platypush"], env["server"]
    platypush.stop()
    deadline = time.monotonic() + 10
    while server.connector.connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.connector.connected() == []
    env["remote"].send(env["alerts"].secret_key, "opened while stopped", title="door")  # stays unread
    platypush.start()
    deadline = time.monotonic() + 20
    while platypush.run("variable.get", name="door")["door"] != "opened while stopped":
        assert time.monotonic() < deadline, "the hook did not run after the restart"
        time.sleep(0.1)
    wait_path(platypush, "realtime", 20)


def test_what_is_sent_while_platypush_stops_fires_every_hook_after_the_restart(env):
    platypush, server, recorder = env["platypush"], env["server"], env["recorder"]
    for path in ("realtime", "polling"):
        if path == "polling":
            server.connector.stop()  # the listener falls back to polling, and stays there
        wait_path(platypush, path, 20)
        texts = [f"{path}-{i}" for i in range(40)]
        platypush._proc.send_signal(signal.SIGINT)  # a clean stop, as Ctrl-C or systemd's KillSignal=SIGINT
        time.sleep(0.3)
        for text in texts:  # while Platypush stops: its connection to the connector may still be open
            env["remote"].send(env["alerts"].secret_key, text, title="restart")
        platypush._proc.wait(20)
        platypush.stop()  # it exited: stops nothing more, only collects it
        platypush.start()
        deadline = time.monotonic() + 20
        while recorder.count(texts) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"\nrestart: pushjet/{path} {recorder.count(texts)}/40")
        assert recorder.count(texts) == 40, f"{path}: {recorder.count(texts)}/40 hooks ran after the restart"
