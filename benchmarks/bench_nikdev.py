"""NikDev benchmark: durable commits, push throughput versus the original
``nikdev-iot`` 0.5.5 library against the same sandbox server in the same run,
and the SIGKILL durability figures.

``python -m benchmarks nikdev`` (or ``from benchmarks.bench_nikdev import run; run()``).

* **commit**: values/s committed durably (an ``add_value`` per value, one
  ``commit`` — one SQLite transaction with ``synchronous=FULL`` — per entry of
  10 values); also ``commit_many`` with 100 entries per transaction.
* **push**: values/s that reached the server, two usage patterns, each measured
  for both libraries against one sandbox server running in its own process:
  *per reading* (add 10 values, ``commit_and_push``, repeat — the README's
  pattern), *push every 100 readings* (commit each reading, push every 100 —
  what the plugin's background flusher amounts to), and *backlog* (entries
  already committed; only the push is timed: ours in batches of 500 entries,
  the original in one request with every entry).
  The original keeps entries in memory only (its staging is disabled here, as
  it would write ``shelve`` files into the working directory); ours stores
  each commit durably first, and that time is included.
* **durability**: a worker committing and pushing is SIGKILLed at random
  moments for a while; committed, delivered, lost and duplicated values.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import requests

from benchmarks.nikdev_durability import run_check
from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.nikdev.client import Entry, NikdevClient
from platypush_ext.nikdev.outbox import Outbox
from platypush_ext.nikdev.uploader import Uploader
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID

FIELDS = [f"f{i}" for i in range(10)]


class _Sandbox:
    """The NikDev sandbox in its own process (so it does not share our GIL)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "platypush_ext.sandbox", "nikdev", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.base_url = line.split()[1]
        self.url = self.base_url.split("/api/")[0]

    def reset(self) -> None:
        requests.delete(self.url + "/_sandbox/entries", timeout=10).raise_for_status()

    def values(self) -> int:
        return int(requests.get(self.url + "/_sandbox/state", timeout=10).json()["values"])

    def seqs(self) -> list[Any]:
        entries = requests.get(self.url + "/_sandbox/entries", params={"field": "seq"}, timeout=60).json()["entries"]
        return [item["seq"] for e in entries for item in e["values"] if "seq" in item]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _client(base_url: str) -> NikdevClient:
    return NikdevClient(
        base_url, DEFAULT_DEVICE_ID, DEFAULT_API_KEY, timeouts=Timeouts(5, 30), retry=RetryPolicy(attempts=1)
    )


def _original(base_url: str) -> Any:
    from nikdev_iot import Api

    api = Api(
        {
            "baseUrl": base_url,
            "deviceId": DEFAULT_DEVICE_ID,
            "apiKey": DEFAULT_API_KEY,
            "stageUncommittedValues": False,
            "stageUnpushedEntries": False,
            "requestTimeout": 30,
        }
    )
    api.values, api.entries = [], []  # its lists are class attributes shared by every instance
    return api


def _timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_commit(folder: str, entries: int) -> tuple[float, float]:
    """(values/s with one transaction per entry, values/s with commit_many of 100 entries)."""
    uploader = Uploader(
        _client("http://127.0.0.1:9/api/v1/"), Outbox(os.path.join(folder, "commit.db"), max_entries=10 * entries)
    )

    def one_by_one() -> None:
        for n in range(entries):
            for i, field in enumerate(FIELDS):
                uploader.add_value(field, n * 10 + i)
            uploader.commit()

    single = entries * len(FIELDS) / _timed(one_by_one)
    outbox = uploader.outbox
    chunks = [
        [Entry.build({f: n + i for i, f in enumerate(FIELDS)}) for n in range(100)]
        for _ in range(max(1, entries // 100))
    ]

    def grouped() -> None:
        for chunk in chunks:
            outbox.commit_many(chunk)

    group = sum(len(c) for c in chunks) * len(FIELDS) / _timed(grouped)
    uploader.close()
    return single, group


def bench_push(sandbox: _Sandbox, folder: str, readings: int, backlog: int) -> dict[str, float]:
    """values/s delivered, per pattern and library (checked against the server's count)."""
    results: dict[str, float] = {}

    def check(expected: int) -> None:
        got = sandbox.values()
        if got != expected:
            raise RuntimeError(f"the server received {got} values, expected {expected}")
        sandbox.reset()

    # per reading
    uploader = Uploader(_client(sandbox.base_url), Outbox(os.path.join(folder, "push1.db")))

    def ours_per_reading() -> None:
        for n in range(readings):
            for i, field in enumerate(FIELDS):
                uploader.add_value(field, n + i)
            _, result = uploader.commit_and_push()
            if result.error:
                raise RuntimeError(str(result.error))

    sandbox.reset()
    results["ours_per_reading"] = readings * len(FIELDS) / _timed(ours_per_reading)
    check(readings * len(FIELDS))
    uploader.close()

    api = _original(sandbox.base_url)

    def original_per_reading() -> None:
        for n in range(readings):
            for i, field in enumerate(FIELDS):
                api.add_value(field, n + i)
            api.commit_and_push()

    results["original_per_reading"] = readings * len(FIELDS) / _timed(original_per_reading)
    check(readings * len(FIELDS))

    # per reading, pushed every 100 readings (what the plugin's flusher amounts to)
    uploader = Uploader(_client(sandbox.base_url), Outbox(os.path.join(folder, "push3.db")))

    def ours_every_100() -> None:
        for n in range(readings):
            for i, field in enumerate(FIELDS):
                uploader.add_value(field, n + i)
            uploader.commit()
            if n % 100 == 99 or n == readings - 1:
                result = uploader.push(time_limit=600)
                if result.error:
                    raise RuntimeError(str(result.error))

    results["ours_every_100"] = readings * len(FIELDS) / _timed(ours_every_100)
    check(readings * len(FIELDS))
    uploader.close()

    api = _original(sandbox.base_url)

    def original_every_100() -> None:
        for n in range(readings):
            for i, field in enumerate(FIELDS):
                api.add_value(field, n + i)
            api.commit()
            if n % 100 == 99 or n == readings - 1:
                api.push()

    results["original_every_100"] = readings * len(FIELDS) / _timed(original_every_100)
    check(readings * len(FIELDS))

    # backlog: commit everything, then push; only the push is timed
    uploader = Uploader(_client(sandbox.base_url), Outbox(os.path.join(folder, "push2.db"), max_entries=backlog))
    for n in range(backlog):
        uploader.outbox.commit(Entry.build({f: n + i for i, f in enumerate(FIELDS)}))

    def ours_backlog() -> None:
        deadline = time.monotonic() + 600
        for _ in range(backlog):  # bounded in count and time even if a push made no progress
            if not uploader.outbox.pending_count():
                return
            result = uploader.push(time_limit=max(1.0, deadline - time.monotonic()))
            if result.error:
                raise RuntimeError(str(result.error))
            if time.monotonic() > deadline:
                break
        if uploader.outbox.pending_count():
            raise RuntimeError(f"{uploader.outbox.pending_count()} entries still pending")

    results["ours_backlog"] = backlog * len(FIELDS) / _timed(ours_backlog)
    check(backlog * len(FIELDS))
    uploader.close()

    api = _original(sandbox.base_url)
    for n in range(backlog):
        for i, field in enumerate(FIELDS):
            api.add_value(field, n + i)
        api.commit()
    results["original_backlog"] = backlog * len(FIELDS) / _timed(api.push)
    check(backlog * len(FIELDS))
    return results


def run(quick: bool = False) -> list[str]:
    """Run every measurement; returns markdown table rows and bullet lines."""
    commits, readings, backlog, kill_seconds = (500, 200, 2000, 8) if quick else (5000, 1000, 20000, 25)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-nikdev-") as folder:
        print(f"nikdev: committing {commits} entries of {len(FIELDS)} values durably…", flush=True)
        single, group = bench_commit(folder, commits)
        sandbox = _Sandbox()
        try:
            print(
                f"nikdev: pushing {readings} readings one by one and a backlog of {backlog} entries, "
                "ours and nikdev-iot 0.5.5…",
                flush=True,
            )
            push = bench_push(sandbox, folder, readings, backlog)
            print(f"nikdev: SIGKILL durability for {kill_seconds} s…", flush=True)
            sandbox.reset()
            report = run_check(
                sandbox.base_url,
                DEFAULT_DEVICE_ID,
                DEFAULT_API_KEY,
                sandbox.seqs,
                seconds=kill_seconds,
                path=os.path.join(folder, "kill.db"),
                log=lambda text: print(text, flush=True),
            )
        finally:
            sandbox.stop()
    lines.append("| nikdev measurement | platypush-ext | nikdev-iot 0.5.5 | ratio |")
    lines.append("|---|---|---|---|")
    lines.append(
        f"| values/s committed durably (1 transaction per 10-value entry) | {single:,.0f} | n/a (memory only) | |"
    )
    lines.append(f"| values/s committed durably (commit_many, 100 entries per transaction) | {group:,.0f} | n/a | |")
    for key, label in (
        ("per_reading", f"values/s delivered, {readings} readings of 10 values, commit_and_push each"),
        ("every_100", f"values/s delivered, {readings} readings of 10 values, commit each, push every 100"),
        (
            "backlog",
            (
                f"values/s pushed, backlog of {backlog} committed entries (push only: ours in batches of 500, "
                "the original in one request)"
            ),
        ),
    ):
        ours, original = push[f"ours_{key}"], push[f"original_{key}"]
        lines.append(f"| {label} | {ours:,.0f} | {original:,.0f} | {ours / original:.1f}× |")
    lines.append(
        f"- SIGKILL durability ({report.seconds:g} s, {report.kills} kills): {report.committed} values "
        f"committed, {report.unique_received} distinct delivered, {report.lost} lost, "
        f"{report.duplicates} duplicates ({report.duplicates / max(1, report.received):.1%} of "
        f"{report.received} received), {report.unconfirmed} delivered but killed before confirming"
    )
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
