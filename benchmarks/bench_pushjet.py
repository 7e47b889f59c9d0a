"""Pushjet: our client versus the original ``pushjet`` 1.0.0 library against the same
sandbox server (in its own process), and the ``/execute`` round trip of
``pushjet.send`` through a real Platypush."""

from __future__ import annotations

import tempfile
import time
import uuid

from benchmarks.support import median, percentile, sandbox_process
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.runner import PlatypushProcess


def _rate(send, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        send(f"message {i}")
    return count / (time.perf_counter() - started)


def _fetch_latencies(fetch, prepare, rounds: int) -> list[float]:
    latencies = []
    for _ in range(rounds):
        prepare()
        started = time.perf_counter()
        fetch()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def run(quick: bool = False) -> list[str]:
    import pushjet  # the original library (the `bench` extra)

    sends, rounds, fetches, executes = (100, 3, 50, 30) if quick else (1000, 5, 300, 200)
    lines = []
    with sandbox_process("pushjet") as url:
        ours = PushjetClient(url)
        theirs = pushjet.Api(url + "/")
        service = ours.create_service("bench")
        device = str(uuid.uuid4())
        ours.subscribe(device, service.public_key)
        their_service = theirs.Service(secret_key=service.secret_key)
        their_device = theirs.Device(device)

        # send throughput, interleaved rounds so both see the same server state
        our_rates, their_rates = [], []
        for _ in range(rounds):
            our_rates.append(_rate(lambda m: ours.send(service.secret_key, m), sends))
            ours.mark_read(device)
            their_rates.append(_rate(their_service.send, sends))
            ours.mark_read(device)
            print(f"  send: ours {our_rates[-1]:.0f}/s, pushjet 1.0.0 {their_rates[-1]:.0f}/s", flush=True)
        ours_send, theirs_send = median(our_rates), median(their_rates)

        # fetch latency with 10 unread messages each time
        def ten() -> None:
            for i in range(10):
                ours.send(service.secret_key, f"unread {i}")

        our_fetch = _fetch_latencies(lambda: ours.fetch_messages(device), ten, fetches)
        their_fetch = _fetch_latencies(their_device.get_messages, ten, fetches)

    lines += [
        "| measure | platypush-ext client | pushjet 1.0.0 | ratio |",
        "|---|---|---|---|",
        f"| send, messages/s (median of {rounds} rounds of {sends}) | {ours_send:.0f} | {theirs_send:.0f} | "
        f"**{ours_send / theirs_send:.2f}×** |",
        f"| fetch of 10 messages, median ms ({fetches} fetches) | {median(our_fetch):.2f} | "
        f"{median(their_fetch):.2f} | {median(their_fetch) / median(our_fetch):.2f}× faster |",
        f"| fetch of 10 messages, p99 ms | {percentile(our_fetch, 99):.2f} | {percentile(their_fetch, 99):.2f} | |",
    ]

    # /execute round trip through a real Platypush
    with sandbox_process("pushjet") as url:
        client = PushjetClient(url)
        service = client.create_service("bench")
        config = {"pushjet": {"base_url": url, "services": {"bench": {"secret": service.secret_key}}}}
        with PlatypushProcess(config, tempfile.mkdtemp(prefix="bench-pushjet-")) as platypush:
            for _ in range(5):  # warm-up
                platypush.run("pushjet.send", service="bench", message="warm-up")
            round_trips, direct = [], []
            for i in range(executes):
                started = time.perf_counter()
                platypush.run("pushjet.send", service="bench", message=f"execute {i}")
                round_trips.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                client.send(service.secret_key, f"direct {i}")
                direct.append((time.perf_counter() - started) * 1000)
    lines += [
        "",
        f"`/execute pushjet.send` through a real Platypush ({executes} calls): "
        f"median **{median(round_trips):.1f} ms**, p99 **{percentile(round_trips, 99):.1f} ms** "
        f"(the same send by the client directly: median {median(direct):.2f} ms, p99 {percentile(direct, 99):.2f} ms).",
    ]
    for line in lines:
        print(line)
    return lines
