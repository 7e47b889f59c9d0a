"""mbed: notifications per second from the sandbox's long-poll channel into the
Platypush bus (counted at the bus, checking that none is lost) next to a bare
loop that consumes the same channel and decodes the batches without Platypush,
and the latency from a device value change to a hook's action at 100/s.

The sandbox runs in its own process. Device values are changed through its
control API; the benchmark devices are subscribed by a pre-subscription.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from benchmarks.support import median, percentile, sandbox_process
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.messages import parse_message
from platypush_ext.sandbox.runner import PlatypushProcess

KEY = "bench-mbed-access-key-0001"
PATH = "/3303/0/5700"
THROUGHPUT_EP, LATENCY_EP = "bench-tput", "bench-lat"
EVENT_TYPE = b"platypush_ext.mbed.events.MbedNotificationEvent"


def _control(url: str) -> requests.Session:
    session = requests.Session()
    session.headers["Content-Type"] = "application/json"
    return session


def _inject(session: requests.Session, url: str, endpoint: str, total: int, prefix: str, chunk: int = 500) -> float:
    """Queue ``total`` numbered value changes in chunks; returns when the first was queued."""
    first = time.perf_counter()
    for start in range(0, total, chunk):
        count = min(chunk, total - start)
        answer = session.put(
            f"{url}/_sandbox/devices/{endpoint}/values{PATH}",
            timeout=10,
            json={"value": prefix, "count": count, "numbered_from": start},
        )
        answer.raise_for_status()
        assert answer.json()["notifications"] == count, answer.text
    return first


def _bare_loop(url: str, total: int) -> tuple[float, int]:
    """A plain client: pull + decode until ``total`` numbered values were seen."""
    client = MbedClient(url, KEY, pull_timeout=10)
    client.pull(no_wait=True)  # drain
    seen: set[str] = set()
    session = _control(url)
    producer = threading.Thread(target=_inject, args=(session, url, THROUGHPUT_EP, total, "b"))
    started = time.perf_counter()
    producer.start()
    deadline = time.monotonic() + 120
    while len(seen) < total and time.monotonic() < deadline:
        message = client.pull()
        if message:
            items, _ = parse_message(message)
            seen.update(i.data["value"] for i in items if i.kind == "notifications")
    elapsed = time.perf_counter() - started
    producer.join()
    client.close()
    return len(seen) / elapsed, len(seen)


class _BusCounter:
    """Counts the mbed notification events published on Platypush's Redis bus."""

    def __init__(self, redis_port: int, prefix: bytes):
        import redis

        self.values: set[bytes] = set()
        self.pattern = re.compile(rb'"value": "(' + prefix + rb'\d+)"')
        self._redis = redis.Redis(port=redis_port)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe("platypush/bus")
        self._stop = threading.Event()
        self.last = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message and EVENT_TYPE in message["data"]:
                match = self.pattern.search(message["data"])
                if match:
                    self.values.add(match.group(1))
                    self.last = time.perf_counter()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._pubsub.close()


class _Receiver(BaseHTTPRequestHandler):
    """Where the hook's action (``http.post``) lands: records the arrival time per value."""

    arrivals: dict[str, float] = {}  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        _Receiver.arrivals[body] = time.perf_counter()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _ReceiverServer(ThreadingHTTPServer):
    # socketserver's default listen backlog (5) overflows when a few hook actions arrive
    # together; a dropped SYN is retransmitted after 1 s, which would be measured as latency
    request_queue_size = 128
    daemon_threads = True


def run(quick: bool = False) -> list[str]:
    total, latency_seconds = (3000, 3) if quick else (20000, 10)
    lines = []
    receiver = _ReceiverServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    receiver_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    with sandbox_process(
        "mbed", "--api-key", KEY, "--pull-timeout", "10", "--auto-change", "0", "--no-demo-devices"
    ) as url:
        control = _control(url)
        setup = MbedClient(url, KEY)
        setup.put_pre_subscriptions([{"endpoint-name": "bench-*"}])
        for endpoint in (THROUGHPUT_EP, LATENCY_EP):
            control.post(
                url + "/_sandbox/devices",
                timeout=10,
                json={"name": endpoint, "type": "Sensor", "resources": [{"path": PATH, "value": "0"}]},
            ).raise_for_status()

        print(f"bare loop: {total} notifications ...", flush=True)
        bare_rate, bare_seen = _bare_loop(url, total)
        print(f"  {bare_rate:.0f}/s, {bare_seen}/{total} seen", flush=True)

        config = {
            "mbed": {"base_url": url, "api_key": KEY, "channel": "long_poll", "pull_timeout": 15},
            "event.hook.BenchLatency": {
                "if": {"type": EVENT_TYPE.decode(), "endpoint": LATENCY_EP},
                "then": [{"action": "http.post", "args": {"url": receiver_url, "data": "${value}"}}],
            },
        }
        with tempfile.TemporaryDirectory() as run_dir, PlatypushProcess(config, run_dir) as platypush:
            platypush.run("mbed.status")
            time.sleep(1.0)  # the channel's first poll
            counter = _BusCounter(platypush.redis_port, b"p")
            print(f"Platypush: {total} notifications into the bus ...", flush=True)
            first = _inject(control, url, THROUGHPUT_EP, total, "p")
            deadline = time.monotonic() + 120
            while len(counter.values) < total and time.monotonic() < deadline:
                time.sleep(0.05)
            bus_seen = len(counter.values)
            bus_rate = bus_seen / (counter.last - first) if counter.last else 0.0
            counter.close()
            print(f"  {bus_rate:.0f}/s, {bus_seen}/{total} at the bus", flush=True)
            # A marker behind the burst: its hook runs once Platypush's main loop has
            # worked through the backlog (before that, latencies would measure the queue).
            control.put(
                f"{url}/_sandbox/devices/{LATENCY_EP}/values{PATH}", json={"value": "marker"}, timeout=10
            ).raise_for_status()
            deadline = time.monotonic() + 120
            while "marker" not in _Receiver.arrivals and time.monotonic() < deadline:
                time.sleep(0.01)
            drained = _Receiver.arrivals.get("marker")
            processed_rate = total / (drained - first) if drained else 0.0
            print(f"  Platypush's main loop worked through the burst at {processed_rate:.0f}/s", flush=True)
            time.sleep(3.0)

            print(f"latency: 100 value changes/s for {latency_seconds} s ...", flush=True)
            sent: dict[str, float] = {}
            count = 100 * latency_seconds
            started = time.perf_counter()
            for i in range(count):
                target = started + i / 100
                pause = target - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                value = f"L{i}"
                sent[value] = time.perf_counter()
                control.put(
                    f"{url}/_sandbox/devices/{LATENCY_EP}/values{PATH}", json={"value": value}, timeout=10
                ).raise_for_status()
            deadline = time.monotonic() + 20
            while not all(v in _Receiver.arrivals for v in sent) and time.monotonic() < deadline:
                time.sleep(0.05)
            latencies = [(_Receiver.arrivals[v] - t) * 1000 for v, t in sent.items() if v in _Receiver.arrivals]
            missing = [v for v in sent if v not in _Receiver.arrivals]
            if missing:
                print(f"  no hook action seen for {missing[:10]}", flush=True)
            platypush.run("mbed.status")
            slow = [(i, round(lat)) for i, lat in enumerate(latencies) if lat > 100]
            if slow:
                print(f"  changes slower than 100 ms (index, ms): {slow[:20]}", flush=True)
        setup.close()
    receiver.shutdown()
    receiver.server_close()

    p50, p99 = (median(latencies), percentile(latencies, 99)) if latencies else (float("nan"), float("nan"))
    ratio = bus_rate / bare_rate if bare_rate else 0.0
    lines += [
        "| measurement | result |",
        "|---|---|",
        (
            f"| bare loop (pull + decode, no Platypush), {total} notifications | {bare_rate:,.0f}/s "
            f"({bare_seen}/{total} seen) |"
        ),
        (
            f"| sandbox channel → MbedPlugin → Platypush bus (counted at Redis), {total} notifications | "
            f"{bus_rate:,.0f}/s ({bus_seen}/{total} at the bus, {total - bus_seen} lost) |"
        ),
        f"| bus rate / bare-loop rate | {ratio:.2f} |",
        (
            f"| the same burst worked through by Platypush's main loop (hook matching of every event; "
            f"a marker event's hook ran after the burst) | {processed_rate:,.0f}/s |"
        ),
        (
            f"| value change → hook action (`http.post`) at 100/s, {count} changes | p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms ({len(latencies)}/{count} arrived) |"
        ),
    ]
    return lines
