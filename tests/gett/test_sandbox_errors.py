"""The Ge.tt sandbox's refusals (``{"error": ...}`` bodies with the status of ``protocols/gett.md``)
and its streamed multipart parser, whatever the chunk sizes."""

from __future__ import annotations

import pytest
import requests

from platypush_ext.sandbox.gett import GettServer
from platypush_ext.sandbox.gett.blobs import _multipart_field
from platypush_ext.sandbox.gett.records import GettFailure
from tests.gett.support import TIMEOUT, create_file, login

pytestmark = pytest.mark.sandbox(cls=GettServer)

BODY = (
    b'--XyZ\r\nContent-Disposition: form-data; name="other"\r\n\r\nignored\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="Filedata"; filename="a.bin"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n" + bytes(range(256)) * 3 + b"\r\n--XyZ--\r\n"
)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 64, len(BODY)])
def test_multipart_field_whatever_the_chunks(size: int) -> None:
    assert b"".join(_multipart_field(iter(chunked(BODY, size)), b"XyZ", "Filedata")) == bytes(range(256)) * 3


@pytest.mark.parametrize(
    "body, message",
    [
        (BODY.replace(b'"Filedata"', b'"other"'), "no Filedata field in the multipart body"),
        (b"no boundary at all", "no Filedata field in the multipart body"),
        (BODY[:150], "truncated multipart body"),
        (BODY[: BODY.index(b"\r\n\r\n", 100) - 3], "truncated multipart body"),
    ],
)
@pytest.mark.parametrize("size", [1, 64])
def test_multipart_field_refusals(body: bytes, message: str, size: int) -> None:
    with pytest.raises(GettFailure, match=message) as failure:
        b"".join(_multipart_field(iter(chunked(body, size)), b"XyZ", "Filedata"))
    assert failure.value.status == 400


def expect(answer: requests.Response, status: int, error: str) -> None:
    assert (answer.status_code, answer.json()) == (status, {"error": error})


def test_api_refusals(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    auth = {"accesstoken": token}
    expect(requests.patch(server.base_url + "shares", params=auth, timeout=TIMEOUT), 405, "method not allowed")
    expect(
        requests.get(server.base_url + "shares", params={"accesstoken": "a.0101.x"}, timeout=TIMEOUT),
        401,
        "invalid accesstoken",
    )
    create = server.base_url + "shares/create"
    expect(requests.post(create, params=auth, data="{not json", timeout=TIMEOUT), 400, "the body is not valid JSON")
    expect(requests.post(create, params=auth, data="[1]", timeout=TIMEOUT), 400, "the body must be a JSON object")
    expect(requests.post(create, params=auth, json={"title": 5}, timeout=TIMEOUT), 400, "title must be a string")
    sharename, _ = create_file(server, token)
    expect(
        requests.post(f"{server.base_url}shares/{sharename}/update", params=auth, json={"title": []}, timeout=TIMEOUT),
        400,
        "title must be a string",
    )
    expect(
        requests.post(
            f"{server.base_url}files/{sharename}/create", params=auth, json={"filename": "a/b"}, timeout=TIMEOUT
        ),
        400,
        "filename must be a non-empty name without '/'",
    )
    assert [
        s["title"] if "title" in s else None
        for s in requests.get(server.base_url + "shares", params=auth, timeout=TIMEOUT).json()
    ] == [None]  # nothing else was created


def test_blob_host_refusals(server: GettServer) -> None:
    token = login(server)["accesstoken"]
    sharename, file = create_file(server, token)
    blobs = server.blobs.url
    expect(requests.get(blobs + "/nosuch", timeout=TIMEOUT), 404, "not found")
    put_url = file["upload"]["puturl"]
    expect(requests.delete(put_url, timeout=TIMEOUT), 405, "method not allowed")
    expect(requests.put(put_url.replace("sig=", "sig=x"), data=b"data", timeout=TIMEOUT), 403, "invalid signature")
    expect(
        requests.post(file["upload"]["posturl"], data=b"raw", headers={"Content-Type": "text/plain"}, timeout=TIMEOUT),
        400,
        "expected a multipart/form-data body with a Filedata field",
    )
    assert (
        requests.get(f"{server.base_url}files/{sharename}/{file['fileid']}", timeout=TIMEOUT).json()["readystate"]
        == "remote"
    )  # none of them stored anything
    expect(
        requests.post(blobs + "/_sandbox/cut", json={"direction": "sideways"}, timeout=TIMEOUT),
        400,
        "direction must be 'upload' or 'download' and after >= 0",
    )
    armed = requests.post(blobs + "/_sandbox/cut", json={"direction": "upload", "after": 10}, timeout=TIMEOUT)
    assert armed.json() == {"armed": {"direction": "upload", "after": 10}}
