"""End to end: a real Platypush (with real Redis) running the ``gett`` plugin against the sandbox."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from platypush_ext.sandbox.gett import GettServer
from platypush_ext.sandbox.runner import PlatypushProcess
from tests.support import wait_until

COMPLETED = "platypush_ext.gett.events.GettTransferCompletedEvent"
PROGRESS = "platypush_ext.gett.events.GettTransferProgressEvent"


@pytest.fixture(scope="module")
def gett(serve: Any) -> GettServer:
    return serve(GettServer)


@pytest.fixture(scope="module")
def pp(gett: GettServer, launch: Any) -> PlatypushProcess:
    config: dict[str, Any] = {
        "gett": {
            "base_url": gett.base_url,
            "api_key": gett.apikey,
            "email": gett.email,
            "password": gett.password,
            "progress_interval": 0.2,
        },
        # a hook on the completion event: every finished upload gets a receipt share titled after it
        "event.hook.GettUploadReceipt": {
            "if": {"type": COMPLETED, "direction": "upload"},
            "then": [{"action": "gett.create_share", "args": {"title": "receipt-${filename}"}}],
        },
    }
    return launch(config, "platypush-gett")


def titles(server: GettServer) -> list[str]:
    with server.lock:
        return [s.title for s in server.shares.values() if s.title]


def test_upload_then_download_over_execute_and_the_hook_runs(pp: PlatypushProcess, gett: GettServer) -> None:
    with pp.events() as events:
        up = pp.run("gett.upload_file", filename="e2e.txt", data="hello from platypush", title="e2e")
        assert up["readystate"] == "uploaded" and up["size"] == 20
        done = events.wait_for(lambda e: e["type"] == COMPLETED and e["transfer_id"] == up["transfer_id"])
        assert done["sharename"] == up["sharename"] and done["direction"] == "upload"
    down = pp.run("gett.download_file", sharename=up["sharename"], fileid=up["fileid"])
    assert (down["data"], down["data_format"]) == ("hello from platypush", "text")
    assert pp.run("gett.get_file", sharename=up["sharename"], fileid=up["fileid"])["downloads"] == 1
    wait_until(lambda: "receipt-e2e.txt" in titles(gett), timeout=15)


def test_background_transfers_with_progress_events(pp: PlatypushProcess, gett: GettServer, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(48))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    with pp.events() as events:
        started = pp.run("gett.upload_file", filename="big.bin", path=str(source), wait=False)
        assert started["state"] == "running"
        done = events.wait_for(
            lambda e: e["type"] == COMPLETED and e["transfer_id"] == started["transfer_id"], timeout=60
        )
        assert done["size"] == 48 << 20 and done["fileid"] == "0"
        target = tmp_path / "copy.bin"
        fetch = pp.run(
            "gett.download_file", sharename=done["sharename"], fileid=done["fileid"], path=str(target), wait=False
        )
        events.wait_for(lambda e: e["type"] == COMPLETED and e["transfer_id"] == fetch["transfer_id"], timeout=60)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    [info] = pp.run("gett.get_transfers", transfer_id=fetch["transfer_id"])
    assert info["state"] == "completed" and info["bytes_done"] == 48 << 20
    wait_until(lambda: "receipt-big.bin" in titles(gett), timeout=15)


def test_errors_are_readable_over_execute(pp: PlatypushProcess, gett: GettServer) -> None:
    answer = pp.execute("gett.upload_file", filename="x.txt")
    assert answer["errors"] and "give exactly one of data" in answer["errors"][0]
    answer = pp.execute("gett.get_share", sharename="nosuch")
    assert "share not found" in answer["errors"][0] and "Traceback" not in answer["errors"][0]
    assert gett.password not in str(answer)
