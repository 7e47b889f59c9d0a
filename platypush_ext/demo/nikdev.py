"""Demo part: NikDev IoT uploads through the durable outbox."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

import requests

from ..core.untrusted import JSONObject
from ..sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, NikdevServer
from ..sandbox.runner import PlatypushProcess

TITLE = "NikDev IoT: sensor values that are never lost"
ORDER = 30


class _Context(Protocol):
    """The :class:`~platypush_ext.demo.DemoContext` as this part uses it: its ``nikdev`` server is the
    NikDev sandbox, and Platypush runs (in :func:`run`)."""

    servers: Mapping[str, NikdevServer]
    platypush: PlatypushProcess

    def say(self, text: str) -> None: ...

    def check(self, ok: bool, text: str) -> None: ...


def configure(ctx: _Context) -> JSONObject:
    server = ctx.servers["nikdev"]
    return {
        "nikdev": {
            "base_url": server.base_url,
            "device_id": DEFAULT_DEVICE_ID,
            "api_key": DEFAULT_API_KEY,
            "flush_interval": 2,
            "retries": 0,
        },
        # records one value; the mbed part's notification hook can call it with the resource's value
        "procedure.nikdev_record_value(field, value)": [
            {"action": "nikdev.add_value", "args": {"field": "${field}", "value": "${value}"}},
            {"action": "nikdev.commit_and_push"},
        ],
    }


def run(ctx: _Context) -> None:
    server, pp = ctx.servers["nikdev"], ctx.platypush
    control = server.url + "/_sandbox"

    ctx.say("nikdev.add_value temp=21.5, hum=40, temp=22.0 (the later temp replaces the first), then commit_and_push")
    for field, value in (("temp", 21.5), ("hum", 40), ("temp", 22.0)):
        pp.run("nikdev.add_value", field=field, value=value)
    done = pp.run("nikdev.commit_and_push")  # entry_state: whoever pushed it, this call or the flusher
    ctx.say(
        f"  committed durably: entry {done['entry_id']} with {done['values']} values; "
        f"entry_state {done['entry_state']!r}, {done['pending']} pending"
    )
    entries = requests.get(control + "/entries", timeout=10).json()["entries"]
    ctx.say(f"  the server received: {entries[-1]['values']}")

    ctx.say("procedure.nikdev_record_value field=lux value=312.5 (add_value + commit_and_push)")
    pp.run("procedure.nikdev_record_value", field="lux", value=312.5)
    ctx.say(f"  nikdev.get_values lux,temp → {pp.run('nikdev.get_values', fields='lux,temp')}")

    ctx.say("The server goes down (503 for the next 3 uploads): commit_and_push keeps the entry")
    requests.post(
        control + "/faults", json={"kind": "status", "status": 503, "count": 3, "path": "/api/v1/entries/"}, timeout=10
    ).raise_for_status()
    response = pp.execute("nikdev.commit_and_push", values={"temp": 22.5})
    ctx.say(f"  error: {response['errors'][0][:160]}…")
    deadline = time.monotonic() + 30
    while pp.run("nikdev.status")["pending"] and time.monotonic() < deadline:
        time.sleep(0.5)
    delivered = 22.5 in [
        item.get("temp")
        for e in requests.get(control + "/entries", timeout=10).json()["entries"]
        for item in e["values"]
    ]
    ctx.check(delivered, "  the background flusher retried with backoff; temp=22.5 is on the server")

    ctx.say("The API key is revoked: the server rejects the upload (401) and it becomes a dead letter")
    requests.delete(f"{control}/keys/{DEFAULT_API_KEY}", timeout=10).raise_for_status()
    response = pp.execute("nikdev.commit_and_push", values={"temp": 23.0})
    ctx.say(f"  error: {response['errors'][0][:160]}…")
    dead = pp.run("nikdev.get_dead_letters")
    ctx.say(f"  dead letter: values {dead[0]['values']}, reason {dead[0]['reason']!r}")
    requests.post(control + "/keys", json={"api_key": DEFAULT_API_KEY}, timeout=10).raise_for_status()
    ctx.say(f"  key restored; nikdev.retry_dead → {pp.run('nikdev.retry_dead')}")
    status = pp.run("nikdev.status")
    ctx.check(
        status["dead"] == status["pending"] == 0,
        f"  outbox: {status['pending']} pending, {status['dead']} dead, "
        f"{status['pushed_entries']} entries pushed in total",
    )
