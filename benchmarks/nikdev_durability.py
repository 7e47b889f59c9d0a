"""The SIGKILL durability check of the NikDev outbox.

A separate process adds, commits and pushes values (each one unique:
``"<run>-<n>"`` in field ``seq``) and prints every ``seq`` whose commit
returned. It is killed with SIGKILL at random moments, again and again, on
the same outbox file. Finally the outbox is drained, and the values the
server received are compared with the values whose commit returned:

* every committed value must have arrived (``lost`` must be 0);
* a value may arrive more than once (a kill between the server's answer and
  the local delete): those duplicates are counted, not guessed.

Run it by hand against a fresh sandbox::

    python -m benchmarks.nikdev_durability --seconds 20
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.nikdev.client import NikdevClient
from platypush_ext.nikdev.outbox import Outbox
from platypush_ext.nikdev.uploader import Uploader

#: The checkout's root: the workers run ``python -m benchmarks.nikdev_durability`` from there.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class DurabilityReport:
    """What the check measured."""

    kills: int  # SIGKILLs sent to a worker that was running its loop
    committed: int  # values whose commit returned (printed by the workers)
    received: int  # values the server received (duplicates included)
    unique_received: int
    lost: int  # committed values that never arrived (must be 0)
    duplicates: int  # received - unique_received
    unconfirmed: int  # values that arrived although the worker was killed before printing them
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client(base_url: str, device_id: str, api_key: str) -> NikdevClient:
    return NikdevClient(
        base_url,
        device_id,
        api_key,
        timeouts=Timeouts(2, 2),
        retry=RetryPolicy(attempts=2, backoff=0.05, backoff_max=0.2, budget=2),
    )


def worker(base_url: str, device_id: str, api_key: str, path: str, run: int) -> None:  # pragma: no cover
    # (runs only in the workers, which are killed with SIGKILL: their coverage data dies with them)
    """Add, commit and push values until killed; print ``C <seq>`` after each commit returned."""
    uploader = Uploader(_client(base_url, device_id, api_key), Outbox(path, batch_entries=50), push_time_limit=2)
    rng = random.Random(run)
    print("READY", flush=True)
    n = 0
    while True:
        seq = f"{run}-{n}"
        uploader.add_value("seq", seq)
        uploader.add_value("temp", round(rng.uniform(15, 25), 2))
        uploader.commit()
        sys.stdout.write(f"C {seq}\n")
        sys.stdout.flush()
        n += 1
        if rng.random() < 0.3:
            uploader.push()


def run_check(
    base_url: str,
    device_id: str,
    api_key: str,
    received: Any,
    seconds: float = 20.0,
    path: str | None = None,
    kill_window: float = 0.25,
    log: Any = None,
    until: tuple[int, int] | None = None,
) -> DurabilityReport:
    """Kill workers at random for ``seconds``, drain the outbox, compare.

    :param received: a callable returning every ``seq`` value the server received, in order.
    :param kill_window: each worker is killed after a random delay of up to this
        many seconds once its loop started.
    :param until: ``(kills, committed)``: stop as soon as this many workers were killed inside
        their loop and this many values committed (``seconds`` is then only the bound), so that
        a loaded machine makes the check longer, not weaker.
    """
    folder = None
    if path is None:
        folder = tempfile.mkdtemp(prefix="nikdev-durability-")
        path = os.path.join(folder, "outbox.db")
    rng = random.Random()
    committed: list[str] = []
    kills, run = 0, 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if until is not None and kills >= until[0] and len(committed) >= until[1]:
            break
        run += 1
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.nikdev_durability",
                "--worker",
                base_url,
                device_id,
                api_key,
                path,
                str(run),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip() == "READY"
        if ready:
            time.sleep(rng.uniform(0, kill_window))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        kills += ready
        committed.extend(line[2:] for line in out.splitlines() if line.startswith("C "))
        if log and run % 10 == 0:
            log(f"  {run} workers killed, {len(committed)} values committed so far")
    # drain what the killed workers left
    box = Outbox(path)
    client = _client(base_url, device_id, api_key)
    deadline = time.monotonic() + 30
    while box.pending_count() and time.monotonic() < deadline:
        box.flush(client)
    box.close()
    client.close()
    got = list(received())
    counts = Counter(got)
    committed_set = set(committed)
    lost = len(committed_set - set(counts))
    report = DurabilityReport(
        kills=kills,
        committed=len(committed),
        received=len(got),
        unique_received=len(counts),
        lost=lost,
        duplicates=len(got) - len(counts),
        unconfirmed=len(set(counts) - committed_set),
        seconds=round(time.monotonic() - started, 1),
    )
    if folder:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":  # pragma: no cover - a worker, killed with SIGKILL (see worker())
        worker(*argv[1:5], run=int(argv[5]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.nikdev_durability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to keep killing (default: 20)")
    args = parser.parse_args(argv)
    from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer

    with NikdevServer() as server:
        report = run_check(
            server.base_url,
            DEFAULT_DEVICE_ID,
            DEFAULT_API_KEY,
            lambda: server.received_values("seq"),
            seconds=args.seconds,
            log=print,
        )
    print(report.as_dict())
    return 0 if report.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
