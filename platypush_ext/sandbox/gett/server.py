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
import os
import secrets
import shutil
import string
import tempfile
import threading
import time
from urllib.parse import quote, urlencode

from ...core.untrusted import JSONObject
from ..core import Request, Response, SandboxServer, json_response
from .blobs import GettBlobServer
from .records import File, GettFailure, Share, Token, error_answer, same

DEFAULT_APIKEY = "sandbox-apikey"
DEFAULT_EMAIL = "apitest@ge.tt"
DEFAULT_PASSWORD = "sandbox-password"
GETTURL_BASE = "http://ge.tt"  # the human pages, as in protocols/gett.md (not served by the sandbox)
BASE62 = string.digits + string.ascii_letters


def _base36(number: int) -> str:
    digits = string.digits + string.ascii_lowercase
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


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
        self.shares: dict[str, Share] = {}
        self.access_tokens: dict[str, Token] = {}
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
        return error_answer(404, "not found")

    def refused(self, request: Request) -> Response:
        """As Ge.tt refuses a revoked account: the access token (401), at login the refresh token
        or the API key (403)."""
        if not request.path.endswith("/users/login"):
            return error_answer(401, "invalid accesstoken")
        try:
            body = request.json()
        except ValueError:
            body = None
        return error_answer(
            403, "invalid refreshtoken" if isinstance(body, dict) and "refreshtoken" in body else "invalid apikey"
        )

    def method_not_allowed(self, request: Request) -> Response:
        return error_answer(405, "method not allowed")

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _body(request: Request) -> JSONObject:
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

    def find_share(self, sharename: str) -> Share:
        share = self.shares.get(sharename)
        if share is None:
            raise GettFailure(404, "share not found")
        return share

    def find_file(self, sharename: str, fileid: str) -> File:
        file = self.find_share(sharename).files.get(fileid)
        if file is None:
            raise GettFailure(404, "file not found")
        return file

    def _owned_share(self, request: Request) -> Share:
        userid = self._user(request)
        share = self.find_share(request.params["sharename"])
        if share.owner != userid:
            raise GettFailure(403, "not your share")
        return share

    def used_storage(self) -> int:
        return sum(f.size for s in self.shares.values() for f in s.files.values())

    def check_storage(self, file: File, new_size: int) -> None:
        if self.used_storage() - file.size + new_size > self.storage_limit:
            raise GettFailure(403, "storage limit exceeded")

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._sign_key, "/".join(parts).encode(), hashlib.sha256).hexdigest()[:24]

    def _blob_path(self, file: File) -> str:
        return f"/{file.sharename}/{file.fileid}/{quote(file.filename, safe='')}"

    def _new_upload_urls(self, file: File) -> dict[str, str]:
        sig = self._sign(file.sharename, file.fileid, secrets.token_hex(4))
        file.upload_sigs.add(sig)  # earlier URLs stay valid
        put = f"{self.blobs.url}{self._blob_path(file)}?{urlencode({'sig': sig})}"
        return {"puturl": put, "posturl": put + "&upload=post"}

    def _getturl(self, sharename: str, fileid: str | None = None) -> str:
        return f"{GETTURL_BASE}/{sharename}" + (f"/v/{fileid}" if fileid is not None else "")

    def _file_dict(self, file: File) -> JSONObject:
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

    def _share_dict(self, share: Share) -> JSONObject:
        data: JSONObject = {
            "sharename": share.sharename,
            "created": share.created,
            "getturl": self._getturl(share.sharename),
            "live": False,
            "files": [self._file_dict(f) for f in share.files.values()],
        }
        if share.title is not None:
            data["title"] = share.title
        return data

    def _user_dict(self) -> JSONObject:
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
            if not same(str(body["apikey"]), self.apikey):
                raise GettFailure(403, "invalid apikey")
            if body["email"] != self.email or not same(str(body["password"]), self.password):
                raise GettFailure(403, "User not found")
            userid = self.userid
            self.logins["password"] += 1
        now = time.time()
        access = f"a.0101.{userid}.{int(now)}.{secrets.token_urlsafe(12)}"
        refresh = f"r.0101.{secrets.token_urlsafe(24)}"
        self.access_tokens[access] = Token(userid, now + self.token_lifetime)
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
        share = Share(sharename, userid, int(time.time()), title or None)
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
        file = File(share.sharename, fileid, filename, int(time.time()))
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
    def _drop_blob(file: File) -> None:
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
