"""mbed entities: what showing the fleet on Platypush's Home panel costs, in one Platypush run.

* start-up: the requests the plugin makes to show a fleet of simulated endpoints (counted by the
  sandbox's request log, per kind, and by the plugin), the time until every entity is in Platypush's
  database (counted in its SQLite file) and Platypush's resident memory then;
* device change -> ``EntityUpdateEvent`` on ``/ws/events``: 8 changes 1.6 s apart (p50, max), and
  100 changes/s (p50, p99), with Platypush's own ``variable`` entity as the engine's floor;
* the runs of a hook on ``EntityUpdateEvent`` for those 8 changes (counted by its ``http.post``: one
  per change), and the value Platypush's database holds after one more change (persisted);
* Platypush's CPU per device change, a new value and the same value again (idle subtracted);
* a hook's sustained rate: device changes (sandbox -> channel -> plugin, entities on) reaching a
  hook, next to Platypush's own ceiling for the same hook: events of the same class published
  straight onto its Redis bus by a bare script.

The sandbox runs in its own process. ``python -m benchmarks.bench_mbed_entities N`` measures the
start-up alone for a fleet of ``N`` endpoints.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator

import psutil
import requests

from benchmarks.bench_mbed import _Receiver, _ReceiverServer
from benchmarks.support import median, percentile, sandbox_process
from platypush_ext.mbed.events import MbedNotificationEvent
from platypush_ext.sandbox.runner import PlatypushProcess

KEY = "bench-mbed-entities-key-0001"
PATH = "/3303/0/5700"
HOOK_EP, LAT_EP = "bench-hook", "bench-lat"
UPDATE = "platypush.message.event.entities.EntityUpdateEvent"


def _wait(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _start_up(pp: PlatypushProcess, url: str, fleet: int) -> tuple[list[str], float]:
    """Until every simulated endpoint shows all its values; the requests it took, by kind."""
    started = time.perf_counter()
    pp.start()

    def log_size() -> int:  # the API's requests (the control API's, these included, do not count)
        log = requests.get(url + "/_sandbox/requests", timeout=10).json()["requests"]
        return sum(not e["path"].startswith("/_sandbox") for e in log)

    # counted in Platypush's database file (entities.get of a big fleet takes Platypush longer than
    # its 60 s /execute limit; mbed.status publishes part of the fleet again)
    _wait(lambda: _stored(pp) >= 5 * fleet + 4, max(300, fleet / 5), 0.5)
    sizes = [log_size()]
    while len(sizes) < 600 and not (len(sizes) > 4 and len(set(sizes[-5:])) == 1):  # quiet for 1 s
        time.sleep(0.25)
        sizes.append(log_size())
    elapsed = time.perf_counter() - started - 1.0
    log = requests.get(url + "/_sandbox/requests", timeout=10).json()["requests"]
    kinds: collections.Counter[str] = collections.Counter()
    for entry in log:
        path = entry["path"]
        if path == "/v2/endpoints":
            kinds["GET /v2/endpoints"] += 1
        elif "/sim-" in path:
            shape = "/".join(["", *path.split("/")[1:3], "{ep}", *(["{path}"] if path.count("/") > 3 else [])])
            kinds[f"{entry['method']} {shape}"] += 1
    assert pp._proc is not None
    rss = psutil.Process(pp._proc.pid).memory_info().rss / 2**20
    stats = pp.run("mbed.status", timeout=60)["entities"]
    lines = [
        f"| start-up, {fleet} simulated endpoints (4 shown resources each), nothing cached | "
        f"{sum(kinds.values())} requests in {elapsed:.1f} s from Platypush's start: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + f"; of the reads {stats['device_reads']} went to devices (the budget, `entities_max_reads`), "
        f"the others answered from the cache or left for the first notification; {stats['errors']} errors "
        f"(the plugin's own count: {stats['listings']} listings, {stats['subscriptions']} subscriptions, "
        f"{stats['cache_reads']} cache reads, {stats['device_reads']} device reads; the sandbox's log keeps "
        f"the last {len(log)} requests); "
        f"Platypush's main process then {rss:,.0f} MiB resident |"
    ]
    return lines, elapsed


def _stored(pp: PlatypushProcess) -> int:
    """How many mbed entities Platypush's database holds (read from its SQLite file)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{pp.run_dir / 'state' / 'main.db'}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT COUNT(*) FROM entity WHERE plugin = 'mbed'").fetchone()[0])
    except sqlite3.Error:  # not created yet, or locked for a moment
        return 0


def _latency(pp: PlatypushProcess, count: int, rate: float, send: Any, matches: Any) -> list[float]:
    """Per change (``send(value)``, ``count`` of them, ``rate`` a second): ms until an EntityUpdateEvent
    of the entity (``matches(entity)``) shows it, or a later value."""
    seen: list[tuple[float, float]] = []
    done = threading.Event()

    def record(event: dict[str, Any]) -> bool:
        entity = event.get("entity") or {}
        if event.get("type") == UPDATE and matches(entity):
            with contextlib.suppress(TypeError, ValueError):
                seen.append((time.perf_counter(), float(entity["value"])))
        return done.is_set()

    stream = pp.events()
    collector = threading.Thread(target=lambda: _collect(stream, record, count / rate + 15), daemon=True)
    collector.start()
    time.sleep(0.5)
    sent = []
    started = time.perf_counter()
    for i in range(count):
        pause = started + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent.append((time.perf_counter(), float(_next_value())))
        send(sent[-1][1])
    _wait(lambda: seen and seen[-1][1] >= sent[-1][1], 10)
    done.set()
    collector.join(20)
    latencies = []
    for at, value in sent:
        shown = [t for t, v in seen if v >= value and t >= at]
        if shown:
            latencies.append((min(shown) - at) * 1000)
    return latencies


_values = iter(range(1000, 10**9))


def _next_value() -> int:
    """Ever higher values: each change is a change, and "a later value" is a higher one."""
    return next(_values)


def _collect(stream: Any, record: Any, timeout: float) -> None:
    try:
        stream.wait_for(record, timeout=timeout)
    except TimeoutError:
        pass
    finally:
        stream.close()


def _hook_rates(pp: PlatypushProcess, url: str, burst: int) -> tuple[float, float]:
    """(device changes/s reaching the hook with entities on, bare bus events/s reaching it)."""
    import redis

    _Receiver.arrivals.clear()
    started = time.perf_counter()
    requests.put(
        f"{url}/_sandbox/devices/{HOOK_EP}/values{PATH}",
        json={"value": "", "count": burst, "numbered_from": 0},
        timeout=30,
    ).raise_for_status()
    _wait(lambda: len(_Receiver.arrivals) >= burst, 180)
    device_rate = len(_Receiver.arrivals) / (max(_Receiver.arrivals.values()) - started)
    time.sleep(3)
    _Receiver.arrivals.clear()
    bus = redis.Redis(port=pp.redis_port)
    pipeline = bus.pipeline(transaction=False)
    for i in range(burst):
        event = MbedNotificationEvent(endpoint=HOOK_EP, path=PATH, value=str(i), encoding="text", content_type="")
        pipeline.publish("platypush/bus", str(event))
    started = time.perf_counter()
    pipeline.execute()
    _wait(lambda: len(_Receiver.arrivals) >= burst, 180)
    bus_rate = len(_Receiver.arrivals) / (max(_Receiver.arrivals.values()) - started)
    bus.close()
    return device_rate, bus_rate


def _quantiles(latencies: list[float], count: int) -> str:
    if not latencies:
        return f"none of {count} shown"
    return f"p50 {median(latencies):.0f} ms, p99 {percentile(latencies, 99):.0f} ms ({len(latencies)}/{count} shown)"


def _spaced(latencies: list[float], count: int) -> str:
    if not latencies:
        return f"none of {count} shown"
    return f"p50 {median(latencies):.0f} ms, max {max(latencies):.0f} ms ({len(latencies)}/{count} shown)"


def _cpu(pp: PlatypushProcess) -> float:
    """CPU seconds of Platypush's processes so far (the main one and its children but Redis)."""
    assert pp._proc is not None
    main = psutil.Process(pp._proc.pid)
    total = 0.0
    for proc in [main, *main.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            if "redis" not in proc.name():
                total += sum(proc.cpu_times()[:2])
    return total


def _cost_per_change(pp: PlatypushProcess, send: Any, count: int, rate: float, same: bool) -> float:
    """Platypush's CPU ms per device change (``same``: the same value again), idle CPU subtracted."""
    seconds = count / rate
    before = _cpu(pp)
    time.sleep(seconds)
    idle = _cpu(pp) - before
    before = _cpu(pp)
    started = time.perf_counter()
    for i in range(count):
        pause = started + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        send(7 if same else _next_value())
    time.sleep(max(0.0, started + seconds + 1.5 - time.perf_counter()))  # the last ones worked through
    busy = _cpu(pp) - before
    return (busy - idle * (time.perf_counter() - started) / seconds) / count * 1000


class _Counter(BaseHTTPRequestHandler):
    """Where the hook on ``EntityUpdateEvent`` lands: counts its runs (side effects, not ``/ws/events``)."""

    runs: list[str] = []  # noqa: RUF012

    def do_POST(self) -> None:
        _Counter.runs.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _config(url: str, hook_url: str, count_url: str) -> dict[str, Any]:
    return {
        "mbed": {"base_url": url, "api_key": KEY, "channel": "long_poll", "pull_timeout": 15},
        "entities": {},
        "event.hook.BenchEntities": {
            "if": {"type": "platypush_ext.mbed.events.MbedNotificationEvent", "endpoint": HOOK_EP},
            "then": [{"action": "http.post", "args": {"url": hook_url, "data": "v${value}"}}],
        },
        "event.hook.BenchEntityUpdates": {
            "if": {"type": UPDATE, "entity": {"external_id": f"{LAT_EP}{PATH}"}},
            "then": [{"action": "http.post", "args": {"url": count_url, "data": "run"}}],
        },
    }


def _servers() -> tuple[Any, Any]:
    receiver = _ReceiverServer(("127.0.0.1", 0), _Receiver)
    counter = _ReceiverServer(("127.0.0.1", 0), _Counter)
    for server in (receiver, counter):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, counter


@contextlib.contextmanager
def _fleet_sandbox(fleet: int, timeout: float) -> Iterator[tuple[str, str]]:
    """An mbed sandbox process with ``fleet`` simulated endpoints plus the hook and latency devices:
    its URL, and a run folder for Platypush."""
    options = ("--api-key", KEY, "--pull-timeout", "10", "--auto-change", "0", "--no-demo-devices")
    with sandbox_process("mbed", *options) as url, tempfile.TemporaryDirectory() as run_dir:
        control = requests.Session()
        answer = control.post(url + "/_sandbox/fleet", json={"count": fleet, "announce": False}, timeout=timeout)
        answer.raise_for_status()
        for name in (HOOK_EP, LAT_EP):
            device = {"name": name, "type": "Bench", "resources": [{"path": PATH, "value": "0"}]}
            control.post(url + "/_sandbox/devices", json=device, timeout=10).raise_for_status()
        yield url, run_dir


def run(quick: bool = False) -> list[str]:
    fleet, burst, seconds = (100, 1000, 3) if quick else (500, 3000, 10)
    receiver, counter = _servers()
    hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    count_url = f"http://127.0.0.1:{counter.server_address[1]}/count"
    with _fleet_sandbox(fleet, timeout=30) as (url, run_dir):
        pp = PlatypushProcess(_config(url, hook_url, count_url), run_dir)
        try:
            lines = _measure(pp, url, fleet, burst, seconds)
        finally:
            pp.stop()
    for server in (receiver, counter):
        server.shutdown()
        server.server_close()
    return lines


def _measure(pp: PlatypushProcess, url: str, fleet: int, burst: int, seconds: int) -> list[str]:
    print(f"start-up with {fleet} endpoints ...", flush=True)
    lines, _ = _start_up(pp, url, fleet)
    session = requests.Session()

    def send(v: Any) -> None:
        session.put(f"{url}/_sandbox/devices/{LAT_EP}/values{PATH}", json={"value": v}, timeout=10)

    def lat_entity(e: dict[str, Any]) -> bool:
        return e.get("external_id") == f"{LAT_EP}{PATH}"

    print("latency: 8 changes 1.6 s apart ...", flush=True)
    time.sleep(2)
    _Counter.runs.clear()
    spaced = _latency(pp, 8, 1 / 1.6, send, lat_entity)
    _wait(lambda: len(_Counter.runs) >= 8, 5)
    time.sleep(1.5)  # a second run of the hook would arrive meanwhile
    hook_runs = len(_Counter.runs)
    print(f"latency: 100 changes/s for {seconds} s ...", flush=True)
    latencies = _latency(pp, 100 * seconds, 100, send, lat_entity)
    time.sleep(1)
    last = float(_next_value())
    send(last)
    _wait(lambda: any(lat_entity(e) and e.get("value") == last for e in pp.run("entities.get", plugins=["mbed"])), 10)
    stored = {e["external_id"]: e for e in pp.run("entities.get", plugins=["mbed"])}[f"{LAT_EP}{PATH}"]["value"]
    print(f"Platypush's own floor: variable.set 100/s for {seconds} s ...", flush=True)
    floor = _latency(
        pp,
        100 * seconds,
        100,
        lambda v: pp.execute("variable.set", bench_latency=v),
        lambda e: e.get("type") == "variable" and e.get("name") == "bench_latency",
    )
    print("CPU per change: 100 changes, then 100 unchanged values, at 20/s ...", flush=True)
    changed = _cost_per_change(pp, send, 100, 20, same=False)
    send(7)
    time.sleep(1)
    unchanged = _cost_per_change(pp, send, 100, 20, same=True)
    print(f"hook rates: {burst} device changes, then {burst} bus events ...", flush=True)
    device_rate, bus_rate = _hook_rates(pp, url, burst)
    return [
        "| measurement | result |",
        "|---|---|",
        *lines,
        f"| device change → `EntityUpdateEvent` on `/ws/events`, 8 changes 1.6 s apart | {_spaced(spaced, 8)} |",
        f"| runs of a hook on `EntityUpdateEvent` of that entity for those 8 changes (counted by its `http.post`) | "
        f"{hook_runs} |",
        f"| device change → `EntityUpdateEvent` on `/ws/events`, 100 changes/s, {100 * seconds} changes | "
        f"{_quantiles(latencies, 100 * seconds)} |",
        f"| persisted: the entity's value in Platypush's database after one more change | "
        f"{'the latest' if stored == last else f'{stored} (sent {last}): STALE'} |",
        f"| Platypush's own floor in the same run: `variable.set` (an entity too) → `EntityUpdateEvent`, 100/s | "
        f"{_quantiles(floor, 100 * seconds)} |",
        f"| Platypush's CPU per device change (20/s, idle subtracted): a new value / the same value again | "
        f"{changed:.1f} ms / {unchanged:.1f} ms |",
        f"| device changes reaching a hook, entities on, burst of {burst} | {device_rate:,.0f}/s |",
        f"| the same hook's ceiling: {burst} events of the same class published onto the bus by a script | "
        f"{bus_rate:,.0f}/s |",
        f"| ratio | {device_rate / bus_rate if bus_rate else 0:.2f} |",
    ]


def start_up_only(fleet: int) -> list[str]:
    """The start-up row alone, for a fleet of ``fleet`` endpoints (``python -m benchmarks.bench_mbed_entities N``)."""
    with _fleet_sandbox(fleet, timeout=60) as (url, run_dir):
        pp = PlatypushProcess(_config(url, "http://127.0.0.1:9/", "http://127.0.0.1:9/"), run_dir)
        try:
            lines, _ = _start_up(pp, url, fleet)
        finally:
            pp.stop()
    return lines


if __name__ == "__main__":
    import sys

    print("\n".join(start_up_only(int(sys.argv[1]))))
