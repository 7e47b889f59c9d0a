"""Crash safety: a worker process adding, committing and pushing values is killed
with SIGKILL at random moments, many times; every committed value must reach the
sandbox server. Duplicates are counted and reported (at-least-once delivery)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.nikdev_durability import run_check
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer


def test_sigkill_at_random_moments_loses_no_committed_value(
    start_server: Any, tmp_path: Any, record_property: Any
) -> None:
    server: NikdevServer = start_server(NikdevServer)
    server.faults.add("reset", count=5, path="/api/v1/entries/")  # some pushes fail too
    report = run_check(
        server.base_url,
        DEFAULT_DEVICE_ID,
        DEFAULT_API_KEY,
        lambda: server.received_values("seq"),
        seconds=90,  # the bound: it stops at 20 kills and 100 commits (about 10 s on a quiet machine)
        path=str(tmp_path / "outbox.db"),
        until=(20, 100),
    )
    print(f"\nnikdev SIGKILL durability: {report.as_dict()}")
    record_property("nikdev_durability", report.as_dict())
    assert report.kills >= 20, report  # "many times": the worker was inside its loop when killed
    assert report.committed >= 100, report
    assert report.lost == 0, report
    # what arrived is what was committed (plus at most one unprinted commit per kill), nothing invented
    assert report.unconfirmed <= report.kills
    assert report.duplicates == report.received - report.unique_received
    assert server.state()["duplicates"] == report.duplicates  # the server's own count agrees


def test_the_check_by_hand_from_the_command_line() -> None:
    """``python -m benchmarks.nikdev_durability``: its own sandbox, a progress line, the report, exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.nikdev_durability", "--seconds", "3"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    *progress, last = done.stdout.splitlines()
    report = ast.literal_eval(last)
    assert report["lost"] == 0 and report["kills"] >= 1 and report["committed"] >= 1
    assert report["received"] == report["unique_received"] + report["duplicates"]
    assert all(re.fullmatch(r"  \d+ workers killed, \d+ values committed so far", line) for line in progress)
