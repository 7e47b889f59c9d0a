"""mbed entities: what showing the fleet on Platypush's dashboard costs, in one Platypush run.

* start-up: the requests the plugin makes to show a fleet of simulated endpoints (counted by the
  sandbox's request log, per kind) and the time until every entity is in Platypush's database;
* notification -> ``EntityUpdateEvent`` on ``/ws/events`` at 100 changes/s: for each change, the
  time until an update showing it (or a later value) reaches a ``/ws/events`` client;
* a hook's sustained rate: device changes (sandbox -> channel -> plugin, entities on) reaching a
  hook, next to Platypush's own ceiling for the same hook: events of the same class published
  straight onto its Redis bus by a bare script.

The sandbox runs in its own process.
"""

from __future__ import annotations

import collections
import contextlib
import tempfile
import threading
import time
from typing import Any

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

    # (not mbed.status: each call publishes the whole fleet again, as entities.scan wants)
    _wait(lambda: len(pp.run("entities.get", plugins=["mbed"])) >= 5 * fleet + 4, 300, 0.5)
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
    stats = pp.run("mbed.status")["entities"]
    lines = [
        f"| start-up, {fleet} simulated endpoints (4 shown resources each), nothing cached | "
        f"{sum(kinds.values())} requests in {elapsed:.1f} s from Platypush's start: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + f"; of the reads {stats['device_reads']} went to devices (the budget, `entities_max_reads`), "
        f"the others answered from the cache or left for the first notification; {stats['errors']} errors |"
    ]
    return lines, elapsed


def _latency(pp: PlatypushProcess, seconds: int, send: Any, matches: Any) -> list[float]:
    """Per change (``send(value)`` 100 times a second): ms until an EntityUpdateEvent of the entity
    (``matches(entity)``) shows it, or a later value."""
    seen: list[tuple[float, float]] = []
    done = threading.Event()

    def record(event: dict[str, Any]) -> bool:
        entity = event.get("entity") or {}
        if event.get("type") == UPDATE and matches(entity):
            with contextlib.suppress(TypeError, ValueError):
                seen.append((time.perf_counter(), float(entity["value"])))
        return done.is_set()

    stream = pp.events()
    collector = threading.Thread(target=lambda: _collect(stream, record, seconds + 15), daemon=True)
    collector.start()
    time.sleep(0.5)
    sent = []
    started = time.perf_counter()
    for i in range(100 * seconds):
        pause = started + i / 100 - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent.append((time.perf_counter(), 1000.0 + i))
        send(1000 + i)
    _wait(lambda: seen and seen[-1][1] >= sent[-1][1], 10)
    done.set()
    collector.join(20)
    latencies = []
    for at, value in sent:
        shown = [t for t, v in seen if v >= value and t >= at]
        if shown:
            latencies.append((min(shown) - at) * 1000)
    return latencies


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


def run(quick: bool = False) -> list[str]:
    fleet, burst, seconds = (100, 1000, 3) if quick else (500, 3000, 10)
    receiver = _ReceiverServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    options = ("--api-key", KEY, "--pull-timeout", "10", "--auto-change", "0", "--no-demo-devices")
    with sandbox_process("mbed", *options) as url, tempfile.TemporaryDirectory() as run_dir:
        control = requests.Session()
        control.post(url + "/_sandbox/fleet", json={"count": fleet, "announce": False}, timeout=30).raise_for_status()
        for name in (HOOK_EP, LAT_EP):
            device = {"name": name, "type": "Bench", "resources": [{"path": PATH, "value": "0"}]}
            control.post(url + "/_sandbox/devices", json=device, timeout=10).raise_for_status()
        config = {
            "mbed": {"base_url": url, "api_key": KEY, "channel": "long_poll", "pull_timeout": 15},
            "entities": {},
            "event.hook.BenchEntities": {
                "if": {"type": "platypush_ext.mbed.events.MbedNotificationEvent", "endpoint": HOOK_EP},
                "then": [{"action": "http.post", "args": {"url": hook_url, "data": "v${value}"}}],
            },
        }
        pp = PlatypushProcess(config, run_dir)
        try:
            print(f"start-up with {fleet} endpoints ...", flush=True)
            lines, _ = _start_up(pp, url, fleet)
            print(f"latency: 100 changes/s for {seconds} s ...", flush=True)
            session = requests.Session()
            latencies = _latency(
                pp,
                seconds,
                lambda v: session.put(f"{url}/_sandbox/devices/{LAT_EP}/values{PATH}", json={"value": v}, timeout=10),
                lambda e: e.get("external_id") == f"{LAT_EP}{PATH}",
            )
            print(f"Platypush's own floor: variable.set 100/s for {seconds} s ...", flush=True)
            floor = _latency(
                pp,
                seconds,
                lambda v: pp.execute("variable.set", bench_latency=v),
                lambda e: e.get("type") == "variable" and e.get("name") == "bench_latency",
            )
            print(f"hook rates: {burst} device changes, then {burst} bus events ...", flush=True)
            device_rate, bus_rate = _hook_rates(pp, url, burst)
        finally:
            pp.stop()
    receiver.shutdown()
    receiver.server_close()
    return [
        "| measurement | result |",
        "|---|---|",
        *lines,
        f"| notification → `EntityUpdateEvent` on `/ws/events`, 100 changes/s, {100 * seconds} changes | "
        f"{_quantiles(latencies, 100 * seconds)} |",
        f"| Platypush's own floor in the same run: `variable.set` (an entity too) → `EntityUpdateEvent`, 100/s | "
        f"{_quantiles(floor, 100 * seconds)} |",
        f"| device changes reaching a hook, entities on, burst of {burst} | {device_rate:,.0f}/s |",
        f"| the same hook's ceiling: {burst} events of the same class published onto the bus by a script | "
        f"{bus_rate:,.0f}/s |",
        f"| ratio | {device_rate / bus_rate if bus_rate else 0:.2f} |",
    ]
