"""Helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

import requests

from platypush_ext.sandbox.ports import free_port


@contextmanager
def sandbox_process(service: str, *options: str) -> Iterator[str]:
    """Run one sandbox server in its own process (so it does not share our GIL);
    yields ``http://127.0.0.1:<port>``."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "platypush_ext.sandbox", service, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(url + "/_sandbox/health", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the {service} sandbox did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
