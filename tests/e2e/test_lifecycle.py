"""End to end: nothing read from a service is lost across Platypush's lifecycle.

A real Platypush runs the pushjet and mbed plugins against the sandbox servers, with a
hook on each message / notification whose action (``http.post``) reaches a recording HTTP
server here, so hook runs are counted for real. (a) Items queued while Platypush is
down fire their hooks after a clean start; (b) Platypush is SIGKILLed at random
moments while it fetches and pulls, at least 20 times, then started once more: every
item fired a hook at least once, and no hook that had finished before a kill ran again (only
the events Platypush's main loop was not done with at a kill are posted again).

Both services' reads are destructive and unacknowledged (``GET /message``, ``GET
/v2/notification/pull``): a kill that lands after the server handed a batch out and
before the plugin journaled it (a few milliseconds) loses that batch, whatever the client
does. The sandboxes here note when they hand each item out, so that such a loss is told
apart from one of ours (and reported) instead of failing the test at random.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.pushjet import PushjetServer
from platypush_ext.sandbox.runner import PlatypushProcess, redis_server_binary
from tests.support import UNMEASURED, wait_until

pytestmark = pytest.mark.skipif(
    not redis_server_binary(), reason="redis-server is not installed (make test installs it)"
)

KEY = "e2e-lifecycle-mbed-key-0001"
NODE, OTHER, PATH = "lifecycle-node", "lifecycle-other", "/3303/0/5700"
#: A kill this soon after a server handed an item out may have caught it in flight.
IN_FLIGHT = 0.3
#: A kill this soon after a hook's action ran may have caught its thread still running: it runs again.
#: Checked: no hook whose action ran more than this before a kill runs again. (Timed by the hook's own
#: clock, :data:`CLOCK`: the hooks that ran again had run 0.02-0.31 s before their kill in 8 runs, quiet
#: or beside six busy loops; about a third of the hooks of the killed runs ran more than 1 s before it.)
HOOK_TAIL = 1.0
#: The clock a hook's action sends (evaluated by Platypush when it runs the action).
CLOCK = "${__import__('time').monotonic()}"


class WatchedPushjet(PushjetServer):
    """The Pushjet sandbox, noting when ``GET /message`` hands each message out."""

    handed: list[tuple[float, str]]

    def _fetch(self, request: Any) -> Any:
        response = super()._fetch(request)
        now = time.monotonic()
        self.handed += [(now, m["message"]) for m in json.loads(response.body)["messages"]]
        return response


class WatchedMbed(MbedServer):
    """The mbed sandbox, noting when a pull takes each notification out of the queue."""

    handed: list[tuple[float, str]]

    def _take_batch(self, limit: int = 100000) -> dict[str, list[Any]] | None:
        message = super()._take_batch(limit)
        now = time.monotonic()
        for element in (message or {}).get("notifications", []):
            self.handed.append((now, base64.b64decode(element["payload"]).decode()))
        return message


def until_kill(at: float, kills: list[float]) -> float:
    """Seconds from ``at`` to the next kill (infinite: none came after)."""
    return min((kill - at for kill in kills if kill >= at), default=float("inf"))


def in_flight(handed: list[tuple[float, str]], kills: list[float], window: float = IN_FLIGHT) -> set[str]:
    """The items handed out (or whose hook ran) less than ``window`` seconds before a kill."""
    return {text for at, text in handed if any(0 <= kill - at < window for kill in kills)}


class Recorder(ThreadingHTTPServer):
    """Where the hooks' ``http.post`` lands: ``/<channel>`` with ``<text> <journal_id> <clock>``, the
    clock read by the hook's action in Platypush (``time.monotonic()``: one clock for every process
    of the machine). Not the time the request arrives: under load, this server's thread may take
    it after the test recorded the kill of the Platypush that sent it."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        self.hits: dict[str, list[tuple[str, str]]] = {"pushjet": [], "mbed": []}
        self.first_run: dict[tuple[str, str], float] = {}  # (channel, text): when its hook's action first ran
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, channel: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{channel}"

    def texts(self, channel: str) -> Counter[str]:
        with self.lock:
            return Counter(text for text, _ in self.hits[channel])


class _RecorderHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        try:
            text, journal_id, clock = body.split(" ")
            ran, channel = float(clock), self.path.strip("/")
        except ValueError:  # not a hook's whole request
            self.send_error(400)
            return
        with self.server.lock:
            self.server.hits.setdefault(channel, []).append((text, journal_id))
            self.server.first_run[(channel, text)] = min(ran, self.server.first_run.get((channel, text), ran))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def env(tmp_path: Any) -> Iterator[dict[str, Any]]:
    pushjet, mbed, recorder = WatchedPushjet().start(), WatchedMbed(api_key=KEY, pull_timeout=1).start(), Recorder()
    pushjet.handed, mbed.handed = [], []
    remote = PushjetClient(pushjet.base_url)
    service, device = remote.create_service("Lifecycle"), str(uuid.uuid4())
    remote.subscribe(device, service.public_key)
    for name in (NODE, OTHER):
        mbed.add_device(name, "Sensor", resources=[{"path": PATH, "value": "0"}])
        mbed.subscriptions.add((name, PATH))
    config = {
        "pushjet": {"base_url": pushjet.base_url, "devices": [device], "poll_interval": 4},
        "mbed": {"base_url": mbed.base_url, "api_key": KEY, "channel": "long_poll", "pull_timeout": 5},
        "event.hook.LifecyclePushjet": {
            "if": {"type": "platypush_ext.pushjet.events.PushjetMessageEvent"},
            "then": [
                {
                    "action": "http.post",
                    "args": {"url": recorder.url("pushjet"), "data": f"${{message}} ${{journal_id}} {CLOCK}"},
                }
            ],
        },
        "event.hook.LifecycleMbed": {
            "if": {"type": "platypush_ext.mbed.events.MbedNotificationEvent", "endpoint": NODE},
            "then": [
                {
                    "action": "http.post",
                    "args": {"url": recorder.url("mbed"), "data": f"${{value}} ${{journal_id}} {CLOCK}"},
                }
            ],
        },
    }
    platypush = PlatypushProcess(config, tmp_path / "platypush")
    yield {
        "platypush": platypush,
        "pushjet": pushjet,
        "mbed": mbed,
        "recorder": recorder,
        "send": lambda text: remote.send(service.secret_key, text),
    }
    platypush.stop()
    recorder.shutdown()
    remote.close()
    mbed.stop()
    pushjet.stop()


def queue(env: dict[str, Any], prefix: str, count: int) -> list[str]:
    """``count`` Pushjet messages and ``count`` mbed notifications, texts ``<prefix><i>``."""
    texts = [f"{prefix}{i}" for i in range(count)]
    for text in texts:
        env["send"](text)
    # at once, while the sandbox may still hold the killed Platypush's poll (as a service
    # does, it notices the closed connection before it hands a batch to it)
    env["mbed"].set_value(NODE, PATH, prefix, count=count, numbered_from=0)
    return texts


def wait_all(recorder: Recorder, texts: list[str], timeout: float) -> None:
    def done() -> bool:
        return all(set(texts) <= set(recorder.texts(channel)) for channel in ("pushjet", "mbed"))

    try:
        wait_until(done, timeout=timeout, interval=0.1)
    except AssertionError:
        pass  # the assertions below say what is missing


def test_items_queued_while_platypush_was_down_fire_their_hooks(env: dict[str, Any]) -> None:
    pp, recorder = env["platypush"], env["recorder"]
    env["mbed"].pull_timeout = 30  # as the Connector: a poll is held ~30 s, longer than Platypush takes to stop
    pp.start()
    wait_until(lambda: env["mbed"]._polling, timeout=10)  # the service holds the plugin's long poll
    pp.stop()  # a clean stop; the plugins have run once
    # right after the stop, without waiting for the service to drop the poll the stopped Platypush held
    texts = [f"clean{i}" for i in range(40)]
    assert env["mbed"].set_value(NODE, PATH, "clean", count=40, numbered_from=0) == 40
    for text in texts:
        env["send"](text)
    env["mbed"].set_value(OTHER, PATH, "other")  # the mbed hook must NOT fire for another endpoint
    pp.start()
    wait_all(recorder, texts, timeout=20)
    for channel in ("pushjet", "mbed"):
        seen = recorder.texts(channel)
        assert sum(1 for t in texts if t in seen) == 40, f"{channel}: {len(set(texts) & set(seen))}/40 hooks ran"
    time.sleep(0.5)
    assert "other" not in recorder.texts("mbed")
    assert pp.run("pushjet.status")["journal"]["pending"] == 0
    assert pp.run("mbed.status")["journal"]["pending"] == 0


def test_nothing_is_lost_when_platypush_is_killed_at_random_moments(env: dict[str, Any]) -> None:
    pp, recorder, rng = env["platypush"], env["recorder"], random.Random()
    kills, texts, per_round, killed_at = 20, [], 10, []
    for round_ in range(kills):
        texts += queue(env, f"k{round_}-", per_round)
        pp.start(wait=False, env=UNMEASURED)  # killed below: its coverage would be lost anyway
        # Platypush's plugins start ~1.5 s in, its bus listens ~1 s later: kill before,
        # during or after the first fetch and pull of the backlog
        time.sleep(rng.uniform(1.2, 3.2))
        pp.kill()
        killed_at.append(time.monotonic())
    pp.start()
    wait_all(recorder, texts, timeout=30)
    report, ours, duplicates, late = [], {}, {}, {}
    for channel in ("pushjet", "mbed"):
        seen = recorder.texts(channel)
        lost = [t for t in texts if t not in seen]
        caught = in_flight(env[channel].handed, killed_at)
        duplicates[channel] = sum(seen[t] - 1 for t in texts if t in seen)
        # a hook still running at a kill runs again (at-least-once); one that had run before must not
        ran = [(at, t) for (c, t), at in recorder.first_run.items() if c == channel]
        running = in_flight(ran, killed_at, HOOK_TAIL)
        late[channel] = sum(seen[t] - 1 for t in texts if seen[t] > 1 and t not in running)
        checked = sum(1 for _, t in ran if t not in running)
        rerun = [until_kill(at, killed_at) for at, t in ran if seen[t] > 1]
        report.append(
            f"{channel}: {len(texts)} items, {kills} kills, {len(lost)} lost "
            f"({len(set(lost) & caught)} in flight at a kill), {duplicates[channel]} duplicate hook runs "
            f"({100 * duplicates[channel] / len(texts):.1f} %, run at most {max(rerun, default=0):.2f} s "
            f"before their kill; {late[channel]} runs again of the {checked} hooks not within {HOOK_TAIL:g} s of a kill)"
        )
        ours[channel] = [t for t in lost if t not in caught]
    # a hook may run before its entry is marked delivered: wait (bounded) for the marks
    wait_until(lambda: all(pp.run(f"{n}.status")["journal"]["pending"] == 0 for n in ("pushjet", "mbed")), timeout=10)
    journals = {name: pp.run(f"{name}.status")["journal"] for name in ("pushjet", "mbed")}
    print("\nlifecycle: " + "; ".join(report) + f"; journals {journals}")
    for channel in ("pushjet", "mbed"):
        assert not ours[channel], (
            f"{channel}: {len(ours[channel])} of {len(texts)} never fired a hook: {ours[channel][:10]}"
        )
    # only what Platypush's main loop was not done with at a kill is posted again: a hook whose action
    # ran but whose thread had not returned runs again (at-least-once), never one that had finished.
    # How many run again depends on how many kills land while hooks run: printed, not bounded (from 0
    # to 36 % of the 400 items in the runs on a quiet machine, see the README)
    assert sum(late.values()) == 0, f"hooks that had finished before a kill ran again: {late}"
    assert all(j["pending"] == 0 for j in journals.values())
