"""Demo part: Ge.tt file sharing through a running Platypush and the gett sandbox."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import Protocol

from ..core.untrusted import JSONObject
from ..sandbox.gett import GettServer
from ..sandbox.runner import EventStream, PlatypushProcess

TITLE = "Ge.tt file sharing"
ORDER = 40

EVENTS = "platypush_ext.gett.events."
COMPLETED = EVENTS + "GettTransferCompletedEvent"


class _Context(Protocol):
    """The :class:`~platypush_ext.demo.DemoContext` as this part uses it: its ``gett`` server is the
    Ge.tt sandbox, and Platypush and its event stream run (in :func:`run`)."""

    servers: Mapping[str, GettServer]
    platypush: PlatypushProcess
    events: EventStream
    shared: JSONObject

    def say(self, text: str) -> None: ...

    def check(self, ok: bool, text: str) -> None: ...


def configure(ctx: _Context) -> JSONObject:
    server = ctx.servers["gett"]
    return {
        "gett": {
            "base_url": server.base_url,
            "api_key": server.apikey,
            "email": server.email,
            "password": server.password,
            "progress_interval": 0.25,
        },
        # every finished upload gets a "receipt" share titled after the file
        "event.hook.GettDemoReceipt": {
            "if": {"type": COMPLETED, "direction": "upload"},
            "then": [{"action": "gett.create_share", "args": {"title": "receipt-${filename}"}}],
        },
    }


def _follow(ctx: _Context, transfer_id: str) -> JSONObject:
    """Print the transfer's progress events until it completes (or fails); returns the last event."""
    while True:
        event = ctx.events.wait_for(lambda e: e.get("transfer_id") == transfer_id, timeout=60)
        kind = event["type"].rsplit(".", 1)[-1]
        if kind == "GettTransferProgressEvent":
            total = event["bytes_total"] or 0
            ctx.say(f"  progress: {event['bytes_done'] / 2**20:.1f} of {total / 2**20:.1f} MiB")
        else:
            return event


def run(ctx: _Context) -> None:
    pp = ctx.platypush
    ctx.say("gett.upload_file: a short text note, into a new share titled 'demo'")
    note = pp.run("gett.upload_file", filename="note.txt", data="Hello from Platypush!", title="demo")
    ctx.say(
        f"  uploaded {note['filename']} ({note['size']} bytes) as {note['sharename']}/{note['fileid']}, "
        f"readystate {note['readystate']}, page {note['getturl']}"
    )
    back = pp.run("gett.download_file", sharename=note["sharename"], fileid=note["fileid"])
    ctx.say(f"gett.download_file without a path returns the content: {back['data']!r}")

    work = tempfile.mkdtemp(prefix="demo-gett-")
    try:
        source = os.path.join(work, "video.bin")
        with open(source, "wb") as f:
            f.writelines(os.urandom(1 << 20) for _ in range(32))
        ctx.say("gett.upload_file with wait=false: a 32 MiB file in the background, with progress events")
        started = pp.run("gett.upload_file", filename="video.bin", path=source, sharename=note["sharename"], wait=False)
        ctx.say(f"  the action answered at once with transfer {started['transfer_id']}")
        done = _follow(ctx, started["transfer_id"])
        ctx.check(
            done["type"] == COMPLETED and done["size"] == 32 << 20,
            f"  {done['type'].rsplit('.', 1)[-1]}: {done.get('size', 0) / 2**20:.0f} MiB "
            f"in {done.get('duration', 0):.2f} s" + (f" ({done['error']})" if done.get("error") else ""),
        )

        target = os.path.join(work, "copy.bin")
        ctx.say("gett.download_file with a path and wait=false: streamed to a temporary file, then renamed")
        fetch = pp.run(
            "gett.download_file", sharename=done["sharename"], fileid=done["fileid"], path=target, wait=False
        )
        got = _follow(ctx, fetch["transfer_id"])
        same = got["type"] == COMPLETED and _sha256(source) == _sha256(target)
        ctx.check(same, f"  downloaded to {got.get('path')}: identical to the original")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    expected = ["receipt-note.txt", "receipt-video.bin"]
    deadline = time.monotonic() + 10
    while (receipts := _receipts(pp)) != expected and time.monotonic() < deadline:
        time.sleep(0.25)  # the hook runs in Platypush, after the event
    ctx.check(
        receipts == expected,
        f"the hook on GettTransferCompletedEvent created the receipt shares: {', '.join(receipts) or 'none'}",
    )
    ctx.shared["gett_share"] = note["sharename"]


def _receipts(pp: PlatypushProcess) -> list[str]:
    """The titles of the receipt shares, sorted.

    :param pp: the running Platypush.
    """
    return sorted(s["title"] for s in pp.run("gett.get_shares_list") if (s.get("title") or "").startswith("receipt-"))


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
