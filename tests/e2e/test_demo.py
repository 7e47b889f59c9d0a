"""The demo as users run it (``python -m platypush_ext.demo``, what ``make demo`` does): it exits
0, every part runs, and each line claims what really happened; a failing part fails the demo."""

from __future__ import annotations

import ast
import glob
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import platypush_ext.demo.__main__ as demo_main
from platypush_ext.demo import DemoContext, parts
from platypush_ext.nikdev import plugin as nikdev_plugin
from platypush_ext.sandbox import servers

ROOT = Path(__file__).resolve().parents[2]

# What each part must print (regular expressions, searched in the part's section, in order).
CLAIMS: dict[str, list[str]] = {
    "Pushjet push notifications": [
        r"response: \{'sent': True\}",
        r"PushjetMessageEvent\(message='Front door opened', importance=5, service_name='Platypush demo'\)",
        r"answered with pushjet\.send: 'Hook fired for: Front door opened'",
        r"the device follows \['Platypush demo'\]",
    ],
    "mbed Device Connector devices": [
        r"mbed\.get_endpoints: \[\('node-001', 'Light'\), \('temp-sensor-01', 'Sensor'\), "
        r"\('queue-node-01', 'QueueModeNode'\)\]",
        r"get_resource_value\(node-001, /3/0/1\) -> 'Mbed'",
        r"the light is now '1' on the device",
        r"MbedNotificationEvent\(endpoint='temp-sensor-01', path='/3303/0/5700', value='29\.5'\)",
        r"the Pushjet listener received 'temp-sensor-01 reports 29\.5 °C'",
    ],
    "NikDev IoT: sensor values that are never lost": [
        r"committed durably: entry 1 with 2 values; entry_state 'pushed', 0 pending",
        r"the server received: \[\{'hum': 40\}, \{'temp': 22\.0\}\]",
        r"\{'field': 'lux', 'value': 312\.5, ",
        r"error: push failed: POST /api/v1/entries/: HTTP 503",
        r"temp=22\.5 is on the server",
        r"error: the server rejected 1 entries \(HTTP 401: Invalid API key\)",
        r"dead letter: values \{'temp': 23\.0\}, reason 'Invalid API key'",
        r"retry_dead → \{'requeued': 1, 'pushed': 1, 'pending': 0\}",
        r"outbox: 0 pending, 0 dead, 4 entries pushed in total",
    ],
    "Ge.tt file sharing": [
        r"uploaded note\.txt \(21 bytes\) as (\w+)/0, readystate uploaded, page http://ge\.tt/\1/v/0",
        r"without a path returns the content: 'Hello from Platypush!'",
        r"answered at once with transfer [0-9a-f]+",
        r"progress: [\d.]+ of 32\.0 MiB",
        r"GettTransferCompletedEvent: 32 MiB in [\d.]+ s\n",
        r"downloaded to \S+/copy\.bin: identical to the original",
        r"created the receipt shares: receipt-note\.txt, receipt-video\.bin",
    ],
}


def sections(output: str) -> dict[str, str]:
    """The output of each part, by title."""
    found = re.split(r"^== (.+) ==$", output, flags=re.M)
    return dict(zip(found[1::2], found[2::2], strict=True))


def coverage_files() -> set[str] | None:
    """The coverage data files so far, when the suite runs under coverage (``make test``)."""
    if not os.environ.get("COVERAGE_PROCESS_CONFIG"):
        return None
    import coverage

    current = coverage.Coverage.current()
    assert current is not None
    return set(glob.glob(current.config.data_file + ".*"))


def ran_inside_platypush(names: set[str], function: str) -> bool:
    """Whether one of the data files ``names`` has ``NikdevPlugin.<function>`` of the installed copy as run."""
    import coverage

    tree = ast.parse(Path(nikdev_plugin.__file__).read_text())
    line = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function).body[-1].lineno
    for name in names:
        data = coverage.CoverageData(name)
        data.read()
        for path in data.measured_files():
            if (
                "site-packages" in path
                and path.endswith("platypush_ext/nikdev/plugin.py")
                and line in (data.lines(path) or [])
            ):
                return True
    return False


def test_the_demo_does_what_it_prints() -> None:
    before = coverage_files()
    done = subprocess.run(
        [sys.executable, "-m", "platypush_ext.demo"], cwd=ROOT, capture_output=True, text=True, timeout=150
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr and "!!" not in out
    for name in servers():  # the servers' list, with their URLs
        assert re.search(rf"^  {name}: http://127\.0\.0\.1:\d+/", out, re.M), name
    assert re.search(r"^Platypush is ready at http://127\.0\.0\.1:\d+ ", out, re.M)
    found = sections(out)
    assert list(found) == [part.TITLE for part in parts()] == list(CLAIMS)
    for title, claims in CLAIMS.items():
        at = 0
        for claim in claims:
            match = re.compile(claim).search(found[title], at)
            assert match, f"{title}: {claim!r} not printed (in order) in:\n{found[title]}"
            at = match.end()
    assert re.search(r"\nDemo finished in [\d.]+ s\.\n$", out)
    if before is not None:  # Platypush (stopped with SIGINT) saved the coverage of the plugin code it ran
        assert ran_inside_platypush(coverage_files() - before, "status")


def _failing_part(title: str, claim: bool) -> types.ModuleType:
    part = types.ModuleType(f"demo_part_{title}")
    part.TITLE = title

    def configure(ctx: DemoContext) -> dict[str, Any]:
        return {}

    def run(ctx: DemoContext) -> None:
        ctx.check(claim, f"{title} holds")

    part.configure, part.run = configure, run
    return part


def test_a_false_claim_fails_the_part_and_the_demo(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(demo_main, "parts", lambda: [_failing_part("first", False), _failing_part("second", True)])
    assert demo_main.main() == 1
    out = capsys.readouterr().out
    assert "== first ==\n  !! DemoFailure: not true: first holds\n" in out
    assert "== second ==\n  - second holds\n" in out  # the parts after a failure still run
    assert re.search(r"Demo finished in [\d.]+ s with 1 failed part\(s\); see \S+/platypush\.log", out)
