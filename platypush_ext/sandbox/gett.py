"""A local Ge.tt REST API v1 server, faithful to ``protocols/gett.md``.

Two HTTP servers, as the real service had two hosts:

* the **API** (``/1/...``, JSON): login with an API key + e-mail + password or
  with a refresh token (reusable, as ``protocols/gett.md`` says nothing of single
  use; ``single_use_refresh`` makes each one good for one login, a guess kept for
  tests), access tokens that really expire (``token_lifetime``,
  configurable so tests can exercise renewal), the ``accesstoken`` query
  parameter, users, shares (list with ``skip``/``limit``, get, create, update
  the title or remove it, destroy), files (create, get, new upload URLs,
  destroy), ``/blob`` and ``/blob/thumb`` answering ``302`` to the blob host;
  errors are ``{"error": "<message>"}`` bodies;
* the **blob host** (started and stopped with the API server): signed upload
  URLs for a raw ``PUT`` or a multipart ``POST`` (field ``Filedata``) and
  signed download URLs. Bodies are streamed in chunks to and from temporary
  files, never held in memory, so a 1 GiB transfer is fine.

``readystate`` goes ``remote`` → ``uploading`` (while bytes arrive) →
``uploaded``. File ids are strings (base 36: the 11th file of a share is ``"a"``).
``getturl`` has the documented form, ``http://ge.tt/<sharename>`` and
``http://ge.tt/<sharename>/v/<fileid>`` (the human pages are not served here).

Run it alone with
``python -m platypush_ext.sandbox gett --port 8084 [--apikey K] [--email E] [--password P]``.

Control API (besides the core's ``/_sandbox/faults`` and ``/_sandbox/requests``,
which the blob host has too, for its own requests):

* ``GET  /_sandbox/state`` on the API: counts of shares, files, bytes, live tokens;
* ``POST /_sandbox/expire`` on the API: expire every access token now;
* ``POST /_sandbox/cut {"direction": "upload"|"download", "after": N}`` on the
  blob host: the next transfer in that direction is cut (TCP reset) after N bytes.

``content_encoding="gzip"`` (``--blob-content-encoding gzip``; or set ``server.blobs.content_encoding``)
makes the blob host answer every download and thumbnail with that ``Content-Encoding``, as S3 does for
an object stored with that metadata: whatever the client's ``Accept-Encoding``, the body is the stored
bytes as they are (gzip data when that is what was uploaded) and ``Content-Length`` their size.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import os
import secrets
import shutil
import string
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from .core import Abort, Request, Response, SandboxServer, json_response, reset_connection, text_response

DEFAULT_APIKEY = "sandbox-apikey"
DEFAULT_EMAIL = "apitest@ge.tt"
DEFAULT_PASSWORD = "sandbox-password"
GETTURL_BASE = "http://ge.tt"  # the human pages, as in protocols/gett.md (not served by the sandbox)
CHUNK = 1 << 20
BASE62 = string.digits + string.ascii_letters


class GettFailure(Abort):
    """Aborts a handler with a Ge.tt error body ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(_error(status, message), message)
        self.status, self.message = status, message


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison of a credential a client sent (any text: ``hmac.compare_digest``
    raises ``TypeError`` for non-ASCII strings) with the expected one."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def _base36(number: int) -> str:
    digits = string.digits + string.ascii_lowercase
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


@dataclass
class _File:
    sharename: str
    fileid: str
    filename: str
    created: int
    readystate: str = "remote"
    size: int = 0
    downloads: int = 0
    path: str | None = None  # the blob's temporary file, once uploaded
    upload_sigs: set[str] = field(default_factory=set)
    download_sig: str = field(default_factory=lambda: secrets.token_urlsafe(16))


@dataclass
class _Share:
    sharename: str
    owner: str
    created: int
    title: str | None = None
    files: dict[str, _File] = field(default_factory=dict)
    next_fileid: int = 0


@dataclass
class _Token:
    userid: str
    expires_at: float


class GettBlobServer(SandboxServer):
    """The blob host: signed uploads and downloads, streamed through temporary files."""

    name = "gett-blobs"
    default_port = 0
    api_prefix = "/"

    def __init__(self, api: GettServer, host: str = "127.0.0.1", port: int = 0, content_encoding: str | None = None):
        self.api = api
        self._cuts: dict[str, int] = {}
        #: ``Content-Encoding`` of every download and thumbnail (the stored bytes are sent untouched).
        self.content_encoding = content_encoding
        super().__init__(host, port)

    def setup_routes(self) -> None:
        blob = r"/(?P<sharename>[A-Za-z0-9]+)/(?P<fileid>[0-9a-z]+)/(?P<filename>[^/]+)"
        self.route("PUT", blob, self._put)
        self.route("POST", blob, self._post)
        self.route("GET", blob, self._download)
        self.route("GET", "/thumb" + blob, self._thumb)
        self.route("POST", "/_sandbox/cut", self._arm_cut)

    def not_found(self, request: Request) -> Response:
        return _error(404, "not found")

    def method_not_allowed(self, request: Request) -> Response:
        return _error(405, "method not allowed")

    # -- control -------------------------------------------------------------

    def cut(self, direction: str, after: int) -> None:
        """Reset the connection of the next ``direction`` transfer after ``after`` bytes."""
        if direction not in ("upload", "download") or after < 0:
            raise ValueError("direction must be 'upload' or 'download' and after >= 0")
        with self.lock:
            self._cuts[direction] = int(after)

    def _take_cut(self, direction: str) -> int | None:
        with self.lock:
            return self._cuts.pop(direction, None)

    def _arm_cut(self, request: Request) -> Response:
        try:
            spec = request.json() or {}
            self.cut(str(spec.get("direction")), int(spec.get("after", 0)))
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        return json_response({"armed": spec})

    # -- uploads -------------------------------------------------------------

    def _file_for_upload(self, request: Request) -> _File:
        sig = request.query.get("sig", "")
        with self.api.lock:
            file = self.api.find_file(request.params["sharename"], request.params["fileid"])
            if not sig or not any(_same(sig, s) for s in file.upload_sigs):
                raise GettFailure(403, "invalid signature")
            return file

    def _receive(self, request: Request, file: _File, chunks: Iterator[bytes]) -> Response:
        """Store ``chunks`` as the new content of ``file`` (streamed to a temporary file)."""
        with self.api.lock:
            previous = file.readystate
            file.readystate = "uploading"
        fd, tmp = tempfile.mkstemp(dir=self.api.blob_dir, prefix="upload-")
        cut = self._take_cut("upload")
        received = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    received += len(chunk)
                    if cut is not None and received >= cut:
                        raise ConnectionResetError("sandbox: upload cut")
        except (ConnectionError, OSError) as exc:
            os.unlink(tmp)
            with self.api.lock:
                file.readystate = previous
            request.abandon_body()  # nothing more can be read from this connection
            if isinstance(exc, ConnectionResetError) and str(exc) == "sandbox: upload cut":
                reset_connection(request.handler, now=True)
                return Response(400, b"")  # never written: the connection is gone
            request.handler.close_connection = True
            return _error(400, "upload interrupted")
        with self.api.lock:
            try:
                self.api.check_storage(file, received)
            except GettFailure:
                os.unlink(tmp)
                file.readystate = previous
                raise
            if file.path:
                os.unlink(file.path)
            file.path, file.size, file.readystate = tmp, received, "uploaded"
        return text_response("computer says yes")

    def _put(self, request: Request) -> Response:
        return self._receive(request, self._file_for_upload(request), request.iter_body(CHUNK))

    def _post(self, request: Request) -> Response:
        file = self._file_for_upload(request)
        ctype = request.headers.get("Content-Type", "")
        marker = "boundary="
        if not ctype.startswith("multipart/form-data") or marker not in ctype:
            raise GettFailure(400, "expected a multipart/form-data body with a Filedata field")
        boundary = ctype.split(marker, 1)[1].split(";")[0].strip().strip('"').encode()
        return self._receive(request, file, _multipart_field(request.iter_body(CHUNK), boundary, "Filedata"))

    # -- downloads -----------------------------------------------------------

    def _signed_file(self, request: Request) -> _File:
        """The uploaded file a signed blob URL names (403 for a bad signature, 404 if not uploaded);
        call with ``self.api.lock`` held."""
        file = self.api.find_file(request.params["sharename"], request.params["fileid"])
        if not _same(request.query.get("sig", ""), file.download_sig):
            raise GettFailure(403, "invalid signature")
        if file.path is None:
            raise GettFailure(404, "file not uploaded")
        return file

    def _download(self, request: Request) -> Response:
        with self.api.lock:
            file = self._signed_file(request)
            handle = open(file.path, "rb")  # noqa: SIM115 - closed by _stream; stays readable if replaced
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(os.fstat(handle.fileno()).st_size),  # the blob's own size, as a blob host knows it
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(file.filename)}",
        }
        return Response(200, self._stream(request, handle), self._encoded(headers))

    def _encoded(self, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with the configured ``Content-Encoding`` (the body stays the stored bytes)."""
        return {**headers, "Content-Encoding": self.content_encoding} if self.content_encoding else headers

    def _stream(self, request: Request, handle: io.BufferedReader) -> Iterator[bytes]:
        cut = self._take_cut("download")
        sent = 0
        try:
            while True:
                chunk = handle.read(CHUNK)
                if not chunk:
                    return
                if cut is not None and sent + len(chunk) > cut:
                    yield chunk[: cut - sent]
                    request.handler.wfile.flush()
                    reset_connection(request.handler, now=True)
                    raise ConnectionResetError("sandbox: download cut")
                sent += len(chunk)
                yield chunk
        finally:
            handle.close()

    def _thumb(self, request: Request) -> Response:
        with self.api.lock:
            path = self._signed_file(request).path
        thumb = _thumbnail(path)
        if thumb is None:
            raise GettFailure(404, "no thumbnail: not an image")
        data, ctype = thumb
        return Response(200, data, self._encoded({"Content-Type": ctype, "Content-Length": str(len(data))}))


def _multipart_field(chunks: Iterator[bytes], boundary: bytes, name: str) -> Iterator[bytes]:
    """Stream the content of form field ``name`` out of a multipart body, in constant memory."""
    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"  # the first boundary is not preceded by CRLF
    source = iter(chunks)

    def fill() -> bool:
        nonlocal buffer
        chunk = next(source, None)
        if chunk is None:
            return False
        buffer += chunk
        return True

    while True:  # find the part headers of the field
        index = buffer.find(delimiter)
        if index < 0:
            buffer = buffer[-len(delimiter) :]
            if not fill():
                raise GettFailure(400, f"no {name} field in the multipart body")
            continue
        after = index + len(delimiter)
        if len(buffer) < after + 2 and fill():
            continue
        if buffer[after : after + 2] == b"--":  # the closing delimiter
            raise GettFailure(400, f"no {name} field in the multipart body")
        end = buffer.find(b"\r\n\r\n", index)
        if end < 0:
            if not fill():
                raise GettFailure(400, "truncated multipart body")
            continue
        headers = buffer[index + len(delimiter) : end].decode("latin-1")
        buffer = buffer[end + 4 :]
        if f'name="{name}"' in headers:
            break
    while True:  # stream the content up to the next delimiter
        index = buffer.find(delimiter)
        if index >= 0:
            if buffer[:index]:
                yield buffer[:index]
            for _ in source:  # the rest of the body (closing boundary)
                pass
            return
        keep = len(delimiter) - 1
        if len(buffer) > keep:
            yield buffer[:-keep]
            buffer = buffer[-keep:]
        if not fill():
            raise GettFailure(400, "truncated multipart body")


def _thumbnail(path: str) -> tuple[bytes, str] | None:
    """A small PNG of an image file (or the image itself without Pillow); ``None`` if not an image."""
    with open(path, "rb") as f:
        head = f.read(16)
    kinds = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
    ctype = next((c for magic, c in kinds.items() if head.startswith(magic)), None)
    if ctype is None:
        return None
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with Platypush's dependencies here
        with open(path, "rb") as f:
            return f.read(), ctype
    with Image.open(path) as image:
        image.thumbnail((128, 128))
        out = io.BytesIO()
        image.save(out, "PNG")
    return out.getvalue(), "image/png"


class GettServer(SandboxServer):
    """The Ge.tt REST API v1, in memory, with its blob host.

    :param apikey: the application API key it accepts.
    :param email: the user's e-mail.
    :param password: the user's password.
    :param token_lifetime: seconds an access token is valid (``expires``).
    :param storage_limit: the user's storage limit in bytes.
    :param blob_port: port of the blob host (0 = a free port).
    :param single_use_refresh: a refresh token is good for one login only (off by
        default: the protocol notes do not say so; a guess for tests of clients).
    :param blob_content_encoding: the ``Content-Encoding`` the blob host answers downloads with
        (e.g. ``gzip``, as S3 for an object stored with that metadata; the body is the stored bytes).
    """

    serialized = True

    name = "gett"
    default_port = 8084
    api_prefix = "/1/"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        apikey: str = DEFAULT_APIKEY,
        email: str = DEFAULT_EMAIL,
        password: str = DEFAULT_PASSWORD,
        token_lifetime: float = 86400,
        storage_limit: int = 20_000_000_000,
        blob_port: int = 0,
        single_use_refresh: bool = False,
        blob_content_encoding: str | None = None,
    ):
        self.apikey, self.email, self.password = apikey, email, password
        self.token_lifetime = token_lifetime
        self.single_use_refresh = single_use_refresh
        self.storage_limit = storage_limit
        self.userid = "u" + secrets.token_urlsafe(20)
        self.fullname = "Mr API Test"
        self.shares: dict[str, _Share] = {}
        self.access_tokens: dict[str, _Token] = {}
        self.refresh_tokens: dict[str, str] = {}  # token -> userid
        self.logins = {"password": 0, "refreshtoken": 0}
        self.blob_dir = ""
        self._sign_key = secrets.token_bytes(16)
        super().__init__(host, port)
        self.blobs = GettBlobServer(self, host, blob_port, content_encoding=blob_content_encoding)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--apikey", default=DEFAULT_APIKEY, help="API key to accept")
        parser.add_argument("--email", default=DEFAULT_EMAIL, help="user e-mail to accept")
        parser.add_argument("--password", default=DEFAULT_PASSWORD, help="user password to accept")
        parser.add_argument(
            "--token-lifetime", type=float, default=86400, help="seconds an access token is valid (default: 86400)"
        )
        parser.add_argument("--blob-port", type=int, default=0, help="port of the blob host (default: a free port)")
        parser.add_argument(
            "--single-use-refresh",
            action="store_true",
            help="accept each refresh token for one login only (a guess; default: reusable)",
        )
        parser.add_argument(
            "--blob-content-encoding",
            default=None,
            help="Content-Encoding of the blob host's downloads, e.g. gzip (the body stays the stored bytes)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, host: str, port: int) -> GettServer:
        return cls(
            host=host,
            port=port,
            apikey=args.apikey,
            email=args.email,
            password=args.password,
            token_lifetime=args.token_lifetime,
            blob_port=args.blob_port,
            single_use_refresh=args.single_use_refresh,
            blob_content_encoding=args.blob_content_encoding,
        )

    def describe(self) -> str:
        return (
            f"gett: {self.base_url}  blobs: {self.blobs.url}/  "
            f"(apikey={self.apikey!r} email={self.email!r} password={self.password!r})"
        )

    # -- life cycle ----------------------------------------------------------

    def start(self) -> GettServer:
        self.blob_dir = tempfile.mkdtemp(prefix="gett-sandbox-")
        self.blobs.start()
        super().start()
        return self

    def stop(self) -> None:
        blobs = threading.Thread(target=self.blobs.stop)  # both shut down in parallel
        blobs.start()
        super().stop()
        blobs.join()
        if self.blob_dir:
            shutil.rmtree(self.blob_dir, ignore_errors=True)

    # -- routes --------------------------------------------------------------

    def setup_routes(self) -> None:
        share = r"/1/shares/(?P<sharename>[^/]+)"
        file = r"/1/files/(?P<sharename>[^/]+)/(?P<fileid>[^/]+)"
        routes = [
            ("POST", "/1/users/login", self._login),
            ("GET", "/1/users/me", self._me),
            ("GET", "/1/shares", self._list_shares),
            ("POST", "/1/shares/create", self._create_share),
            ("GET", share, self._get_share),
            ("POST", share + "/update", self._update_share),
            ("POST", share + "/destroy", self._destroy_share),
            ("POST", r"/1/files/(?P<sharename>[^/]+)/create", self._create_file),
            ("GET", file, self._get_file),
            ("GET", file + "/upload", self._upload_urls),
            ("POST", file + "/destroy", self._destroy_file),
            ("GET", file + "/blob", self._blob),
            ("GET", file + "/blob/thumb", self._thumb),
            ("GET", "/_sandbox/state", self._state),
            ("POST", "/_sandbox/expire", self._expire),
        ]
        for method, pattern, handler in routes:
            self.route(method, pattern, handler)

    def not_found(self, request: Request) -> Response:
        return _error(404, "not found")

    def method_not_allowed(self, request: Request) -> Response:
        return _error(405, "method not allowed")

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        """The JSON body whatever the content type; ``null`` and empty count as ``{}``."""
        try:
            data = request.json()
        except ValueError:
            raise GettFailure(400, "the body is not valid JSON") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise GettFailure(400, "the body must be a JSON object")
        return data

    def _user(self, request: Request) -> str:
        token = request.query.get("accesstoken")
        if not token:
            raise GettFailure(401, "missing accesstoken")
        found = self.access_tokens.get(token)
        if found is None:
            raise GettFailure(401, "invalid accesstoken")
        if time.time() >= found.expires_at:
            del self.access_tokens[token]
            raise GettFailure(401, "accesstoken expired")
        return found.userid

    def find_share(self, sharename: str) -> _Share:
        share = self.shares.get(sharename)
        if share is None:
            raise GettFailure(404, "share not found")
        return share

    def find_file(self, sharename: str, fileid: str) -> _File:
        file = self.find_share(sharename).files.get(fileid)
        if file is None:
            raise GettFailure(404, "file not found")
        return file

    def _owned_share(self, request: Request) -> _Share:
        userid = self._user(request)
        share = self.find_share(request.params["sharename"])
        if share.owner != userid:
            raise GettFailure(403, "not your share")
        return share

    def used_storage(self) -> int:
        return sum(f.size for s in self.shares.values() for f in s.files.values())

    def check_storage(self, file: _File, new_size: int) -> None:
        if self.used_storage() - file.size + new_size > self.storage_limit:
            raise GettFailure(403, "storage limit exceeded")

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._sign_key, "/".join(parts).encode(), hashlib.sha256).hexdigest()[:24]

    def _blob_path(self, file: _File) -> str:
        return f"/{file.sharename}/{file.fileid}/{quote(file.filename, safe='')}"

    def _new_upload_urls(self, file: _File) -> dict[str, str]:
        sig = self._sign(file.sharename, file.fileid, secrets.token_hex(4))
        file.upload_sigs.add(sig)  # earlier URLs stay valid
        put = f"{self.blobs.url}{self._blob_path(file)}?{urlencode({'sig': sig})}"
        return {"puturl": put, "posturl": put + "&upload=post"}

    def _getturl(self, sharename: str, fileid: str | None = None) -> str:
        return f"{GETTURL_BASE}/{sharename}" + (f"/v/{fileid}" if fileid is not None else "")

    def _file_dict(self, file: _File) -> dict[str, Any]:
        return {
            "fileid": file.fileid,
            "filename": file.filename,
            "sharename": file.sharename,
            "size": file.size,
            "downloads": file.downloads,
            "readystate": file.readystate,
            "created": file.created,
            "getturl": self._getturl(file.sharename, file.fileid),
        }

    def _share_dict(self, share: _Share) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sharename": share.sharename,
            "created": share.created,
            "getturl": self._getturl(share.sharename),
            "live": False,
            "files": [self._file_dict(f) for f in share.files.values()],
        }
        if share.title is not None:
            data["title"] = share.title
        return data

    def _user_dict(self) -> dict[str, Any]:
        files = [f for s in self.shares.values() if s.owner == self.userid for f in s.files.values()]
        return {
            "userid": self.userid,
            "fullname": self.fullname,
            "email": self.email,
            "files": len(files),
            "downloads": sum(f.downloads for f in files),
            "storage": {"used": self.used_storage(), "limit": self.storage_limit, "extra": 0},
        }

    # -- users ---------------------------------------------------------------

    def _login(self, request: Request) -> Response:
        body = self._body(request)
        if "refreshtoken" in body:
            token = str(body["refreshtoken"])
            userid = self.refresh_tokens.pop(token, None) if self.single_use_refresh else self.refresh_tokens.get(token)
            if userid is None:
                raise GettFailure(403, "invalid refreshtoken")
            self.logins["refreshtoken"] += 1
        else:
            missing = [k for k in ("apikey", "email", "password") if not body.get(k)]
            if missing:
                raise GettFailure(400, f"missing {', '.join(missing)}")
            if not _same(str(body["apikey"]), self.apikey):
                raise GettFailure(403, "invalid apikey")
            if body["email"] != self.email or not _same(str(body["password"]), self.password):
                raise GettFailure(403, "User not found")
            userid = self.userid
            self.logins["password"] += 1
        now = time.time()
        access = f"a.0101.{userid}.{int(now)}.{secrets.token_urlsafe(12)}"
        refresh = f"r.0101.{secrets.token_urlsafe(24)}"
        self.access_tokens[access] = _Token(userid, now + self.token_lifetime)
        self.refresh_tokens[refresh] = userid
        expires = self.token_lifetime
        return json_response(
            {
                "accesstoken": access,
                "refreshtoken": refresh,
                "expires": int(expires) if float(expires).is_integer() else expires,
                "user": self._user_dict(),
            }
        )

    def _me(self, request: Request) -> Response:
        self._user(request)
        return json_response(self._user_dict())

    # -- shares --------------------------------------------------------------

    def _list_shares(self, request: Request) -> Response:
        userid = self._user(request)
        paging = {}
        for name in ("skip", "limit"):
            value = request.query.get(name)
            if value is not None:
                if not value.isdigit():
                    raise GettFailure(400, f"{name} must be a non-negative integer")
                paging[name] = int(value)
        shares = [s for s in self.shares.values() if s.owner == userid]
        skip = paging.get("skip", 0)
        end = skip + paging["limit"] if "limit" in paging else None
        return json_response([self._share_dict(s) for s in shares[skip:end]])

    def _get_share(self, request: Request) -> Response:
        return json_response(self._share_dict(self.find_share(request.params["sharename"])))

    def _create_share(self, request: Request) -> Response:
        userid = self._user(request)
        title = self._body(request).get("title")
        if title is not None and not isinstance(title, str):
            raise GettFailure(400, "title must be a string")
        while True:
            sharename = "".join(secrets.choice(BASE62) for _ in range(7))
            if sharename not in self.shares:
                break
        share = _Share(sharename, userid, int(time.time()), title or None)
        self.shares[sharename] = share
        return json_response(self._share_dict(share))

    def _update_share(self, request: Request) -> Response:
        share = self._owned_share(request)
        title = self._body(request).get("title")
        if title is not None and not isinstance(title, str):
            raise GettFailure(400, "title must be a string")
        share.title = title or None  # null, missing or "" removes the title
        return json_response(self._share_dict(share))

    def _destroy_share(self, request: Request) -> Response:
        share = self._owned_share(request)
        for file in share.files.values():
            self._drop_blob(file)
        del self.shares[share.sharename]
        return json_response({})

    # -- files ---------------------------------------------------------------

    def _create_file(self, request: Request) -> Response:
        share = self._owned_share(request)
        body = self._body(request)
        filename = body.get("filename")
        if not isinstance(filename, str) or not filename.strip() or "/" in filename:
            raise GettFailure(400, "filename must be a non-empty name without '/'")
        fileid = _base36(share.next_fileid)
        share.next_fileid += 1
        file = _File(share.sharename, fileid, filename, int(time.time()))
        share.files[fileid] = file
        return json_response({**self._file_dict(file), "upload": self._new_upload_urls(file)})

    def _get_file(self, request: Request) -> Response:
        return json_response(self._file_dict(self.find_file(request.params["sharename"], request.params["fileid"])))

    def _upload_urls(self, request: Request) -> Response:
        self._owned_share(request)
        file = self.find_file(request.params["sharename"], request.params["fileid"])
        return json_response(self._new_upload_urls(file))

    def _destroy_file(self, request: Request) -> Response:
        share = self._owned_share(request)
        file = self.find_file(share.sharename, request.params["fileid"])
        self._drop_blob(file)
        del share.files[file.fileid]
        return json_response({})

    @staticmethod
    def _drop_blob(file: _File) -> None:
        if file.path:
            try:
                os.unlink(file.path)  # an open download keeps reading its handle
            except FileNotFoundError:
                pass
            file.path = None

    def _redirect(self, request: Request, prefix: str) -> Response:
        file = self.find_file(request.params["sharename"], request.params["fileid"])
        if file.readystate != "uploaded":
            raise GettFailure(404, "file not uploaded")
        if prefix == "" and request.query.get("noinc") != "1":
            file.downloads += 1
        location = f"{self.blobs.url}{prefix}{self._blob_path(file)}?{urlencode({'sig': file.download_sig})}"
        return Response(302, b"", {"Location": location, "Content-Type": "text/plain"})

    def _blob(self, request: Request) -> Response:
        return self._redirect(request, "")

    def _thumb(self, request: Request) -> Response:
        return self._redirect(request, "/thumb")

    # -- control API ---------------------------------------------------------

    def _state(self, request: Request) -> Response:
        files = [f for s in self.shares.values() for f in s.files.values()]
        now = time.time()
        return json_response(
            {
                "shares": len(self.shares),
                "files": len(files),
                "bytes_stored": self.used_storage(),
                "live_access_tokens": sum(1 for t in self.access_tokens.values() if t.expires_at > now),
                "logins": dict(self.logins),
                "titles": sorted(s.title for s in self.shares.values() if s.title),
            }
        )

    def expire_tokens(self) -> int:
        """Expire every access token now; returns how many were live."""
        with self.lock:
            now = time.time()
            live = [t for t in self.access_tokens.values() if t.expires_at > now]
            for token in live:
                token.expires_at = now - 1
            return len(live)

    def _expire(self, request: Request) -> Response:
        return json_response({"expired": self.expire_tokens()})


SERVER = GettServer

__all__ = ["SERVER", "GettBlobServer", "GettServer"]
