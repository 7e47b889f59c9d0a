"""End to end: a clean restart of Platypush loses nothing the mbed service hands out meanwhile.

For each notification channel (long poll, callback, WebSocket) and each API mode (``connector``,
``pelion``): a real Platypush runs the mbed plugin against the sandbox, with a hook per
notification whose ``http.post`` reaches a recording server here (hook runs counted by their side
effect, never from ``/ws/events`` alone). Platypush is stopped with SIGINT while its channel is
held by the service, 40 notifications are queued at once right after the stop — without waiting
for the service to notice anything — and Platypush is started again: all 40 hooks must run.

Before the fix, the long poll that the stopped Platypush left held took the whole batch to a
connection nobody read (0 of 40), and the WebSocket pushed it into a socket that had closed.

The same Platypush also checks item 3 of issue 18: a script on ``ApplicationStartedEvent`` calls
``mbed.subscribe`` the moment Platypush is ready (the plugin's channel is still starting) and
posts the answer here: it must be the subscription, not ``HTTP 412: No notification channel``.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.runner import PlatypushProcess, redis_server_binary
from tests.support import wait_until

pytestmark = pytest.mark.skipif(
    not redis_server_binary(), reason="redis-server is not installed (make test installs it)"
)

KEY = "e2e-restart-mbed-key-0001"
NODE, PATH, COUNT = "restart-node", "/3303/0/5700", 40
CASES = [(channel, api) for api in ("connector", "pelion") for channel in ("long_poll", "callback", "websocket")]

# What a user's procedure on ApplicationStartedEvent does: subscribe at once, record the answer.
SCRIPT = """
import json

from platypush import run, when
from platypush.message.event.application import ApplicationStartedEvent


@when(ApplicationStartedEvent)
def subscribe_at_start(event, **_):
    try:
        answer = "ok " + json.dumps(run("mbed.subscribe", endpoint={endpoint!r}, path={path!r}, timeout=15))
    except Exception as exc:
        answer = "error " + str(exc)
    run("http.post", url={url!r}, data=answer)
"""


class Recorder(ThreadingHTTPServer):
    """Where the hooks' ``http.post`` lands: ``POST /<what>`` with a text body."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        self.hits: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, what: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{what}"

    def texts(self, what: str) -> list[str]:
        with self.lock:
            return list(self.hits.get(what, []))


class _RecorderHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with self.server.lock:
            self.server.hits.setdefault(self.path.strip("/"), []).append(body)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.shutdown()
    server.server_close()


def held(mbed: MbedServer, channel: str) -> bool:
    """Whether the service holds the plugin's channel (a poll waiting, a callback, an open WebSocket)."""
    if channel == "long_poll":
        return bool(mbed._polling)
    if channel == "websocket":
        return mbed.channel == "websocket" and mbed._ws_connected
    return mbed.channel == "callback"


@pytest.mark.parametrize(("channel", "api"), CASES, ids=[f"{c}-{a}" for c, a in CASES])
def test_a_clean_restart_right_after_the_stop_loses_nothing(
    channel: str, api: str, recorder: Recorder, tmp_path: Any
) -> None:
    mbed = MbedServer(api_key=KEY, pull_timeout=5, api=api, callback_retry_max=1.0).start()
    endpoint = mbed.add_device(NODE, "Sensor", resources=[{"path": PATH, "value": "0"}]).name
    mbed.subscriptions.add((endpoint, PATH))  # item 2 does not depend on the start-up subscribe (item 3)
    config = {
        "mbed": {
            "base_url": mbed.base_url,
            "api_key": KEY,
            "api": api,
            "channel": channel,
            "pull_timeout": 8,
            "entities_enabled": False,
        },
        "event.hook.RestartMbed": {
            "if": {"type": "platypush_ext.mbed.events.MbedNotificationEvent", "endpoint": endpoint},
            "then": [{"action": "http.post", "args": {"url": recorder.url("mbed"), "data": "${value} ${journal_id}"}}],
        },
    }
    script = SCRIPT.format(endpoint=endpoint, path=PATH, url=recorder.url("start"))
    platypush = PlatypushProcess(config, tmp_path / "platypush", scripts={"restart_hooks.py": script})
    try:
        platypush.start()
        wait_until(lambda: recorder.texts("start"), timeout=20, interval=0.1)
        wait_until(lambda: held(mbed, channel), timeout=10, interval=0.05)
        platypush.stop()  # SIGINT: a clean stop
        texts = [f"r{i}" for i in range(COUNT)]
        assert mbed.set_value(endpoint, PATH, "r", count=COUNT, numbered_from=0) == COUNT  # at once, no waiting
        platypush.start()
        try:
            wait_until(lambda: set(texts) <= {t.split(" ")[0] for t in recorder.texts("mbed")}, timeout=20)
        except AssertionError:
            pass  # the assertion below says how many
        seen = Counter(t.split(" ")[0] for t in recorder.texts("mbed"))
        ran = sum(1 for t in texts if t in seen)
        print(f"\nrestart: {channel}/{api} {ran}/{COUNT}")
        assert ran == COUNT, f"{channel}/{api}: {ran}/{COUNT} hooks ran after the restart (queue: {mbed.queued()})"
        first = recorder.texts("start")[0]
        assert first.startswith("ok "), f"mbed.subscribe at ApplicationStartedEvent answered: {first}"
        assert platypush.run("mbed.status")["journal"]["pending"] == 0
    finally:
        platypush.stop()
        mbed.stop()
