"""Hostile input for every action of the four plugins: the table, the rules, the services.

The table is generated from the plugin classes (the actions Platypush itself
finds, with their signatures), so a new action is covered without editing it:
each argument of each action in turn gets each hostile value (the required
ones otherwise get a plain value), and each action is also called with an
unknown argument and without its required ones.

An answer passes when each error is one line of at most 500 characters,
without a traceback nor a secret, the output holds no secret either, and
(in-process) no log record of the call carries a traceback, a line break,
more than 1,000 characters or a secret.

Alone, it prints the counts (e.g. against an older checkout on ``PYTHONPATH``)::

    python -m tests.hostile
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import platypush.context
import requests
from platypush.utils import get_decorators

from platypush_ext.gett.plugin import GettPlugin
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.nikdev.plugin import NikdevPlugin
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.pushjet.plugin import PushjetPlugin
from platypush_ext.sandbox.gett import GettServer
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer
from platypush_ext.sandbox.pushjet import PushjetServer
from platypush_ext.sandbox.runner import PlatypushProcess
from tests.support import RecordingBus

PLUGINS: dict[str, type] = {"pushjet": PushjetPlugin, "gett": GettPlugin, "nikdev": NikdevPlugin, "mbed": MbedPlugin}
MBED_KEY = "hostile-mbed-key-0123456789"
MAX_ANSWER = 500


def hostile_values(folder: str) -> list[tuple[str, Any]]:
    """``(label, value)`` of every hostile value; ``folder`` holds a file (``existing``)."""
    existing = os.path.join(folder, "existing.txt")
    return [
        ("list", ["a"]),
        ("object", {"a": 1}),
        ("int", 12345),
        ("true", True),
        ("float", 1.5),
        ("null", None),
        ("empty", ""),
        ("spaces", "   "),
        ("1 MiB", "x" * (1 << 20)),
        ("1 MiB of CR LF", "\r\n" * (1 << 19)),
        ("NUL", "a\x00b"),
        ("CR LF", "a\r\n2026-01-01 00:00:00 ERROR|forged log line"),
        ("RTL", "\u202eevil\u2066"),
        ("10**30", 10**30),
        ("-10**30", -(10**30)),
        ("2**63", 2**63),
        ("NaN", math.nan),
        ("inf", math.inf),
        ("bad bool", "maybe"),
        ("path: no folder", "/nonexistent/folder/file"),
        ("path: under a file", existing + "/below"),
        ("path: /proc", "/proc/1/hostile-test"),
        ("path: existing file", existing),
        ("path: NUL", folder + "/a\x00b"),
    ]


def actions(cls: type) -> dict[str, inspect.Signature]:
    """The actions Platypush finds on ``cls`` (by its ``@action`` decorator), with their signatures."""
    names = get_decorators(cls, climb_class_hierarchy=True).get("action", set())
    found = {}
    for name in sorted(names):
        method = getattr(cls, name, None)
        wrapped = getattr(method, "wrapped", None)
        if wrapped is not None and wrapped.__module__.startswith("platypush_ext"):
            params = list(inspect.signature(wrapped).parameters.values())
            found[name] = inspect.Signature(params[1:] if params and params[0].name == "self" else params)
    return found


def _plain(param: inspect.Parameter) -> Any:
    """A plain value for a required argument (the call is about another one)."""
    hint = str(param.annotation)
    if "Sequence" in hint or hint.startswith("list"):
        return []
    return 1 if hint in ("int", "float") else "a"


@dataclass
class Case:
    plugin: str
    action: str
    label: str
    args: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.plugin}.{self.action} {self.label}"


def cases(folder: str) -> list[Case]:
    """The whole table."""
    table = []
    values = hostile_values(folder)
    for plugin, cls in PLUGINS.items():
        for action, signature in actions(cls).items():
            required = {p.name: _plain(p) for p in signature.parameters.values() if p.default is p.empty}
            for param in signature.parameters:
                for label, value in values:
                    table.append(Case(plugin, action, f"{param}={label}", {**required, param: value}))
            table.append(Case(plugin, action, "unknown argument", {**required, "bogus": 1}))
            table.append(Case(plugin, action, "unknown 1 MiB CR LF name", {**required, "b\r\n" * (1 << 18): 1}))
            if required:
                table.append(Case(plugin, action, "no arguments", {}))
    return table


@dataclass
class Services:
    """The four sandbox servers and the plugins' configuration against them (secrets included)."""

    pushjet: PushjetServer
    gett: GettServer
    nikdev: NikdevServer
    mbed: MbedServer
    config: dict[str, dict[str, Any]]
    secrets: list[str]
    folder: str

    @classmethod
    def start(cls, folder: str) -> "Services":
        pushjet, gett = PushjetServer().start(), GettServer().start()
        # a device answers 2 ms after its 202 rather than 20: the tables vary the values, not their timing
        mbed = MbedServer(api_key=MBED_KEY, pull_timeout=0.5, demo_devices=True, round_trip=0.002).start()
        nikdev = NikdevServer().start()
        with PushjetClient(pushjet.base_url) as remote:
            alerts = remote.create_service("Alerts").secret_key
        device = str(uuid.uuid4())
        config = {
            "pushjet": {
                "base_url": pushjet.base_url,
                "devices": [device],
                "services": {"alerts": {"secret": alerts}},
                "poll_interval": 60,
                "retries": 0,
            },
            "gett": {
                "base_url": gett.base_url,
                "api_key": gett.apikey,
                "email": gett.email,
                "password": gett.password,
                "retries": 0,
            },
            "nikdev": {
                "base_url": nikdev.base_url,
                "device_id": DEFAULT_DEVICE_ID,
                "api_key": DEFAULT_API_KEY,
                "retries": 0,
                "flush_interval": 60,
                "push_time_limit": 5,
            },
            "mbed": {
                "base_url": mbed.base_url,
                "api_key": MBED_KEY,
                "channel": "long_poll",
                "pull_timeout": 1,
                "async_timeout": 2,
                "retries": 0,
            },
        }
        with open(os.path.join(folder, "existing.txt"), "w") as f:
            f.write("keep me")
        return cls(
            pushjet, gett, nikdev, mbed, config, [alerts, gett.apikey, gett.password, DEFAULT_API_KEY, MBED_KEY], folder
        )

    def stop(self) -> None:
        for server in (self.pushjet, self.gett, self.nikdev, self.mbed):
            server.stop()


def problems(case: Case, output: Any, errors: list[Any], secrets: list[str]) -> list[str]:
    """What breaks the rules in one answer."""
    found = []
    for error in errors:
        text = str(error)
        if not isinstance(error, str):
            found.append(f"error is a {type(error).__name__}")
        if len(text) > MAX_ANSWER:
            found.append(f"error of {len(text):,} characters")
        if any(c in text for c in "\r\n\x00\u202e\u2066"):
            found.append("error with control characters (not one line)")
        if "Traceback" in text:
            found.append("traceback in the error")
        if any(s in text for s in secrets):
            found.append("secret in the error")
    shown = "" if output is None else str(output)  # once: an output may be megabytes
    if any(s in shown for s in secrets):
        found.append("secret in the output")
    return found


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("urllib3", "requests")):
            self.records.append(record)


def log_problems(records: list[logging.LogRecord], secrets: list[str]) -> list[str]:
    """What breaks the rules in the log records of one call."""
    found = []
    for record in records:
        text = record.getMessage()
        if record.exc_info or "Traceback" in text:
            found.append(f"traceback in the log ({record.name})")
        if "\n" in text or "\r" in text or len(text) > 1000:
            found.append(f"log record of {len(text):,} characters / {text.count(chr(10)) + 1} lines")
        if any(s in text for s in secrets):
            found.append("secret in the log")
    return found


@dataclass
class Report:
    total: int = 0
    failed: list[tuple[str, list[str]]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return f"{self.total} bad-input calls, {len(self.failed)} broke the rules ({self.seconds:.1f} s)"


def run_in_process(services: Services, table: list[Case]) -> Report:
    """Every case through each plugin's ``run`` (Platypush's own action machinery), logs captured."""
    context = platypush.context.get_context()
    bus, context.bus = getattr(context, "bus", None), RecordingBus()  # events go nowhere, as without listeners
    plugins = {name: PLUGINS[name](**services.config[name]) for name in PLUGINS}
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    report, started = Report(), time.monotonic()
    try:
        for case in table:
            handler.records.clear()
            try:
                response = plugins[case.plugin].run(case.action, **case.args)
                output, errors = response.output, list(response.errors or [])
            except Exception as exc:  # noqa: BLE001  (what Platypush's request layer would answer)
                output, errors = None, [f"{type(exc).__name__}: {exc}"]
            found = problems(case, output, errors, services.secrets) + log_problems(handler.records, services.secrets)
            report.total += 1
            if found:
                report.failed.append((case.name, found))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        context.bus = bus
        for plugin in plugins.values():
            close = getattr(plugin, "stop", None)
            if callable(close):
                close()
    report.seconds = time.monotonic() - started
    return report


def run_over_execute(platypush: PlatypushProcess, table: list[Case], secrets: list[str]) -> Report:
    """Every case over ``POST /execute`` of a running Platypush (one kept-alive connection)."""
    report, started = Report(), time.monotonic()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {platypush.token}"
    for case in table:
        body = {"type": "request", "action": f"{case.plugin}.{case.action}", "args": case.args}
        reply = session.post(
            platypush.url + "/execute",
            data=json.dumps(body),
            timeout=30,  # NaN, Infinity too
            headers={"Content-Type": "application/json"},
        )
        response = reply.json().get("response", {}) if reply.ok else {"errors": [f"HTTP {reply.status_code}"]}
        found = problems(case, response.get("output"), list(response.get("errors") or []), secrets)
        report.total += 1
        if found:
            report.failed.append((case.name, found))
    report.seconds = time.monotonic() - started
    return report


def over_http(table: list[Case]) -> list[Case]:
    """The cases sent over ``/execute``. Each action gets every hostile value once, in its arguments
    in turn (the i-th argument the values whose index is i modulo the number of arguments), so that
    every value and every argument travel through Platypush's server, Redis, request layer and log;
    the unknown and missing arguments go as they are. The 1 MiB values go once per plugin and kind:
    what they test over HTTP, a 1 MiB request through Platypush and its one-line refusal coming back,
    is the same whichever action refuses it. The in-process run gives every value to every argument;
    what ``/execute`` adds does not depend on the argument, and the full table over it took more of
    the suite's CPU time than any other module (3,760 calls, 190 of them of 1 MiB)."""
    params: dict[tuple[str, str], list[str]] = {}
    kinds: list[str] = []
    for case in table:
        param, _, kind = case.label.rpartition("=")
        if param:
            names = params.setdefault((case.plugin, case.action), [])
            names += [param] if param not in names else []
            kinds += [kind] if kind not in kinds else []
    kept, large_sent = [], set()
    for case in table:
        param, _, kind = case.label.rpartition("=")
        if param:
            names = params[(case.plugin, case.action)]
            turn = min(len(names), len(kinds))
            if names.index(param) % turn != kinds.index(kind) % turn:
                continue
        if "1 MiB" in kind:
            if (case.plugin, kind) in large_sent:
                continue
            large_sent.add((case.plugin, kind))
        kept.append(case)
    return kept


def main() -> int:
    import tests.conftest  # noqa: F401  (Platypush's Config in a throw-away folder)

    folder = tempfile.mkdtemp(prefix="hostile-")
    services = Services.start(folder)
    try:
        report = run_in_process(services, cases(folder))
    finally:
        services.stop()
    kinds: dict[str, int] = {}
    for _, found in report.failed:
        for kind in {re.sub(r"[0-9,]+|\(.*", "N", problem) for problem in found}:
            kinds[kind] = kinds.get(kind, 0) + 1
    for name, found in report.failed[:40]:
        print(f"  {name}: {'; '.join(sorted(set(found)))}"[:300])
    for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {count:5d}  {kind}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
