"""The Ge.tt client against the sandbox over real HTTP: every endpoint, every documented error, faults."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest

from platypush_ext.core.errors import InvalidArgumentError, ProtocolError, ServerError, ServiceConnectionError
from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.gett.checks import decode_data
from platypush_ext.gett.client import GettClient
from platypush_ext.gett.errors import (
    GettAuthError,
    GettBadRequestError,
    GettError,
    GettNotFoundError,
    TransferCancelledError,
)
from platypush_ext.sandbox.gett import GettServer

pytestmark = pytest.mark.sandbox(cls=GettServer)

FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.05, budget=5)


def make_client(server: GettServer, **kwargs: Any) -> GettClient:
    options: dict[str, Any] = {
        "api_key": server.apikey,
        "email": server.email,
        "password": server.password,
        "retry": FAST_RETRY,
        "timeouts": Timeouts(2, 5),
    }
    options.update(kwargs)
    return GettClient(server.base_url, **options)


@pytest.fixture
def client(server: GettServer) -> GettClient:
    c = make_client(server)
    yield c
    c.close()


def statuses(server: GettServer) -> list[tuple[str, str, int]]:
    with server.lock:
        return list(server.requests)


def test_login_and_user_info(client: GettClient, server: GettServer) -> None:
    user = client.login()
    assert user.email == server.email and user.storage_limit == server.storage_limit
    client.upload_file("a.txt", data=b"12345")
    me = client.get_user()
    assert (me.files, me.storage_used) == (1, 5)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("password", "wrong-password", "User not found"),
        ("api_key", "wrong-api-key", "invalid apikey"),
    ],
)
def test_bad_credentials_give_a_clear_auth_error_without_secrets(
    server: GettServer, field: str, value: str, message: str
) -> None:
    client = make_client(server, **{field: value})
    with pytest.raises(GettAuthError) as info:
        client.get_shares()
    text = str(info.value)
    assert message in text and "check api_key, email and password" in text
    assert value not in text and server.password not in text


def test_missing_credentials_fail_before_any_request(server: GettServer) -> None:
    client = GettClient(server.base_url, api_key="k")
    with pytest.raises(GettAuthError, match="configure api_key, email and password"):
        client.create_share()
    assert statuses(server) == []


def test_token_expiry_in_the_middle_of_a_sequence(client: GettClient, server: GettServer) -> None:
    share = client.create_share("first")
    assert server.expire_tokens() == 1
    file = client.create_file(share.sharename, "b.txt")  # 401, refresh-token login, replayed
    client.send_data(file.upload.puturl, data=b"after expiry")
    server.expire_tokens()
    assert [s.sharename for s in client.get_shares()] == [share.sharename]
    assert server.logins == {"password": 1, "refreshtoken": 2}
    assert client.contents(share.sharename, file.fileid) == b"after expiry"


def test_token_renewed_before_it_expires_without_a_401(start_server: Any) -> None:
    server = start_server(GettServer, token_lifetime=1.5)
    client = make_client(server)
    client.get_shares()
    time.sleep(1.3)  # within the renewal margin (20 % of the lifetime)
    client.get_shares()
    assert server.logins == {"password": 1, "refreshtoken": 1}
    assert not [s for s in statuses(server) if s[2] == 401]


def test_rejected_refresh_token_falls_back_to_the_password(client: GettClient, server: GettServer) -> None:
    client.get_shares()
    server.expire_tokens()
    with server.lock:
        server.refresh_tokens.clear()
    client.get_shares()
    assert server.logins == {"password": 2, "refreshtoken": 0}


@pytest.mark.parametrize("single_use", [False, True])
def test_renewal_with_reusable_or_single_use_refresh_tokens(start_server: Any, single_use: bool) -> None:
    server = start_server(GettServer, single_use_refresh=single_use)
    client = make_client(server)
    for _ in range(3):  # each renewal uses the newest refresh token, so both server modes work
        client.get_shares()
        server.expire_tokens()
    client.get_shares()
    assert server.logins == {"password": 1, "refreshtoken": 3}
    assert not [s for s in statuses(server) if s[1] == "/1/users/login" and s[2] != 200]


@pytest.mark.parametrize("single_use", [False, True])
def test_a_saved_refresh_token_on_later_runs(start_server: Any, single_use: bool) -> None:
    """One refresh token saved at the first (password) login, used by every later run."""
    server = start_server(GettServer, single_use_refresh=single_use)
    first = make_client(server)
    first.login()
    saved = first.refresh_token
    first.close()
    runs = [make_client(server, api_key=None, email=None, password=None, refresh_token=saved) for _ in range(2)]
    try:
        assert runs[0].get_user().email == server.email
        if single_use:  # the saved token was spent by the first later run: no password to fall back to
            with pytest.raises(GettAuthError, match="configure api_key, email and password"):
                runs[1].get_user()
            assert server.logins == {"password": 1, "refreshtoken": 1}
        else:
            assert runs[1].get_user().email == server.email
            assert server.logins == {"password": 1, "refreshtoken": 2}
    finally:
        for run in runs:
            run.close()


def test_one_new_login_on_401_then_a_clear_auth_error(client: GettClient, server: GettServer) -> None:
    client.get_user()
    server.faults.add("status", count=2, status=401, path="/1/users/me")
    with pytest.raises(GettAuthError, match="even after a new login"):
        client.get_user()
    assert [s for s in statuses(server) if s[1] == "/1/users/me"].count(("GET", "/1/users/me", 401)) == 2
    assert server.logins["refreshtoken"] == 1
    assert client.get_user().email == server.email  # recovers when the server does


def test_shares_create_get_list_page_update_destroy(client: GettClient) -> None:
    made = [client.create_share(f"t{i}") for i in range(4)]
    untitled = client.create_share()
    assert untitled.title is None and made[0].title == "t0"
    assert [s.sharename for s in client.get_shares()] == [s.sharename for s in made + [untitled]]
    assert [s.sharename for s in client.get_shares(skip=1, limit=2)] == [s.sharename for s in made[1:3]]
    assert client.get_share(made[0].sharename).title == "t0"
    assert client.update_share(made[0].sharename, "renamed").title == "renamed"
    assert client.update_share(made[0].sharename).title is None
    client.destroy_share(made[0].sharename)
    with pytest.raises(GettNotFoundError, match="share not found"):
        client.get_share(made[0].sharename)


def test_files_create_upload_url_get_destroy(client: GettClient, server: GettServer) -> None:
    share = client.create_share()
    files = [client.create_file(share.sharename, f"f{i}.txt") for i in range(11)]
    assert files[10].fileid == "a" and files[0].readystate == "remote"
    urls = client.upload_url(share.sharename, "a")
    assert urls.puturl != files[10].upload.puturl
    assert client.send_data(urls.puturl, data=b"ten") == 3
    got = client.get_file(share.sharename, "a")
    assert (got.readystate, got.size, got.filename) == ("uploaded", 3, "f10.txt")
    assert client.get_file(share.sharename, 0).fileid == "0"  # an int id is accepted
    client.destroy_file(share.sharename, "a")
    with pytest.raises(GettNotFoundError, match="file not found") as info:
        client.get_file(share.sharename, "a")
    assert info.value.status == 404 and info.value.server_message == "file not found"


def test_upload_file_from_path_and_data_and_download(client: GettClient, tmp_path: Any) -> None:
    source = tmp_path / "in.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(payload)
    file = client.upload_file("in.bin", path=str(source), title="holiday")
    assert (file.readystate, file.size) == ("uploaded", len(payload))
    assert client.get_share(file.sharename).title == "holiday"
    target = client.download(file.sharename, file.fileid, str(tmp_path / "out.bin"))
    assert Path(target).read_bytes() == payload
    with pytest.raises(InvalidArgumentError, match="in.bin already exists: pass overwrite: true"):
        client.download(file.sharename, file.fileid, str(tmp_path))  # the source itself is there
    into_folder = client.download(file.sharename, file.fileid, str(tmp_path), overwrite=True)
    assert into_folder == str(tmp_path / "in.bin")
    second = client.upload_file("j.json", data=b'{"a": 1}', sharename=file.sharename)
    assert second.sharename == file.sharename and second.fileid == "1"
    assert client.contents(file.sharename, "1") == b'{"a": 1}'  # never parsed as JSON
    empty = client.upload_file("empty", data=b"")
    assert client.contents(empty.sharename, empty.fileid) == b""


def test_multipart_post_upload(client: GettClient) -> None:
    share = client.create_share()
    file = client.create_file(share.sharename, "p.bin")
    payload = b"\r\n--x" * 100_000
    client.send_data_post(file.upload.posturl, "p.bin", data=payload)
    assert client.contents(share.sharename, file.fileid) == payload


def test_thumbnail(client: GettClient, tmp_path: Any) -> None:
    pil = pytest.importorskip("PIL.Image")
    image = io.BytesIO()
    pil.new("RGB", (300, 200), (1, 2, 3)).save(image, "PNG")
    file = client.upload_file("p.png", data=image.getvalue())
    thumb = client.contents(file.sharename, file.fileid, thumb=True)
    assert thumb.startswith(b"\x89PNG") and max(pil.open(io.BytesIO(thumb)).size) == 128
    path = client.download(file.sharename, file.fileid, str(tmp_path), thumb=True)
    assert os.path.basename(path) == "thumb-p.png"
    text = client.upload_file("t.txt", data=b"text")
    with pytest.raises(GettNotFoundError, match="not an image"):
        client.contents(text.sharename, text.fileid, thumb=True)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(lambda c, tmp: c.get_share("no/slash"), id="get_share-slash"),
        pytest.param(lambda c, tmp: c.get_file("abc", "-1"), id="get_file-negative-id"),
        pytest.param(lambda c, tmp: c.get_file("abc", True), id="get_file-boolean-id"),
        pytest.param(lambda c, tmp: c.get_shares(skip=-1), id="get_shares-negative-skip"),
        pytest.param(lambda c, tmp: c.get_shares(limit="3"), id="get_shares-text-limit"),
        pytest.param(lambda c, tmp: c.create_share(title=5), id="create_share-number-title"),
        pytest.param(lambda c, tmp: c.upload_file("", data=b"x"), id="upload_file-empty-name"),
        pytest.param(lambda c, tmp: c.upload_file("a/b", data=b"x"), id="upload_file-slash-in-name"),
        pytest.param(
            lambda c, tmp: c.upload_file("a", data=b"x", path="/etc/hostname"), id="upload_file-data-and-path"
        ),
        pytest.param(lambda c, tmp: c.upload_file("a"), id="upload_file-no-data-nor-path"),
        pytest.param(lambda c, tmp: c.upload_file("a", path=str(tmp / "missing")), id="upload_file-missing-path"),
        pytest.param(lambda c, tmp: c.upload_file("a", data="text, not bytes"), id="upload_file-text-data"),
        pytest.param(
            lambda c, tmp: c.upload_file("a", data=b"x", sharename="bad name"), id="upload_file-bad-sharename"
        ),
        pytest.param(
            lambda c, tmp: c.download("abc", "0", str(tmp / "no" / "such" / "dir" / "f")), id="download-missing-folder"
        ),
        pytest.param(lambda c, tmp: c.send_data("ftp://x/y", data=b"x"), id="send_data-ftp-url"),
        pytest.param(lambda c, tmp: c.send_data("http://127.0.0.1:1/x"), id="send_data-no-data"),
    ],
)
def test_bad_input_is_rejected_before_any_request(
    client: GettClient, server: GettServer, tmp_path: Path, case: Callable[[GettClient, Path], Any]
) -> None:
    with pytest.raises(InvalidArgumentError):
        case(client, tmp_path)
    assert statuses(server) == []


def test_decode_data() -> None:
    assert decode_data("héllo") == "héllo".encode()
    assert decode_data("aGk=", "base64") == b"hi"


@pytest.mark.parametrize(
    "bad", [("not base64!", "base64"), ("x", "hex"), (5, "text")], ids=["bad-base64", "unknown-format", "not-text"]
)
def test_decode_data_refuses_bad_input(bad: tuple[Any, str]) -> None:
    with pytest.raises(InvalidArgumentError):
        decode_data(*bad)


def test_5xx_during_upload_is_retried_from_the_start(client: GettClient, server: GettServer) -> None:
    server.blobs.faults.add("status", count=2, status=503, method="PUT")
    payload = os.urandom(2_000_000)
    file = client.upload_file("r.bin", data=payload)
    assert client.contents(file.sharename, file.fileid) == payload
    assert [s[2] for s in server.blobs.requests if s[0] == "PUT"] == [503, 503, 200]


def test_reset_in_the_middle_of_an_upload_is_retried_from_the_start(
    client: GettClient, server: GettServer, tmp_path: Any
) -> None:
    source = tmp_path / "big.bin"
    payload = os.urandom(5_000_000)
    source.write_bytes(payload)
    server.blobs.cut("upload", after=1_500_000)
    file = client.upload_file("big.bin", path=str(source))
    assert client.contents(file.sharename, file.fileid) == payload


def test_upload_that_keeps_failing_is_a_clear_error_and_leaves_nothing(client: GettClient, server: GettServer) -> None:
    server.blobs.faults.add("status", count=3, status=503, method="PUT")
    with pytest.raises(ServerError, match="HTTP 503"):
        client.upload_file("x.bin", data=b"x" * 1000, title="doomed")
    assert server.shares == {}  # the share created for it was removed again
    keep = client.create_share()
    server.blobs.faults.add("reset", count=3, method="PUT")
    with pytest.raises(ServiceConnectionError, match="reset"):
        client.upload_file("y.bin", data=b"y" * 1000, sharename=keep.sharename)
    assert client.get_share(keep.sharename).files == []  # the file record was removed, the share kept


def test_5xx_on_download_is_retried(client: GettClient, server: GettServer, tmp_path: Any) -> None:
    file = client.upload_file("d.bin", data=b"d" * 100_000)
    server.blobs.faults.add("status", count=1, status=502, method="GET")
    server.faults.add("status", count=1, status=503, path=f"/1/files/{file.sharename}")
    path = client.download(file.sharename, file.fileid, str(tmp_path / "d.bin"))
    assert os.path.getsize(path) == 100_000


def test_broken_download_leaves_no_partial_file(client: GettClient, server: GettServer, tmp_path: Any) -> None:
    file = client.upload_file("d.bin", data=os.urandom(4_000_000))
    destination = tmp_path / "d.bin"
    destination.write_bytes(b"previous content")
    server.blobs.cut("download", after=1_000_000)
    with pytest.raises(ServiceConnectionError, match="the download stopped after"):
        client.download(file.sharename, file.fileid, str(destination), overwrite=True)
    assert destination.read_bytes() == b"previous content"
    assert sorted(os.listdir(tmp_path)) == ["d.bin"]  # no temporary file left behind
    server.blobs.faults.add("reset", count=3, method="GET")
    with pytest.raises(ServiceConnectionError):
        client.download(file.sharename, file.fileid, str(tmp_path / "new.bin"))
    assert sorted(os.listdir(tmp_path)) == ["d.bin"]


def test_cancel_upload_and_download(client: GettClient, server: GettServer, tmp_path: Any) -> None:
    source = tmp_path / "c.bin"
    source.write_bytes(os.urandom(6_000_000))
    cancel = threading.Event()
    seen: list[tuple[int, Any]] = []

    def progress(done: int, total: Any) -> None:
        seen.append((done, total))
        cancel.set()

    with pytest.raises(TransferCancelledError):
        client.upload_file("c.bin", path=str(source), progress=progress, cancel=cancel)
    assert seen[0][1] == 6_000_000 and server.shares == {}
    file = client.upload_file("c.bin", path=str(source))
    cancel.clear()
    with pytest.raises(TransferCancelledError):
        client.download(file.sharename, file.fileid, str(tmp_path / "copy.bin"), progress=progress, cancel=cancel)
    assert sorted(os.listdir(tmp_path)) == ["c.bin"]


def test_transfers_stream_with_constant_memory(client: GettClient, tmp_path: Any) -> None:
    source = tmp_path / "m.bin"
    with open(source, "wb") as f:
        block = os.urandom(1 << 20)
        f.writelines(block for _ in range(48))
    client.login()
    tracemalloc.start()
    try:
        file = client.upload_file("m.bin", path=str(source))
        client.download(file.sharename, file.fileid, str(tmp_path / "m.out"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert os.path.getsize(tmp_path / "m.out") == 48 << 20
    assert peak < 16 << 20, f"peak Python allocations {peak / 2**20:.1f} MiB for a 48 MiB round trip"


def test_contents_refuses_large_files(client: GettClient) -> None:
    file = client.upload_file("l.bin", data=b"l" * 5000)
    with pytest.raises(GettError, match="download it to a path"):
        client.contents(file.sharename, file.fileid, max_size=4000)


def test_malformed_answer_is_a_protocol_error(client: GettClient, server: GettServer) -> None:
    share = client.create_share()
    server.faults.add("malformed", count=3, path="/1/shares/")
    with pytest.raises(ProtocolError):
        client.get_share(share.sharename)


def test_server_rejections_map_to_bad_request(client: GettClient, server: GettServer) -> None:
    share = client.create_share()
    server.storage_limit = 10
    with pytest.raises(GettAuthError):  # 403 "storage limit exceeded" (the one re-login does not help)
        client.upload_file("big", data=b"x" * 100, sharename=share.sharename)
    with pytest.raises(GettBadRequestError):
        client.http.request_json("GET", "shares", params={"accesstoken": client.access_token(), "skip": "x"})


def test_secrets_never_in_errors_logs_or_reprs(
    server: GettServer, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(server)
    file = client.upload_file("s.txt", data=b"secret stuff")
    urls = client.upload_url(file.sharename, file.fileid)
    server.blobs.faults.add("status", count=3, status=503, method="PUT")
    errors = []
    try:
        client.send_data(urls.puturl, data=b"x")
    except ServerError as exc:
        errors.append(str(exc))
    server.expire_tokens()
    server.faults.add("status", count=2, status=401, path="/1/shares")
    try:
        client.get_shares()
    except GettAuthError as exc:
        errors.append(str(exc))
    assert len(errors) == 2
    sig = urls.puturl.split("sig=")[1]
    # our process's log lines (the sandbox's own access log stands for the remote server's and is left out)
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("platypush_ext.sandbox")]
    assert any("accesstoken=***" in line for line in ours)  # urllib3's debug lines, masked
    text = "\n".join(errors + ours + [repr(client), repr(urls), repr(client.http)])
    for secret in (server.password, server.apikey, client.access_token(), client.refresh_token, sig):
        assert secret and secret not in text
    assert "***" in text


def test_a_file_that_appears_during_the_download_is_not_replaced(tmp_path: Any) -> None:
    from platypush_ext.gett.files import publish as _publish

    tmp, destination = tmp_path / ".d.part", tmp_path / "d.bin"
    tmp.write_bytes(b"downloaded")
    destination.write_bytes(b"written meanwhile by someone else")
    with pytest.raises(InvalidArgumentError, match="d.bin already exists: pass overwrite: true"):
        _publish(str(tmp), str(destination), overwrite=False)
    assert destination.read_bytes() == b"written meanwhile by someone else"
    _publish(str(tmp), str(tmp_path / "free.bin"), overwrite=False)
    assert (tmp_path / "free.bin").read_bytes() == b"downloaded" and not tmp.exists()


def test_signed_urls_are_masked_without_keeping_their_values(client: GettClient, server: GettServer) -> None:
    """A long run's uploads do not pile up secrets: the signatures are masked by name, not kept one by
    one (each new value rebuilt the redactor's pattern: 50 ms per upload after 1,000, 400 ms after 4,000)."""
    share = client.create_share()
    client.upload_file("a.txt", data=b"a", sharename=share.sharename)
    secrets_at_start = len(client.http.redactor._values)
    for i in range(30):
        client.upload_file(f"{i}.txt", data=b"x", sharename=share.sharename)
        client.upload_url(share.sharename, "0")
    assert len(client.http.redactor._values) == secrets_at_start
    put_url = client.upload_url(share.sharename, "0").puturl
    sig = put_url.split("sig=")[1].split("&")[0]
    for text in (f"failed: {put_url} (reset)", f"PUT {put_url}", f"'{put_url}'", put_url.replace("?", "&")):
        assert sig not in client.redact(text) and "sig=***" in client.redact(text)
    server.blobs.faults.add("status", count=3, status=503, method="PUT")
    with pytest.raises(ServerError) as raised:
        client.send_data(put_url, data=b"x")
    assert sig not in str(raised.value)
