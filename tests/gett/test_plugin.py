"""The ``gett`` plugin in-process, against the sandbox, with a recording bus."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from platypush_ext.gett.events import (
    GettTransferCompletedEvent,
    GettTransferFailedEvent,
    GettTransferProgressEvent,
)
from platypush_ext.gett.plugin import GettPlugin
from platypush_ext.sandbox.gett import GettServer
from tests.support import RecordingBus, wait_until

pytestmark = pytest.mark.sandbox(cls=GettServer)

MANIFEST = Path(__file__).resolve().parents[2] / "platypush_ext" / "gett" / "manifest.json"
SHIM = Path(__file__).resolve().parents[2] / "platypush" / "plugins" / "gett"
EVENTS = list(json.loads(MANIFEST.read_text())["manifest"]["events"])


@pytest.fixture
def plugin(server: GettServer, bus: RecordingBus) -> GettPlugin:
    p = GettPlugin(
        base_url=server.base_url,
        api_key=server.apikey,
        email=server.email,
        password=server.password,
        retries=1,
        progress_interval=0.2,
    )
    yield p
    p.stop()


def ok(response: Any) -> Any:
    assert not response.errors, response.errors
    return response.output


def error(response: Any) -> str:
    assert response.errors, f"expected an error, got {response.output!r}"
    return "; ".join(map(str, response.errors))


def test_manifest_and_shim() -> None:
    manifest = json.loads(MANIFEST.read_text())["manifest"]
    assert manifest["package"] == "platypush.plugins.gett"
    assert (SHIM / "manifest.json").read_text() == MANIFEST.read_text()
    from platypush.utils import get_plugin_name_by_class

    from platypush.plugins.gett import GettPlugin as Shimmed

    assert Shimmed is GettPlugin and get_plugin_name_by_class(GettPlugin) == "gett"


@pytest.mark.parametrize("dotted", EVENTS, ids=lambda dotted: dotted.rsplit(".", 1)[1])
def test_every_manifest_event_is_importable(dotted: str) -> None:
    module, name = dotted.rsplit(".", 1)
    assert hasattr(__import__(module, fromlist=[name]), name)


def test_upload_and_download_round_trip(plugin: GettPlugin, bus: RecordingBus, tmp_path: Path) -> None:
    up = ok(plugin.upload_file(filename="hello.txt", data="héllo", title="greetings"))
    assert up["readystate"] == "uploaded" and up["size"] == len("héllo".encode()) and up["transfer_id"]
    assert ok(plugin.get_share(sharename=up["sharename"]))["title"] == "greetings"
    down = ok(plugin.download_file(sharename=up["sharename"], fileid=up["fileid"]))
    assert (down["data"], down["data_format"]) == ("héllo", "text")
    binary = bytes(range(256))
    up2 = ok(
        plugin.upload_file(
            filename="b.bin", data=base64.b64encode(binary).decode(), data_format="base64", sharename=up["sharename"]
        )
    )
    down2 = ok(plugin.download_file(sharename=up2["sharename"], fileid=up2["fileid"]))
    assert down2["data_format"] == "base64" and base64.b64decode(down2["data"]) == binary
    saved = ok(plugin.download_file(sharename=up2["sharename"], fileid=up2["fileid"], path=str(tmp_path / "o.bin")))
    assert Path(saved["path"]).read_bytes() == binary and saved["size"] == 256
    done = bus.of(GettTransferCompletedEvent)
    assert [(e.args["direction"], e.args["size"]) for e in done] == [("upload", 6), ("upload", 256), ("download", 256)]
    assert done[0].args["sharename"] == up["sharename"] and done[0].args["getturl"] == up["getturl"]


def test_every_share_and_file_action(plugin: GettPlugin, server: GettServer, tmp_path: Path) -> None:
    assert ok(plugin.get_user())["email"] == server.email
    share = ok(plugin.create_share(title="t"))
    untitled = ok(plugin.create_share())
    assert set(ok(plugin.get_shares())) == {share["sharename"], untitled["sharename"]}
    assert [s["sharename"] for s in ok(plugin.get_shares_list(skip=1, limit=5))] == [untitled["sharename"]]
    assert ok(plugin.update_share(sharename=share["sharename"], title="new"))["title"] == "new"
    assert ok(plugin.update_share(sharename=share["sharename"]))["title"] is None
    assert ok(plugin.refresh_share(sharename=share["sharename"]))["files"] == []
    source = tmp_path / "f.txt"
    source.write_text("from a path")
    file = ok(plugin.upload_file(filename="f.txt", path=str(source), sharename=share["sharename"]))
    assert ok(plugin.get_file(sharename=share["sharename"], fileid=file["fileid"]))["size"] == 11
    urls = ok(plugin.upload_url(sharename=share["sharename"], fileid=file["fileid"]))
    assert set(urls) == {"puturl", "posturl"}
    ok(plugin.send_data(sharename=share["sharename"], fileid=file["fileid"], data="replaced", put_url=urls["puturl"]))
    ok(plugin.send_data(sharename=share["sharename"], fileid=file["fileid"], data="again"))
    assert ok(plugin.refresh_file(sharename=share["sharename"], fileid=file["fileid"]))["size"] == 5
    assert ok(plugin.download_file(sharename=share["sharename"], fileid=file["fileid"]))["data"] == "again"
    assert ok(plugin.destroy_file(sharename=share["sharename"], fileid=file["fileid"])) == {"destroyed": True}
    assert "file not found" in error(plugin.get_file(sharename=share["sharename"], fileid=file["fileid"]))
    assert ok(plugin.destroy_share(sharename=untitled["sharename"])) == {"destroyed": True}


def test_thumbnail_action(plugin: GettPlugin, tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    png = tmp_path / "p.png"
    pil.new("RGB", (256, 256)).save(png, "PNG")
    file = ok(plugin.upload_file(filename="p.png", path=str(png)))
    inline = ok(plugin.get_thumbnail(sharename=file["sharename"], fileid=file["fileid"]))
    assert base64.b64decode(inline["data"]).startswith(b"\x89PNG")
    saved = ok(plugin.get_thumbnail(sharename=file["sharename"], fileid=file["fileid"], path=str(tmp_path)))
    assert saved["path"].endswith("thumb-p.png")


@pytest.mark.parametrize(
    "name, args",
    [
        pytest.param("get_shares", lambda tmp: {"skip": -1}, id="get_shares"),
        pytest.param("get_shares_list", lambda tmp: {"limit": "ten"}, id="get_shares_list"),
        pytest.param("get_share", lambda tmp: {"sharename": "../etc"}, id="get_share"),
        pytest.param("refresh_share", lambda tmp: {"sharename": ""}, id="refresh_share"),
        pytest.param("create_share", lambda tmp: {"title": ["x"]}, id="create_share"),
        pytest.param("update_share", lambda tmp: {"sharename": "a b"}, id="update_share"),
        pytest.param("destroy_share", lambda tmp: {"sharename": None}, id="destroy_share"),
        pytest.param("get_file", lambda tmp: {"sharename": "abc", "fileid": "x/y"}, id="get_file"),
        pytest.param("refresh_file", lambda tmp: {"sharename": "abc", "fileid": -3}, id="refresh_file"),
        pytest.param("destroy_file", lambda tmp: {"sharename": "abc", "fileid": ""}, id="destroy_file"),
        pytest.param("upload_url", lambda tmp: {"sharename": "abc!", "fileid": "0"}, id="upload_url"),
        pytest.param("upload_file", lambda tmp: {"filename": "a.txt"}, id="upload_file-no-data-nor-path"),
        pytest.param(
            "send_data",
            lambda tmp: {"sharename": "abc", "fileid": "0", "data": "x", "put_url": "ftp://nope"},
            id="send_data",
        ),
        pytest.param(
            "download_file",
            lambda tmp: {"sharename": "abc", "fileid": "0", "path": str(tmp / "missing" / "f")},
            id="download_file-missing-folder",
        ),
        pytest.param(
            "get_thumbnail", lambda tmp: {"sharename": "abc", "fileid": "0", "data_format": "hex"}, id="get_thumbnail"
        ),
        pytest.param("get_transfers", lambda tmp: {"transfer_id": "nope"}, id="get_transfers"),
        pytest.param("cancel_transfer", lambda tmp: {"transfer_id": "nope"}, id="cancel_transfer"),
        pytest.param(
            "upload_file",
            lambda tmp: {"filename": "a.txt", "data": "x", "path": str(tmp)},
            id="upload_file-data-and-path",
        ),
        pytest.param(
            "upload_file", lambda tmp: {"filename": "a.txt", "path": str(tmp / "none")}, id="upload_file-missing-path"
        ),
        pytest.param("upload_file", lambda tmp: {"filename": "", "data": "x"}, id="upload_file-empty-name"),
        pytest.param(
            "upload_file",
            lambda tmp: {"filename": "a", "data": "%%%", "data_format": "base64"},
            id="upload_file-bad-base64",
        ),
        pytest.param(
            "upload_file",
            lambda tmp: {"filename": "a", "data": "x", "data_format": "rot13"},
            id="upload_file-unknown-format",
        ),
        pytest.param(
            "download_file", lambda tmp: {"sharename": "abc", "fileid": "0", "wait": False}, id="download_file-no-path"
        ),
    ],
)
def test_bad_input_for_every_action_is_a_readable_error(
    plugin: GettPlugin, server: GettServer, tmp_path: Path, name: str, args: Callable[[Path], dict[str, Any]]
) -> None:
    text = error(getattr(plugin, name)(**args(tmp_path)))
    assert "Traceback" not in text and server.password not in text and server.apikey not in text, (name, text)
    assert server.requests == []  # nothing reached the service


def test_service_errors_are_readable_and_secret_free(server: GettServer, bus: RecordingBus) -> None:
    bad = GettPlugin(base_url=server.base_url, api_key=server.apikey, email=server.email, password="wrong-pass")
    text = error(bad.create_share(title="x"))
    assert "Ge.tt login failed: User not found" in text and "wrong-pass" not in text
    missing = GettPlugin(base_url=server.base_url, api_key=server.apikey, email=server.email, password=server.password)
    assert "share not found" in error(missing.get_share(sharename="nosuch"))
    text = error(missing.upload_file(filename="a.txt", data="x", sharename="nosuch"))
    assert "share not found" in text and missing._client.access_token() not in text


def test_background_upload_reports_progress_and_completion(
    plugin: GettPlugin, server: GettServer, bus: RecordingBus, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(24 << 20))
    server.blobs.faults.add("hang", count=1, delay=0.6, method="GET")  # slows down nothing of the upload
    started = ok(plugin.upload_file(filename="big.bin", path=str(source), wait=False))
    assert started["state"] == "running" and started["transfer_id"]
    [done] = bus.wait_for(GettTransferCompletedEvent, timeout=30)
    assert done.args["transfer_id"] == started["transfer_id"] and done.args["size"] == 24 << 20
    assert done.args["fileid"] == "0" and done.args["path"] == str(source)
    [info] = ok(plugin.get_transfers(transfer_id=started["transfer_id"]))
    assert info["state"] == "completed" and info["bytes_done"] == 24 << 20
    progress = [e for e in bus.of(GettTransferProgressEvent) if e.args["transfer_id"] == started["transfer_id"]]
    # at most one event per progress_interval (0.2 s), whatever the speed
    assert len(progress) <= 1 + done.args["duration"] / 0.2
    for event in progress:
        assert 0 < event.args["bytes_done"] <= event.args["bytes_total"] == 24 << 20


def test_background_download_can_be_cancelled(
    plugin: GettPlugin, server: GettServer, bus: RecordingBus, tmp_path: Path
) -> None:
    file = ok(
        plugin.upload_file(filename="c.bin", data=base64.b64encode(os.urandom(8 << 20)).decode(), data_format="base64")
    )
    server.blobs.cut("download", after=10**12)  # a no-op cut: only to show the transfer is not cut
    server.blobs.faults.clear()
    # slow the download down so that it is still running when cancelled
    server.blobs.faults.add("hang", count=1, delay=1.0, method="GET")
    started = ok(
        plugin.download_file(
            sharename=file["sharename"], fileid=file["fileid"], path=str(tmp_path / "c.bin"), wait=False
        )
    )
    answer = ok(plugin.cancel_transfer(transfer_id=started["transfer_id"]))
    assert answer["state"] in ("cancelled", "failed")
    [failed] = bus.wait_for(GettTransferFailedEvent, timeout=15)
    assert failed.args["transfer_id"] == started["transfer_id"]
    assert os.listdir(tmp_path) == []


def test_cancelled_background_upload_cleans_up(
    plugin: GettPlugin, server: GettServer, bus: RecordingBus, tmp_path: Path
) -> None:
    source = tmp_path / "u.bin"
    source.write_bytes(os.urandom(64 << 20))
    started = ok(plugin.upload_file(filename="u.bin", path=str(source), wait=False))
    wait_until(
        lambda: ok(plugin.get_transfers(transfer_id=started["transfer_id"]))[0]["bytes_done"] > 0, 15, interval=0.001
    )
    assert ok(plugin.cancel_transfer(transfer_id=started["transfer_id"]))["state"] in ("cancelled", "completed")
    state = ok(plugin.get_transfers(transfer_id=started["transfer_id"]))[0]["state"]
    if state == "cancelled":  # the usual case; a very fast machine may finish first
        [failed] = bus.wait_for(GettTransferFailedEvent, timeout=10)
        assert failed.args["cancelled"] is True and "cancelled" in failed.args["error"]
        assert server.shares == {}


def test_failed_background_download_posts_failure_and_leaves_nothing(
    plugin: GettPlugin, server: GettServer, bus: RecordingBus, tmp_path: Path
) -> None:
    file = ok(plugin.upload_file(filename="f.bin", data="x" * 3_000_000))
    server.blobs.cut("download", after=500_000)
    started = ok(
        plugin.download_file(
            sharename=file["sharename"], fileid=file["fileid"], path=str(tmp_path / "f.bin"), wait=False
        )
    )
    [failed] = bus.wait_for(GettTransferFailedEvent, timeout=15)
    assert failed.args["transfer_id"] == started["transfer_id"] and failed.args["cancelled"] is False
    assert "the download stopped after" in failed.args["error"]
    assert os.listdir(tmp_path) == []


def test_upload_retried_after_5xx_and_failing_upload_reports_failure(
    plugin: GettPlugin, server: GettServer, bus: RecordingBus
) -> None:
    server.blobs.faults.add("status", count=1, status=503, method="PUT")
    assert ok(plugin.upload_file(filename="r.txt", data="retry me"))["size"] == 8
    server.blobs.faults.add("status", count=2, status=500, method="PUT")
    text = error(plugin.upload_file(filename="r.txt", data="fail me", title="gone"))
    assert "HTTP 500" in text
    [failed] = bus.wait_for(GettTransferFailedEvent)
    assert failed.args["error"] == text and failed.args["cancelled"] is False
    assert [s["title"] for s in ok(plugin.get_shares_list())] == [None]  # the failed share was removed


def test_stop_cancels_running_transfers(server: GettServer, bus: RecordingBus, tmp_path: Path) -> None:
    plugin = GettPlugin(base_url=server.base_url, api_key=server.apikey, email=server.email, password=server.password)
    source = tmp_path / "s.bin"
    source.write_bytes(os.urandom(32 << 20))
    server.blobs.faults.add("hang", count=1, delay=2, method="PUT")
    started = ok(plugin.upload_file(filename="s.bin", path=str(source), wait=False))
    wait_until(
        lambda: ok(plugin.get_transfers(transfer_id=started["transfer_id"]))[0]["bytes_done"] > 0, 10, interval=0.001
    )
    plugin.stop()
    [failed] = bus.wait_for(GettTransferFailedEvent, timeout=10)
    assert failed.args["transfer_id"] == started["transfer_id"]


def test_a_waiting_transfer_answers_within_the_wait_limit(
    plugin: GettPlugin, server: GettServer, bus: RecordingBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wait=True never holds an action past WAIT_LIMIT (Platypush's /execute gives up at 60 s):
    a transfer still running then answers with its id and goes on in the background."""
    monkeypatch.setattr(GettPlugin, "WAIT_LIMIT", 0.3)
    server.blobs.faults.add("hang", count=1, delay=1.0, method="PUT")  # the first upload attempt stalls, then resets
    answer = ok(plugin.upload_file(filename="slow.txt", data="eventually", title="slow"))
    assert answer["state"] == "running" and "still running after 0.3 s" in answer["note"]
    done = bus.wait_for(GettTransferCompletedEvent, 1, timeout=20)
    assert done[0].args["transfer_id"] == answer["transfer_id"]
    assert ok(plugin.download_file(sharename=done[0].args["sharename"], fileid=done[0].args["fileid"]))["data"] == (
        "eventually"
    )


def test_a_waiting_transfer_reports_its_failure_as_the_action_error(
    plugin: GettPlugin, server: GettServer, bus: RecordingBus
) -> None:
    server.blobs.faults.add("status", count=5, status=500, method="PUT")
    message = error(plugin.upload_file(filename="x.txt", data="x"))
    assert "500" in message
    assert len(bus.of(GettTransferFailedEvent)) == 1


def test_download_never_overwrites_an_existing_file_unless_asked(plugin: GettPlugin, tmp_path: Path) -> None:
    up = ok(plugin.upload_file(filename="new.txt", data="new content"))
    target = tmp_path / "kept.txt"
    target.write_text("precious")
    for call in (
        lambda: plugin.download_file(sharename=up["sharename"], fileid=up["fileid"], path=str(target)),
        lambda: plugin.download_file(sharename=up["sharename"], fileid=up["fileid"], path=str(target), wait=False),
        lambda: plugin.download_file(
            sharename=up["sharename"], fileid=up["fileid"], path=str(target), overwrite="false"
        ),
    ):
        assert "kept.txt already exists: pass overwrite: true to replace it" in error(call())
    (tmp_path / "new.txt").write_text("precious too")  # the file's own name, in a folder
    assert "new.txt already exists" in error(
        plugin.download_file(sharename=up["sharename"], fileid=up["fileid"], path=str(tmp_path))
    )
    assert target.read_text() == "precious" and (tmp_path / "new.txt").read_text() == "precious too"
    assert sorted(os.listdir(tmp_path)) == ["kept.txt", "new.txt"]  # no temporary file left behind
    done = ok(plugin.download_file(sharename=up["sharename"], fileid=up["fileid"], path=str(target), overwrite=True))
    assert done["path"] == str(target) and target.read_text() == "new content"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("..", "{share}-0"),
        ("../../escaped.txt", "escaped.txt"),
        ("..\\..\\escaped.txt", "escaped.txt"),
        ("/etc/passwd", "passwd"),
        ("a\r\nb\x00\u202ec.txt", "a__b__c.txt"),
        (".", "{share}-0"),
        ("x" * 300, "x" * 240),
    ],
)
def test_names_from_the_server_never_escape_the_target_folder(
    plugin: GettPlugin, server: GettServer, tmp_path: Path, name: str, expected: str
) -> None:
    up = ok(plugin.upload_file(filename="innocent.txt", data="payload"))
    server.shares[up["sharename"]].files[up["fileid"]].filename = name  # a hostile (or broken) server
    folder = tmp_path / "inbox"
    folder.mkdir()
    done = ok(plugin.download_file(sharename=up["sharename"], fileid=up["fileid"], path=str(folder)))
    expected = expected.format(share=up["sharename"])
    assert done["path"] == str(folder / expected) and (folder / expected).read_text() == "payload"
    assert os.listdir(folder) == [expected] and sorted(os.listdir(tmp_path)) == ["inbox"]


def test_max_transfers_holds_under_concurrent_calls(server: GettServer, bus: RecordingBus, tmp_path: Path) -> None:
    """Admission is atomic (issue 18, item 8): many ``wait: false`` uploads and downloads called at once
    never start more than ``max_transfers``, however the threads interleave; slots free when transfers end.

    The calling threads are slowed (2 ms) on entering ``GettPlugin._start``, the step after admission,
    so that every call is admitted or refused while the others are between the two: the schedule that
    let admission count only transfers whose thread was set exceed the limit (6 and 5 of 24 admitted)."""
    limit, calls = 2, 24
    plugin = GettPlugin(
        base_url=server.base_url,
        api_key=server.apikey,
        email=server.email,
        password=server.password,
        max_transfers=limit,
    )
    try:
        file = ok(plugin.upload_file(filename="d.bin", data="d" * 1000))
        admitted = [_concurrent_round(plugin, server, file["sharename"], tmp_path / str(r), calls) for r in range(2)]
        assert all(1 <= n <= limit for n in admitted), admitted
    finally:
        plugin.stop()


def _slow_start(frame: Any, event: str, arg: Any) -> None:
    """A profile hook: a thread entering ``GettPlugin._start`` pauses there (other threads run)."""
    if event == "call" and frame.f_code is GettPlugin._start.__code__:
        time.sleep(0.002)


def _concurrent_round(plugin: GettPlugin, server: GettServer, sharename: str, folder: Path, calls: int) -> int:
    """``calls`` transfers started at once (half uploads, half downloads); returns how many were admitted,
    once they all ended."""
    folder.mkdir()
    server.blobs.faults.add("hang", count=2 * calls, delay=0.5)  # each admitted transfer runs ≥ 0.5 s
    barrier, answers = threading.Barrier(calls), []

    def call(i: int) -> None:
        barrier.wait()
        if i % 2:
            answers.append(plugin.upload_file(filename=f"u{i}.txt", data="u", wait=False))
        else:
            answers.append(plugin.download_file(sharename=sharename, fileid="0", path=str(folder / str(i)), wait=False))

    threading.setprofile(_slow_start)
    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
        for thread in threads:
            thread.start()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    for thread in threads:
        thread.join(10)
    refused = [error(a) for a in answers if a.errors]
    assert len(answers) == calls and all("transfers are running (max_transfers)" in text for text in refused)
    server.blobs.faults.clear()
    wait_until(lambda: all(t["state"] != "running" for t in ok(plugin.get_transfers())), 20)
    return calls - len(refused)
