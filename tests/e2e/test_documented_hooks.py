"""The hooks shown to users (README, docs/, config.example.yaml, the demo) mean what they say.

Platypush 1.3.39 ignores an operator (``$gt``, ``$regex``…) that follows a plain key in a
hook's condition (PLATYPUSH.md §11 item 22), so such a hook fires for every value. Every
documented hook is checked for that pattern, and the threshold hooks on mbed readings run in
a real Platypush: each fires above its threshold and not below it.
"""

from __future__ import annotations

import importlib
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from platypush_ext.demo import DemoContext
from platypush_ext.demo import mbed as demo_mbed
from platypush_ext.events import BundleEvent
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.pushjet import PushjetServer
from platypush_ext.sandbox.runner import PlatypushProcess, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]
NOTIFICATION = "platypush_ext.mbed.events.MbedNotificationEvent"
SENSOR, TEMPERATURE = "temp-sensor-01", "/3303/0/5700"


def documented_hooks() -> dict[str, dict[str, Any]]:
    """Every ``event.hook.*`` of the README, docs/*.md, config.example.yaml and the demo, by ``<source>:<name>``."""
    sections: list[tuple[str, dict]] = [
        ("config.example.yaml", yaml.safe_load((ROOT / "config.example.yaml").read_text()))
    ]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S):
            sections.append((doc.name, yaml.safe_load(block)))
    ctx = DemoContext(servers={"mbed": MbedServer()}, shared={"pushjet_service": "alerts"})
    sections.append(("demo", demo_mbed.configure(ctx)))
    return {
        f"{source}:{key}": value
        for source, section in sections
        for key, value in (section or {}).items()
        if key.startswith("event.hook.")
    }


def is_operator(value: Any) -> bool:
    return isinstance(value, dict) and any(str(key).startswith("$") for key in value)


def test_no_documented_hook_on_platypush_s_own_events_has_an_operator_after_a_plain_key():
    """The bundle's events match conditions as written (``BundleEvent``); Platypush's own ignore an
    operator after a plain key, so a documented hook on one of those writes every key as one."""
    hooks = documented_hooks()
    assert len(hooks) >= 10, sorted(hooks)
    for name, hook in hooks.items():
        module, _, cls = hook["if"]["type"].rpartition(".")
        if issubclass(getattr(importlib.import_module(module), cls), BundleEvent):
            continue
        keys = [key for key in hook["if"] if key != "type"]
        if any(is_operator(hook["if"][key]) for key in keys):
            assert all(is_operator(hook["if"][key]) for key in keys), f"{name}: {hook['if']}"


def threshold_hooks() -> dict[str, dict[str, Any]]:
    """The documented hooks on mbed readings with an operator, each also recording that it fired."""
    found = {}
    for name, hook in documented_hooks().items():
        if hook["if"]["type"] == NOTIFICATION and any(is_operator(v) for v in hook["if"].values()):
            marker = "fired_" + re.sub(r"\W", "_", name)
            found[marker] = {
                "if": hook["if"],
                "then": [*hook["then"], {"action": "variable.set", "args": {marker: "${value}"}}],
            }
    return found


@pytest.mark.skipif(not redis_server_binary(), reason="redis-server is not installed (make test installs it)")
def test_threshold_hooks_fire_above_and_not_below(tmp_path):
    hooks = threshold_hooks()
    assert len(hooks) == 5, sorted(hooks)  # README, config.example.yaml, docs/mbed.md, docs/hooks.md, the demo
    with MbedServer(pull_timeout=2, demo_devices=True) as mbed, PushjetServer() as pushjet:
        remote = PushjetClient(pushjet.base_url)
        alerts = remote.create_service("alerts")
        config = {
            "mbed": {"base_url": mbed.base_url, "api_key": mbed.api_key, "channel": "long_poll", "pull_timeout": 10},
            "pushjet": {
                "base_url": pushjet.base_url,
                "devices": [str(uuid.uuid4())],
                "services": {"alerts": {"secret": alerts.secret_key}},
            },
            # runs for every reading: once it has, every hook has been matched against it
            "event.hook.EveryReading": {
                "if": {"type": NOTIFICATION, "path": TEMPERATURE},
                "then": [{"action": "variable.set", "args": {"last_reading": "${value}"}}],
            },
            **{f"event.hook.{marker}": hook for marker, hook in hooks.items()},
            # written the natural way, a plain key then an operator (issue 22: fired for 21.5 too)
            "event.hook.NaturalHot": {
                "if": {"type": NOTIFICATION, "path": TEMPERATURE, "value": {"$gt": 30}},
                "then": [{"action": "variable.set", "args": {"natural_hot": "${value}"}}],
            },
        }
        with PlatypushProcess(config, tmp_path) as pp:
            pp.run("mbed.subscribe", endpoint=SENSOR, path=TEMPERATURE)
            for value in ("35", "21.5"):
                mbed.set_value(SENSOR, TEMPERATURE, value)
                wait_for_variable(pp, "last_reading", value)
            time.sleep(1)  # time for a wrongly matching hook to run
            fired = {marker: pp.run("variable.get", name=marker).get(marker) for marker in hooks}
            natural = pp.run("variable.get", name="natural_hot").get("natural_hot")
            sent = [path for method, path, _ in pushjet.requests if method == "POST" and path.endswith("/message")]
    assert {marker: str(value) for marker, value in fired.items()} == {
        marker: "35" for marker in hooks
    }  # above: each fired; below (21.5): none did
    assert len(sent) == len(hooks)  # and each documented action (pushjet.send) ran once
    assert str(natural) == "35"  # fired for 35, not for the 21.5 that came after it


def wait_for_variable(pp: PlatypushProcess, name: str, value: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while str(pp.run("variable.get", name=name).get(name)) != value:  # Platypush may store 35 as a number
        assert time.monotonic() < deadline, f"{name} never became {value!r}"
        time.sleep(0.2)
