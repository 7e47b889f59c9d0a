"""Fidelity of the Ge.tt sandbox against the examples of ``protocols/gett.md`` (raw HTTP, no client)."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from platypush_ext.sandbox.gett import GettServer
from tests.gett.support import TIMEOUT, create_file, login
from tests.support import wait_until

pytestmark = pytest.mark.sandbox(cls=GettServer)


def test_login_answer_has_the_documented_shape(server: GettServer) -> None:
    data = login(server)
    assert set(data) == {"accesstoken", "refreshtoken", "expires", "user"}
    assert data["accesstoken"].startswith("a.") and data["refreshtoken"].startswith("r.")
    assert data["expires"] == 86400
    user = data["user"]
    assert user["email"] == server.email and isinstance(user["userid"], str)
    assert set(user["storage"]) == {"used", "limit", "extra"}


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"apikey": "wrong", "email": "apitest@ge.tt", "password": "sandbox-password"}, 403, "invalid apikey"),
        ({"apikey": "sandbox-apikey", "email": "apitest@ge.tt", "password": "nope"}, 403, "User not found"),
        ({"apikey": "sandbox-apikey"}, 400, "missing email, password"),
        ({"refreshtoken": "r.0101.unknown"}, 403, "invalid refreshtoken"),
    ],
)
def test_login_errors_are_error_bodies(server: GettServer, body: dict[str, Any], status: int, message: str) -> None:
    answer = requests.post(server.base_url + "users/login", json=body, timeout=TIMEOUT)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"error": message}


def test_a_refresh_token_can_be_used_more_than_once(server: GettServer) -> None:
    first = login(server)
    answers = [
        requests.post(server.base_url + "users/login", json={"refreshtoken": first["refreshtoken"]}, timeout=TIMEOUT)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    tokens = {first["accesstoken"]} | {a.json()["accesstoken"] for a in answers}
    assert len(tokens) == 4  # a new access token (and refresh token) each time
    assert server.logins == {"password": 1, "refreshtoken": 3}


def test_single_use_refresh_tokens_as_an_option(start_server: Any) -> None:
    server = start_server(GettServer, single_use_refresh=True)
    first = login(server)
    again = requests.post(
        server.base_url + "users/login", json={"refreshtoken": first["refreshtoken"]}, timeout=TIMEOUT
    )
    assert again.status_code == 200
    assert again.json()["accesstoken"] != first["accesstoken"]
    reused = requests.post(
        server.base_url + "users/login", json={"refreshtoken": first["refreshtoken"]}, timeout=TIMEOUT
    )
    assert (reused.status_code, reused.json()) == (403, {"error": "invalid refreshtoken"})
    renewed = requests.post(
        server.base_url + "users/login", json={"refreshtoken": again.json()["refreshtoken"]}, timeout=TIMEOUT
    )
    assert renewed.status_code == 200


def test_tokens_expire_after_the_configured_lifetime(start_server: Any) -> None:
    server = start_server(GettServer, token_lifetime=0.5)
    data = login(server)
    assert data["expires"] == 0.5
    me = requests.get(server.base_url + "users/me", params={"accesstoken": data["accesstoken"]}, timeout=TIMEOUT)
    assert me.status_code == 200 and me.json()["email"] == server.email
    time.sleep(0.7)
    me = requests.get(server.base_url + "users/me", params={"accesstoken": data["accesstoken"]}, timeout=TIMEOUT)
    assert (me.status_code, me.json()) == (401, {"error": "accesstoken expired"})
    assert requests.get(server.base_url + "users/me", timeout=TIMEOUT).json() == {"error": "missing accesstoken"}


def test_share_create_get_update_destroy(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    auth = {"accesstoken": token}
    share = requests.post(
        server.base_url + "shares/create", params=auth, json={"title": "holiday"}, timeout=TIMEOUT
    ).json()
    # the documented example: sharename, title, created, getturl, live, files
    assert set(share) == {"sharename", "title", "created", "getturl", "live", "files"}
    assert share["title"] == "holiday" and share["files"] == [] and share["live"] is False
    name = share["sharename"]
    assert share["getturl"] == f"http://ge.tt/{name}"  # the documented form
    assert requests.get(server.base_url + "shares/" + name, timeout=TIMEOUT).json() == share  # public read
    updated = requests.post(
        f"{server.base_url}shares/{name}/update", params=auth, json={"title": "new"}, timeout=TIMEOUT
    ).json()
    assert updated["title"] == "new"
    # pygett's update() without arguments sends {"title": null}: the title is removed
    removed = requests.post(
        f"{server.base_url}shares/{name}/update", params=auth, data='{"title": null}', timeout=TIMEOUT
    ).json()
    assert "title" not in removed
    assert (
        requests.post(f"{server.base_url}shares/{name}/destroy", params=auth, data="null", timeout=TIMEOUT).status_code
        == 200
    )
    gone = requests.get(server.base_url + "shares/" + name, timeout=TIMEOUT)
    assert (gone.status_code, gone.json()) == (404, {"error": "share not found"})


def test_share_listing_pages_with_skip_and_limit(server: GettServer) -> None:
    auth = {"accesstoken": login(server)["accesstoken"]}
    names = [
        requests.post(server.base_url + "shares/create", params=auth, json={"title": f"s{i}"}, timeout=TIMEOUT).json()[
            "sharename"
        ]
        for i in range(5)
    ]
    listed = requests.get(server.base_url + "shares", params=auth, timeout=TIMEOUT).json()
    assert [s["sharename"] for s in listed] == names
    page = requests.get(server.base_url + "shares", params={**auth, "skip": 1, "limit": 2}, timeout=TIMEOUT).json()
    assert [s["sharename"] for s in page] == names[1:3]
    bad = requests.get(server.base_url + "shares", params={**auth, "limit": "-1"}, timeout=TIMEOUT)
    assert bad.status_code == 400 and "limit" in bad.json()["error"]


def test_file_create_answer_has_upload_urls_on_a_separate_blob_host(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    assert file["fileid"] == "0" and isinstance(file["fileid"], str)
    assert file["readystate"] == "remote" and file["size"] == 0 and file["downloads"] == 0
    assert file["getturl"] == f"http://ge.tt/{sharename}/v/0"
    put, post = file["upload"]["puturl"], file["upload"]["posturl"]
    assert urlsplit(put).netloc != urlsplit(server.base_url).netloc  # another host (port)
    assert urlsplit(put).scheme == "http" and "sig=" in put and post.startswith(put)


def test_put_upload_blob_redirect_and_download(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    answer = requests.put(file["upload"]["puturl"], data=b"hello", timeout=TIMEOUT)
    assert (answer.status_code, answer.text) == (200, "computer says yes")
    got = requests.get(f"{server.base_url}files/{sharename}/0", timeout=TIMEOUT).json()
    assert got["readystate"] == "uploaded" and got["size"] == 5 and "upload" not in got
    redirect = requests.get(f"{server.base_url}files/{sharename}/0/blob", allow_redirects=False, timeout=TIMEOUT)
    assert redirect.status_code == 302
    assert redirect.headers["Location"].startswith(server.blobs.url + "/")
    blob = requests.get(f"{server.base_url}files/{sharename}/0/blob", timeout=TIMEOUT)
    assert blob.content == b"hello" and blob.headers["Content-Length"] == "5"
    assert requests.get(f"{server.base_url}files/{sharename}/0", timeout=TIMEOUT).json()["downloads"] == 2
    requests.get(f"{server.base_url}files/{sharename}/0/blob?noinc=1", timeout=TIMEOUT)
    assert requests.get(f"{server.base_url}files/{sharename}/0", timeout=TIMEOUT).json()["downloads"] == 2
    # the blob is a file on disk, not kept in memory
    stored = [os.path.join(server.blob_dir, n) for n in os.listdir(server.blob_dir)]
    assert len(stored) == 1 and os.path.getsize(stored[0]) == 5


@pytest.mark.parametrize(
    "data", [b'{"a": 1}', bytes(range(256)) * 10, b""], ids=["json-looking", "every-byte-value", "empty"]
)
def test_binary_and_json_looking_bytes_come_back_untouched(server: GettServer, data: bytes) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    requests.put(file["upload"]["puturl"], data=data, timeout=TIMEOUT).raise_for_status()
    assert requests.get(f"{server.base_url}files/{sharename}/0/blob", timeout=TIMEOUT).content == data


def test_multipart_post_with_filedata_field(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    payload = b"\r\n--tricky--\r\n" * 20000 + os.urandom(3000)
    answer = requests.post(
        file["upload"]["posturl"],
        files={"Filedata": ("x.bin", io.BytesIO(payload))},
        data={"other": "field"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    assert requests.get(f"{server.base_url}files/{sharename}/0/blob", timeout=TIMEOUT).content == payload
    no_field = requests.post(file["upload"]["posturl"], files={"other": ("x", b"1")}, timeout=TIMEOUT)
    assert (no_field.status_code, no_field.json()) == (400, {"error": "no Filedata field in the multipart body"})


def test_readystate_is_uploading_while_bytes_arrive(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    url = urlsplit(file["upload"]["puturl"])
    sock = socket.create_connection((url.hostname, url.port), timeout=TIMEOUT)
    sock.sendall(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello".encode())

    def state() -> str:
        return requests.get(f"{server.base_url}files/{sharename}/0", timeout=TIMEOUT).json()["readystate"]

    assert wait_until(lambda: state() == "uploading", timeout=5)
    sock.sendall(b"world")
    answer = b""
    while b"computer says yes" not in answer and len(answer) < 4096:  # headers and body may come apart
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    sock.close()
    assert state() == "uploaded"


def test_new_upload_urls_and_old_ones_stay_valid(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    fresh = requests.get(
        f"{server.base_url}files/{sharename}/0/upload", params={"accesstoken": token}, timeout=TIMEOUT
    ).json()
    assert set(fresh) == {"puturl", "posturl"} and fresh["puturl"] != file["upload"]["puturl"]
    requests.put(fresh["puturl"], data=b"one", timeout=TIMEOUT).raise_for_status()
    requests.put(file["upload"]["puturl"], data=b"two!", timeout=TIMEOUT).raise_for_status()
    assert requests.get(f"{server.base_url}files/{sharename}/0/blob", timeout=TIMEOUT).content == b"two!"
    forged = requests.put(file["upload"]["puturl"].split("?")[0] + "?sig=forged", data=b"x", timeout=TIMEOUT)
    assert (forged.status_code, forged.json()) == (403, {"error": "invalid signature"})


def test_file_ids_are_strings_and_can_be_non_numeric(server: GettServer) -> None:
    auth = {"accesstoken": login(server)["accesstoken"]}
    sharename = requests.post(server.base_url + "shares/create", params=auth, timeout=TIMEOUT).json()["sharename"]
    ids = [
        requests.post(
            f"{server.base_url}files/{sharename}/create", params=auth, json={"filename": f"f{i}"}, timeout=TIMEOUT
        ).json()["fileid"]
        for i in range(11)
    ]
    assert ids[:3] == ["0", "1", "2"] and ids[10] == "a"
    assert requests.get(f"{server.base_url}files/{sharename}/a", timeout=TIMEOUT).json()["filename"] == "f10"


def test_missing_file_share_and_unuploaded_blob(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, _ = create_file(server, token)
    missing = requests.get(f"{server.base_url}files/{sharename}/7", timeout=TIMEOUT)
    assert (missing.status_code, missing.json()) == (404, {"error": "file not found"})
    assert requests.get(f"{server.base_url}files/nosuch/0", timeout=TIMEOUT).json() == {"error": "share not found"}
    blob = requests.get(f"{server.base_url}files/{sharename}/0/blob", timeout=TIMEOUT)
    assert (blob.status_code, blob.json()) == (404, {"error": "file not uploaded"})


def test_destroy_file_removes_record_and_blob(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    requests.put(file["upload"]["puturl"], data=b"x" * 100, timeout=TIMEOUT).raise_for_status()
    gone = requests.post(
        f"{server.base_url}files/{sharename}/0/destroy", params={"accesstoken": token}, timeout=TIMEOUT
    )
    assert gone.status_code == 200
    assert requests.get(f"{server.base_url}files/{sharename}/0", timeout=TIMEOUT).status_code == 404
    assert os.listdir(server.blob_dir) == []
    unauth = requests.post(f"{server.base_url}files/{sharename}/0/destroy", timeout=TIMEOUT)
    assert (unauth.status_code, unauth.json()) == (401, {"error": "missing accesstoken"})


def test_thumbnail_of_an_image_and_not_of_text(server: GettServer) -> None:
    pil = pytest.importorskip("PIL.Image")
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token, "pic.png")
    image = io.BytesIO()
    pil.new("RGB", (400, 300), (200, 10, 10)).save(image, "PNG")
    requests.put(file["upload"]["puturl"], data=image.getvalue(), timeout=TIMEOUT).raise_for_status()
    redirect = requests.get(f"{server.base_url}files/{sharename}/0/blob/thumb", allow_redirects=False, timeout=TIMEOUT)
    assert redirect.status_code == 302 and "/thumb/" in redirect.headers["Location"]
    thumb = requests.get(f"{server.base_url}files/{sharename}/0/blob/thumb", timeout=TIMEOUT)
    assert thumb.headers["Content-Type"] == "image/png"
    assert max(pil.open(io.BytesIO(thumb.content)).size) == 128
    sharename, file = create_file(server, token, "a.txt")
    requests.put(file["upload"]["puturl"], data=b"text", timeout=TIMEOUT).raise_for_status()
    text = requests.get(f"{server.base_url}files/{sharename}/0/blob/thumb", timeout=TIMEOUT)
    assert (text.status_code, text.json()) == (404, {"error": "no thumbnail: not an image"})


def test_interrupted_upload_keeps_the_previous_state(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    server.blobs.cut("upload", after=1000)
    with pytest.raises(requests.ConnectionError):
        requests.put(file["upload"]["puturl"], data=b"x" * 5_000_000, timeout=TIMEOUT)
    got = requests.get(f"{server.base_url}files/{sharename}/0", timeout=TIMEOUT).json()
    assert (got["readystate"], got["size"]) == ("remote", 0)
    assert os.listdir(server.blob_dir) == []


def test_interrupted_download_is_detectably_short(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    requests.put(file["upload"]["puturl"], data=b"y" * 3_000_000, timeout=TIMEOUT).raise_for_status()
    server.blobs.cut("download", after=100_000)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{server.base_url}files/{sharename}/0/blob", timeout=TIMEOUT).raise_for_status()
    assert len(requests.get(f"{server.base_url}files/{sharename}/0/blob", timeout=TIMEOUT).content) == 3_000_000


def test_control_api_state_and_expire(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    state = requests.get(server.url + "/_sandbox/state", timeout=TIMEOUT).json()
    assert state["live_access_tokens"] == 1 and state["logins"]["password"] == 1
    assert requests.post(server.url + "/_sandbox/expire", timeout=TIMEOUT).json() == {"expired": 1}
    me = requests.get(server.base_url + "users/me", params={"accesstoken": token}, timeout=TIMEOUT)
    assert me.status_code == 401
    armed = requests.post(server.blobs.url + "/_sandbox/cut", json={"direction": "sideways"}, timeout=TIMEOUT)
    assert armed.status_code == 400


def test_unknown_route_is_a_json_404(server: GettServer) -> None:
    answer = requests.get(server.base_url + "nothing/here", timeout=TIMEOUT)
    assert (answer.status_code, answer.json()) == (404, {"error": "not found"})


def test_concurrent_uploads_do_not_block_api_calls(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    url = urlsplit(file["upload"]["puturl"])
    sock = socket.create_connection((url.hostname, url.port), timeout=TIMEOUT)
    sock.sendall(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode())
    done = threading.Event()

    def api_call() -> None:
        requests.get(server.base_url + "shares/" + sharename, timeout=TIMEOUT).raise_for_status()
        done.set()

    threading.Thread(target=api_call).start()
    assert done.wait(5)
    sock.close()


def test_credentials_and_signatures_of_any_text_are_refused_not_a_handler_failure(server: GettServer) -> None:
    # hmac.compare_digest raised TypeError for non-ASCII text: a 500 and a failed test, not a 403
    body = {"apikey": "sandbox-apiké", "email": "apitest@ge.tt", "password": "sandbox-password"}
    assert requests.post(server.base_url + "users/login", json=body, timeout=TIMEOUT).status_code == 403
    body = {"apikey": "sandbox-apikey", "email": "apitest@ge.tt", "password": "pass\u202eword"}
    assert requests.post(server.base_url + "users/login", json=body, timeout=TIMEOUT).status_code == 403
    sharename, file = create_file(server, login(server)["accesstoken"])
    put = file["upload"]["puturl"].split("?")[0]
    assert requests.put(put, params={"sig": "sïg\u202e"}, data=b"x", timeout=TIMEOUT).status_code == 403
    assert requests.get(put, params={"sig": "sïg"}, timeout=TIMEOUT).status_code == 403
