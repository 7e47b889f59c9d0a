"""Pushjet, side by side in one run: message sent → hook ran, through the WebSocket connector
(``realtime_url``) and through polling at the default interval (10 s); and the idle cost of
each, with nothing to receive: CPU seconds and context switches per minute of the listener's
own threads, and of Platypush's whole main process.

One sandbox server (API + connector) in its own process; a real Platypush with
``realtime_url`` for the connector side, then a real Platypush without it (polling only) for
the polling side. The hook's action (``http.post``) lands on a recorder here, which timestamps
it. The listeners' own threads are measured on two plugins run side by side in this process
(Platypush's threads carry no names a process outside could tell apart).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from benchmarks.support import median, percentile, sandbox_process
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.ports import free_port
from platypush_ext.sandbox.runner import PlatypushProcess

MESSAGE = "platypush_ext.pushjet.events.PushjetMessageEvent"
RATE = 10  # messages per second


class _Recorder(BaseHTTPRequestHandler):
    """Where the hook's ``http.post`` lands: the arrival time of each message text."""

    arrivals: dict[str, list[float]] = {}  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        _Recorder.arrivals.setdefault(body, []).append(time.perf_counter())
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _RecorderServer(ThreadingHTTPServer):
    request_queue_size = 128  # a dropped SYN would be retransmitted after 1 s: measured as latency
    daemon_threads = True


def _config(url: str, secret: str, device: str, recorder: str, realtime_url: str | None) -> dict[str, Any]:
    pushjet: dict[str, Any] = {"base_url": url, "devices": [device], "services": {"bench": {"secret": secret}}}
    if realtime_url:
        pushjet["realtime_url"] = realtime_url
    return {
        "pushjet": pushjet,  # poll_interval: the default, 10 s
        "event.hook.BenchPushjet": {
            "if": {"type": MESSAGE, "title": "bench"},
            "then": [{"action": "http.post", "args": {"url": recorder, "data": "${message}"}}],
        },
    }


def _latencies(client: PushjetClient, secret: str, tag: str, count: int, drain: float) -> tuple[list[float], int]:
    """Send ``count`` messages at :data:`RATE`/s; the ms from send to hook, and how many never arrived."""
    sent: dict[str, float] = {}
    started = time.perf_counter()
    for i in range(count):
        pause = started + i / RATE - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        text = f"{tag} {i}"
        sent[text] = time.perf_counter()
        client.send(secret, text, title="bench")
    deadline = time.monotonic() + drain
    while not all(t in _Recorder.arrivals for t in sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    latencies = [(_Recorder.arrivals[t][0] - at) * 1000 for t, at in sent.items() if t in _Recorder.arrivals]
    duplicates = sum(len(_Recorder.arrivals.get(t, [])) - 1 for t in sent if t in _Recorder.arrivals)
    if duplicates:
        print(f"  {duplicates} hook runs beyond the first", flush=True)
    slow = [(i, round(ms)) for i, ms in enumerate(latencies) if ms > 100]
    if slow and len(slow) < len(latencies) / 2:
        print(f"  {len(slow)} slower than 100 ms (index, ms): {slow[:20]}", flush=True)
    return latencies, count - len(latencies)


def _switches(pid: int) -> int:
    """Context switches (voluntary: wake-ups; and involuntary) of every thread of ``pid``
    (``psutil.Process.num_ctx_switches`` counts only the main thread on Linux)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # a thread that just ended
            continue
        total += sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)
    return total


def _idle(platypush: PlatypushProcess, seconds: float) -> tuple[float, float]:
    """CPU seconds and context switches per minute of Platypush's main process over ``seconds``."""
    assert platypush._proc is not None
    process = psutil.Process(platypush._proc.pid)
    cpu, switches = sum(process.cpu_times()[:2]), _switches(process.pid)
    time.sleep(seconds)
    cpu, switches = sum(process.cpu_times()[:2]) - cpu, _switches(process.pid) - switches
    return cpu * 60 / seconds, switches * 60 / seconds


def _on(platypush: PlatypushProcess, path: str) -> bool:
    """Whether the listener receives by ``path`` (and, polling, has polled once)."""
    status = platypush.run("pushjet.status")
    return status["path"] == path and (path == "realtime" or bool(status["reachable"]))


class _Bus:
    """Platypush's bus, for the listeners run in this process: posts go nowhere."""

    def post(self, event: Any) -> None:
        pass


def _thread_cost(tid: int) -> tuple[float, int]:
    """CPU seconds and context switches (wake-ups and preemptions) of one thread of this process."""
    task = Path(f"/proc/self/task/{tid}")
    fields = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    lines = task.joinpath("status").read_text().splitlines()
    return cpu, sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)


def _cost(tids: list[int]) -> tuple[float, int]:
    """The summed :func:`_thread_cost` of threads."""
    costs = [_thread_cost(tid) for tid in tids]
    return sum(c[0] for c in costs), sum(c[1] for c in costs)


def _listeners_idle(url: str, realtime_url: str, seconds: float) -> dict[str, tuple[float, float]]:
    """Two Pushjet listeners side by side in this process (the same plugin code as in Platypush),
    one on the connector, one polling at the default interval: the CPU seconds and context
    switches per minute of each one's own threads, with nothing to receive."""
    import platypush.context
    from platypush.config import Config

    from platypush_ext.pushjet.plugin import PushjetPlugin

    run_dir = tempfile.mkdtemp(prefix="bench-pushjet-realtime-")
    Path(run_dir, "config.yaml").write_text(f"workdir: {run_dir}/workdir\ncachedir: {run_dir}/cache\n")
    Config.init(str(Path(run_dir, "config.yaml")))
    platypush.context.get_context().bus = _Bus()
    client, plugins = PushjetClient(url), {}
    for path, ws_url in (("realtime", realtime_url), ("polling", None)):
        device, service = str(uuid.uuid4()), client.create_service(path)
        client.subscribe(device, service.public_key)
        plugins[path] = PushjetPlugin(base_url=url, devices=[device], realtime_url=ws_url)
        plugins[path].start()
    deadline = time.monotonic() + 30
    while any(p.status().output["path"] != path for path, p in plugins.items()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(12)  # past the first poll of both, and the connector's replay
    threads = {path: [p._thread.native_id] for path, p in plugins.items()}
    device = plugins["realtime"]._devices[0]
    threads["realtime"] += [t.native_id for t in threading.enumerate() if t.name == f"pushjet-realtime-{device[:8]}"]
    before = {path: _cost(tids) for path, tids in threads.items()}
    print(f"listener threads {threads}: idle for {seconds:.0f} s ...", flush=True)
    time.sleep(seconds)
    after = {path: _cost(tids) for path, tids in threads.items()}
    for plugin in plugins.values():
        plugin.stop()
    client.close()
    return {
        path: tuple((a - b) * 60 / seconds for a, b in zip(after[path], before[path], strict=True)) for path in threads
    }


def _side(
    url: str, realtime_url: str | None, recorder: str, count: int, idle: float, drain: float
) -> tuple[list[float], int, float, float]:
    """One Platypush: its latencies, lost messages and idle cost."""
    client = PushjetClient(url)
    service = client.create_service("bench")
    device = str(uuid.uuid4())
    client.subscribe(device, service.public_key)
    path = "realtime" if realtime_url else "polling"
    config = _config(url, service.secret_key or "", device, recorder, realtime_url)
    with tempfile.TemporaryDirectory() as run_dir, PlatypushProcess(config, run_dir) as platypush:
        deadline = time.monotonic() + 30
        while not _on(platypush, path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the listener is not on {path}")
            time.sleep(0.2)
        print(f"{path}: {count} messages at {RATE}/s ...", flush=True)
        latencies, lost = _latencies(client, service.secret_key or "", path, count, drain)
        print(f"  p50 {median(latencies):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, {lost} lost", flush=True)
        time.sleep(2)
        print(f"{path}: idle for {idle:.0f} s ...", flush=True)
        cpu, switches = _idle(platypush, idle)
        print(f"  {cpu:.3f} CPU s/min, {switches:.0f} context switches/min", flush=True)
        assert platypush.run("pushjet.status")["path"] == path
    client.close()
    return latencies, lost, cpu, switches


def run(quick: bool = False) -> list[str]:
    pushed, polled, idle = (50, 30, 15.0) if quick else (1000, 300, 30.0)
    recorder = _RecorderServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{recorder.server_address[1]}/hook"
    realtime_port = free_port()
    with sandbox_process("pushjet", "--realtime-port", str(realtime_port)) as url:
        ws_url = f"ws://127.0.0.1:{realtime_port}"
        rt, rt_lost, rt_cpu, rt_switches = _side(url, ws_url, hook_url, pushed, idle, drain=10)
        po, po_lost, po_cpu, po_switches = _side(url, None, hook_url, polled, idle, drain=25)
        own = _listeners_idle(url, ws_url, idle * 2)
    recorder.shutdown()
    recorder.server_close()
    rt50, rt99, po50, po99 = median(rt), percentile(rt, 99), median(po), percentile(po, 99)
    return [
        "| message sent → hook ran | connector (`realtime_url`) | polling (default 10 s) |",
        "|---|---|---|",
        f"| messages at {RATE}/s | {pushed} | {polled} ({polled / RATE:.0f} s of sends, the interval being 10 s) |",
        f"| p50 | {rt50:.1f} ms | {po50:,.0f} ms |",
        f"| p99 | {rt99:.1f} ms | {po99:,.0f} ms |",
        f"| lost | {rt_lost} | {po_lost} |",
        f"| polling p50 / connector p99 | **{po50 / rt99:.0f}×** (target ≥ 50×; connector p99 ≤ 100 ms) | |",
        (
            f"| idle, the listener's own threads ({idle * 2:.0f} s, both listeners side by side): CPU s/min | "
            f"{own['realtime'][0]:.4f} | {own['polling'][0]:.4f} |"
        ),
        (
            f"| idle, the listener's own threads: context switches/min (wake-ups) | {own['realtime'][1]:.1f} | "
            f"{own['polling'][1]:.1f} |"
        ),
        (
            f"| idle, Platypush's whole main process ({idle:.0f} s each, its own threads included): CPU s/min | "
            f"{rt_cpu:.3f} | {po_cpu:.3f} |"
        ),
        f"| idle, Platypush's whole main process: context switches/min | {rt_switches:.0f} | {po_switches:.0f} |",
    ]
