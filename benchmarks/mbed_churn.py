"""Memory under mbed device churn (issue 18, item 10: "departed mbed devices kept in memory for ever").

New endpoints register (three shown resources each), are de-registered and removed, again and
again, in a sandbox of its own process; the bundle's side runs here, as the plugin wires it: a long
poll channel hands each message to ``MbedClient.handle_notification`` (the async registry) and to
``EntitySync.handle`` (the fleet, the subscriptions, the first values). After each step of devices:
the Python memory this process holds (``tracemalloc``, after a collection), what the fleet keeps,
and the async registry's sizes. Run it by hand::

    python -m benchmarks.mbed_churn --devices 3000 --step 1000 [--stale-after 600]

``--stale-after`` (issue 20): seconds after which a departed endpoint leaves the fleet (the plugin's
``stale_after``; default 600, as the plugin's, so that none leaves during a run: the old behaviour).
"""

from __future__ import annotations

import argparse
import gc
import logging
import time
import tracemalloc
from typing import Any

import requests

from benchmarks.support import sandbox_process
from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.mbed.channels import LongPollChannel
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.entities import EntitySync, Fleet
from platypush_ext.mbed.ipso import EntityMap

KEY = "bench-mbed-churn-key-0001"
RESOURCES = [
    {"path": "/3303/0/5700", "value": "21.5", "obs": True},
    {"path": "/3304/0/5700", "value": "40", "obs": True},
    {"path": "/3/0/9", "value": "90", "obs": False},
]


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _churn(url: str, sync: EntitySync, fleet: Fleet, first: int, count: int) -> None:
    """``count`` devices register, show on the fleet, are de-registered and removed from the sandbox."""
    control = requests.Session()
    for i in range(first, first + count):
        name = f"churn-{i:06d}"
        control.post(
            f"{url}/_sandbox/devices", json={"name": name, "type": "Sensor", "resources": RESOURCES}, timeout=10
        )
        reads = 3 * (i + 1)  # the sync's first-value reads of this device done (before it leaves)
        _wait(lambda r=reads: sync.stats["cache_reads"] >= r, 10)
        control.post(f"{url}/_sandbox/devices/{name}/deregister", timeout=10)
        _wait(lambda n=name: not getattr(fleet.get(n), "reachable", False), 10)  # unreachable, or gone already
        control.delete(f"{url}/_sandbox/devices/{name}", timeout=10)
    control.close()


def _sizes(client: MbedClient, fleet: Fleet, baseline: int) -> str:
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - baseline
    endpoints = fleet.all()
    departed = sum(not e.reachable for e in endpoints)
    return (
        f"python memory +{held / 1e6:.2f} MB, fleet {len(endpoints)} endpoints ({departed} departed), "
        f"async registry: {client.registry.unmatched()} unmatched, {client.registry.waiting()} waiting"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mbed_churn", description=__doc__)
    parser.add_argument("--devices", type=int, default=3000, help="devices that come and go (default: 3000)")
    parser.add_argument("--step", type=int, default=1000, help="report after this many (default: 1000)")
    parser.add_argument("--stale-after", type=float, default=600.0, help="the plugin's stale_after (default: 600)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with sandbox_process("mbed", "--api-key", KEY, "--pull-timeout", "1", "--no-demo-devices") as url:
        retry = RetryPolicy(attempts=2, backoff=0.05, backoff_max=0.2)
        client = MbedClient(url, KEY, timeouts=Timeouts(2, 5), pull_timeout=3, retry=retry)
        fleet = Fleet(EntityMap())
        sync = EntitySync(
            client,
            fleet,
            lambda endpoints: None,
            max_reads=0,
            publish_interval=0.05,
            stale_after=args.stale_after,
            directory_interval=0,
        )
        channel = LongPollChannel(client, lambda message: sync.handle(client.handle_notification(message)))
        channel.start_thread()
        tracemalloc.start()
        try:
            _churn(url, sync, fleet, 0, 50)  # warm-up: pools, caches, first imports
            gc.collect()
            baseline = tracemalloc.get_traced_memory()[0]
            snapshot = tracemalloc.take_snapshot()
            started = time.monotonic()
            for done in range(0, args.devices, args.step):
                _churn(url, sync, fleet, 50 + done, args.step)
                print(f"{done + args.step} devices came and went: {_sizes(client, fleet, baseline)}", flush=True)
            print(f"({time.monotonic() - started:.0f} s)")
            top = tracemalloc.take_snapshot().compare_to(snapshot, "filename")[:5]
            for stat in top:
                print(f"  {stat.traceback[0].filename.split('/site-packages/')[-1]}: +{stat.size_diff / 1e6:.2f} MB")
        finally:
            channel.stop(timeout=5)
            sync.stop()
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
