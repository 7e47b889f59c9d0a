"""A typed, framework-free client of the Ge.tt REST API v1 (``protocols/gett.md``).

Usable from plain Python::

    client = GettClient("http://127.0.0.1:8084/1/", api_key="...", email="me@example.org", password="...")
    file = client.upload_file("report.pdf", path="/tmp/report.pdf", title="Reports")
    print(file.getturl)
    client.download(file.sharename, file.fileid, "/tmp/copy.pdf")

* Logs in with the API key, e-mail and password; renews the access token with
  the refresh token before it expires; on a ``401``/``403`` it logs in anew once
  and then raises a clear :class:`GettAuthError`.
* Uploads and downloads stream in chunks (constant memory, any size); a
  download is written to a temporary file next to the destination and renamed
  only when complete, so a failed download leaves nothing at the destination.
* Every argument is validated before the first request; tokens, the API key,
  the password and the signatures of blob URLs never appear in errors or logs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, TypedDict, TypeVar
from urllib.parse import quote

import requests
import urllib3

from ..core.backoff import Backoff
from ..core.errors import AuthError, InvalidArgumentError, ProtocolError, ServiceConnectionError, ServiceError
from ..core.http import HttpClient, ServiceClient, Timeouts
from ..core.retry import RetryPolicy
from ..core.untrusted import JSON
from .checks import (
    check_destination,
    check_fileid,
    check_filename,
    check_new_file,
    check_paging,
    check_sharename,
    check_source_path,
    check_title,
    check_upload_url,
)
from .errors import GettAuthError, GettError, TransferCancelledError, error_details
from .files import CHUNK_SIZE, Progress, ProgressReader, open_source, partial_file, safe_file_name
from .models import File, Login, Share, UploadUrls, User, acknowledged, shares_from_json

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger("platypush_ext.gett")

#: The largest thumbnail accepted from the blob host (Ge.tt's are small scaled images).
MAX_THUMBNAIL = 1 << 20
#: Headers of blob downloads: the stored bytes as they are, not a compressed copy of them.
BLOB_HEADERS = {"Accept-Encoding": "identity"}

T = TypeVar("T")


class _AuthedOptions(TypedDict, total=False):
    """The options of :meth:`HttpClient.request_json` an authenticated call passes on."""

    json_body: JSON
    idempotent: bool | None


class GettClient(ServiceClient):
    """Client of one Ge.tt API.

    :param base_url: the API's base URL including the version prefix, e.g.
        ``https://open.ge.tt/1/`` (historic) or ``http://127.0.0.1:8084/1/``.
    :param api_key: the application's API key.
    :param email: the user's e-mail address.
    :param password: the user's password. It is kept in memory (never logged)
        so that the client can log in anew when the refresh token is rejected.
    :param refresh_token: a refresh token to log in with instead of a password.
    :param timeouts: connect and read timeouts.
    :param retry: retry policy for idempotent requests.
    :param poll_timeout: seconds to wait for an upload's ``readystate`` to
        become ``uploaded``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        email: str | None = None,
        password: str | None = None,
        refresh_token: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        poll_timeout: float = 30.0,
        http: HttpClient | None = None,
    ):
        for name, value in (
            ("api_key", api_key),
            ("email", email),
            ("password", password),
            ("refresh_token", refresh_token),
        ):
            if value is not None and not isinstance(value, str):
                raise InvalidArgumentError(f"{name} must be a string")
        self._connect(base_url, http, timeouts, retry, error_details, secrets=(api_key, password, refresh_token))
        self._api_key, self._email, self._password = api_key, email, password
        self._refresh_token = refresh_token
        self._access_token: str | None = None
        self._expires_at = 0.0  # time.monotonic() at which the access token expires
        self._lifetime = 0.0
        self._token_lock = threading.Lock()
        self.poll_timeout = poll_timeout
        self.user: User | None = None
        #: called with ``None`` after each login, and with the error of a login Ge.tt refused
        #: (the plugin's credentials state: ``ServicePlugin._track_logins``)
        self.on_login: Callable[[ServiceError | None], None] | None = None

    def __repr__(self) -> str:
        return f"GettClient({self.base_url!r}, email={self._email!r})"

    # -- authentication ------------------------------------------------------

    def _has_credentials(self) -> bool:
        return bool(self._api_key and self._email and self._password)

    def _store_login(self, login: Login) -> User:
        """Keep what a (checked) login answered."""
        self.add_secret(login.access)
        self.add_secret(login.refresh)
        self._access_token, self._refresh_token = login.access, login.refresh
        self._lifetime = login.lifetime
        self._expires_at = time.monotonic() + login.lifetime
        self.user = login.user
        return login.user

    def _login_locked(self) -> User:
        """Log in with the refresh token if there is one (else, or if it fails, with the password);
        tells ``on_login`` the outcome (a refusal: an error with a status)."""
        try:
            user = self._login_once()
        except GettAuthError as exc:
            if exc.status is not None and self.on_login is not None:
                self.on_login(exc)
            raise
        if self.on_login is not None:
            self.on_login(None)
        return user

    def _login_once(self) -> User:
        refused: AuthError | None = None
        if self._refresh_token:
            try:
                login = self.http.request_json(
                    "POST",
                    "users/login",
                    json_body={"refreshtoken": self._refresh_token},
                    idempotent=False,
                    parse=Login.from_json,
                )
                return self._store_login(login)
            except AuthError as exc:
                logger.info("gett: the refresh token was rejected (%s); logging in with the password", exc)
                self._refresh_token, refused = None, exc
        if not self._has_credentials():
            raise GettAuthError(
                "cannot log in to Ge.tt: configure api_key, email and password (or a refresh token)"
                + (f"; the refresh token was refused ({refused.server_message or refused})" if refused else ""),
                status=refused.status if refused else None,
                server_message=refused.server_message if refused else None,
            )
        body = {"apikey": self._api_key, "email": self._email, "password": self._password}
        try:
            login = self.http.request_json(
                "POST", "users/login", json_body=body, idempotent=True, parse=Login.from_json
            )
        except AuthError as exc:
            raise GettAuthError(
                f"Ge.tt login failed: {exc.server_message or exc}; check api_key, email and password",
                status=exc.status,
                endpoint=exc.endpoint,
                server_message=exc.server_message,
            ) from None
        return self._store_login(login)

    def login(self) -> User:
        """Log in now (with the refresh token if there is one, else with the password); returns the user."""
        with self._token_lock:
            return self._login_locked()

    def access_token(self) -> str:
        """A valid access token: logs in if needed and renews it shortly before it expires."""
        with self._token_lock:
            margin = min(300.0, self._lifetime * 0.2)
            if self._access_token is None or time.monotonic() >= self._expires_at - margin:
                self._login_locked()
            assert self._access_token is not None
            return self._access_token

    @property
    def refresh_token(self) -> str | None:
        """The current refresh token (a secret: never log it)."""
        return self._refresh_token

    def _authed(
        self,
        method: str,
        path: str,
        *,
        parse: Callable[[JSON], T],
        params: Mapping[str, object] | None = None,
        **kwargs: Unpack[_AuthedOptions],
    ) -> T:
        """An authenticated call of :meth:`HttpClient.request_json` (``kwargs``: its arguments) read by
        ``parse``: one new login after an auth error, then :class:`GettAuthError`."""
        for attempt in (1, 2):
            token = self.access_token()
            query = {**(params or {}), "accesstoken": token}
            try:
                result: T = self.http.request_json(method, path, params=query, parse=parse, **kwargs)
                return result
            except AuthError as exc:
                if attempt == 2:
                    raise GettAuthError(
                        f"{exc.endpoint}: Ge.tt refused the request even after a new login "
                        f"({exc.server_message or 'HTTP ' + str(exc.status)})",
                        status=exc.status,
                        endpoint=exc.endpoint,
                        server_message=exc.server_message,
                    ) from None
                logger.info("gett: %s; logging in anew", exc)
                with self._token_lock:
                    if self._access_token == token:
                        self._access_token = None
        raise AssertionError("unreachable")

    def get_user(self) -> User:
        """The logged-in user with storage figures (``GET /users/me``)."""
        self.user = self._authed("GET", "users/me", parse=User.from_json)
        return self.user

    # -- shares --------------------------------------------------------------

    def get_shares(self, skip: int | None = None, limit: int | None = None) -> list[Share]:
        """The user's shares, optionally paged with ``skip`` and ``limit``."""
        params = {
            k: v
            for k, v in (("skip", check_paging(skip, "skip")), ("limit", check_paging(limit, "limit")))
            if v is not None
        }
        return self._authed("GET", "shares", params=params, parse=shares_from_json)

    def get_share(self, sharename: str) -> Share:
        """One share with its files (no authentication needed)."""
        return self.http.request_json("GET", f"shares/{quote(check_sharename(sharename))}", parse=Share.from_json)

    def create_share(self, title: str | None = None) -> Share:
        """Create a share, with a title if given."""
        title = check_title(title)
        body = {"title": title} if title else {}
        return self._authed("POST", "shares/create", json_body=body, idempotent=False, parse=Share.from_json)

    def update_share(self, sharename: str, title: str | None = None) -> Share:
        """Set a share's title; ``None`` or ``""`` removes it."""
        path = f"shares/{quote(check_sharename(sharename))}/update"
        body = {"title": check_title(title) or None}
        return self._authed("POST", path, json_body=body, idempotent=True, parse=Share.from_json)

    def destroy_share(self, sharename: str) -> None:
        """Delete a share with all its files. Irreversible."""
        path = f"shares/{quote(check_sharename(sharename))}/destroy"
        self._authed("POST", path, json_body={}, idempotent=True, parse=acknowledged)

    # -- files ---------------------------------------------------------------

    def _file_path(self, sharename: str, fileid: str | int, suffix: str = "") -> str:
        return f"files/{quote(check_sharename(sharename))}/{quote(check_fileid(fileid))}{suffix}"

    def get_file(self, sharename: str, fileid: str) -> File:
        """One file's metadata (no authentication needed)."""
        return self.http.request_json("GET", self._file_path(sharename, fileid), parse=File.from_json)

    def create_file(self, sharename: str, filename: str) -> File:
        """Create a file record (``readystate`` ``remote``) with its upload URLs."""
        path = f"files/{quote(check_sharename(sharename))}/create"
        body = {"filename": check_filename(filename)}
        file: File = self._authed("POST", path, json_body=body, idempotent=False, parse=File.from_json)
        if file.upload is None:
            endpoint = self.http.endpoint("POST", self.http.url(path))
            raise ProtocolError(f"{endpoint}: the new file has no upload URLs", endpoint=endpoint)
        return file

    def upload_url(self, sharename: str, fileid: str) -> UploadUrls:
        """New signed upload URLs of a file (earlier ones stay valid)."""
        return self._authed("GET", self._file_path(sharename, fileid, "/upload"), parse=UploadUrls.from_json)

    def destroy_file(self, sharename: str, fileid: str) -> None:
        """Delete a file. Irreversible."""
        path = self._file_path(sharename, fileid, "/destroy")
        self._authed("POST", path, json_body={}, idempotent=True, parse=acknowledged)

    # -- uploads -------------------------------------------------------------

    def send_data(
        self,
        put_url: str,
        *,
        path: str | None = None,
        data: bytes | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> int:
        """``PUT`` a local file (streamed) or bytes to a signed upload URL; returns the bytes sent.

        A transient failure (5xx, reset) is retried from the start of the data.
        """
        check_upload_url(put_url, "put_url")
        path = check_source_path(path) if path is not None else None
        if path is None and not isinstance(data, (bytes, bytearray)):
            raise InvalidArgumentError("give a path or data (bytes) to upload")
        with open_source(path, bytes(data) if data is not None else None) as (source, size):
            body = ProgressReader(source, size, progress, cancel)
            response = self.http.request(
                "PUT", put_url, data=body, idempotent=True, headers={"Content-Type": "application/octet-stream"}
            )
            response.close()
        return size

    def send_data_post(
        self,
        post_url: str,
        filename: str,
        *,
        path: str | None = None,
        data: bytes | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> int:
        """Upload as a streamed ``multipart/form-data`` ``POST`` (field ``Filedata``); returns the bytes sent."""
        check_upload_url(post_url, "post_url")
        check_filename(filename)
        path = check_source_path(path) if path is not None else None
        if path is None and not isinstance(data, (bytes, bytearray)):
            raise InvalidArgumentError("give a path or data (bytes) to upload")
        boundary = "gett" + os.urandom(12).hex()
        safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        prefix = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="Filedata"; filename="{safe_name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        suffix = f"\r\n--{boundary}--\r\n".encode()
        with open_source(path, bytes(data) if data is not None else None) as (source, size):
            body = ProgressReader(source, size, progress, cancel, prefix, suffix)
            response = self.http.request(
                "POST",
                post_url,
                data=body,
                idempotent=True,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            response.close()
        return size

    def wait_uploaded(self, sharename: str, fileid: str, timeout: float | None = None) -> File:
        """Poll the file until its ``readystate`` is ``uploaded`` (bounded in time); returns it."""
        deadline = time.monotonic() + (self.poll_timeout if timeout is None else timeout)
        backoff = Backoff(base=0.05, cap=1.0, jitter=False)
        while True:
            file = self.get_file(sharename, fileid)
            if file.readystate == "uploaded":
                return file
            if file.readystate not in ("remote", "uploading"):
                raise GettError(f"file {sharename}/{fileid} is in state {file.readystate!r} after the upload")
            delay = backoff.next_delay()
            if time.monotonic() + delay > deadline:
                raise GettError(
                    f"file {sharename}/{fileid} is still {file.readystate!r} after the upload "
                    f"(waited {timeout if timeout is not None else self.poll_timeout:g} s)"
                )
            time.sleep(delay)

    def upload_file(
        self,
        filename: str,
        *,
        path: str | None = None,
        data: bytes | None = None,
        sharename: str | None = None,
        title: str | None = None,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> File:
        """Upload a local file (streamed) or bytes into a share (a new one when
        ``sharename`` is not given, titled ``title``); returns the uploaded file.

        Everything is validated first; if the upload fails, the file record (and
        the share, if it was created here) is deleted again.
        """
        check_filename(filename)
        if (path is None) == (data is None):
            raise InvalidArgumentError("give exactly one of path (a local file) or data")
        path = check_source_path(path) if path is not None else None
        if data is not None and not isinstance(data, (bytes, bytearray)):
            raise InvalidArgumentError("data must be bytes")
        if sharename is not None:
            check_sharename(sharename)
        title = check_title(title)

        created_share = None
        if sharename is None:
            sharename = created_share = self.create_share(title).sharename
        file: File | None = None
        try:
            file = self.create_file(sharename, filename)
            assert file.upload is not None
            self.send_data(file.upload.puturl, path=path, data=data, progress=progress, cancel=cancel)
            return self.wait_uploaded(sharename, file.fileid)
        except BaseException:
            self._cleanup(created_share, file)
            raise

    def _cleanup(self, created_share: str | None, file: File | None) -> None:
        try:
            if created_share is not None:
                self.destroy_share(created_share)
            elif file is not None:
                self.destroy_file(file.sharename, file.fileid)
        except ServiceError as exc:
            logger.warning("gett: could not remove what the failed upload created: %s", exc)

    # -- downloads -----------------------------------------------------------

    def _open_blob(self, sharename: str, fileid: str, thumb: bool) -> tuple[requests.Response, str]:
        """The blob's answer, not read yet: the stored bytes as they are (``Accept-Encoding: identity``;
        a host that sends a ``Content-Encoding`` anyway, as S3 does for an object stored with one, is
        read without decoding, see :meth:`_stream`)."""
        path = self._file_path(sharename, fileid, "/blob/thumb" if thumb else "/blob")
        response = self.http.request("GET", path, stream=True, headers=BLOB_HEADERS)  # follows the 302
        return response, self.http.endpoint("GET", self.http.url(path))

    def _stream(
        self,
        response: requests.Response,
        endpoint: str,
        sink: Callable[[bytes], object],
        progress: Progress | None,
        cancel: threading.Event | None,
        stored: int | None = None,
    ) -> int:
        """Pass the body's bytes, undecoded, to ``sink``; returns their count. The count is checked
        against ``Content-Length`` and ``stored`` (the size Ge.tt records), when known."""
        total, done = _content_length(response), 0
        if stored is not None and total is not None and total != stored:
            response.close()
            raise GettError(f"{endpoint}: the blob host announces {total} bytes, Ge.tt stores {stored}")
        total = stored if total is None else total
        try:
            for chunk in _raw_chunks(response):
                if cancel is not None and cancel.is_set():
                    raise TransferCancelledError("the download was cancelled")
                sink(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        except _BrokenStreamError as exc:
            raise ServiceConnectionError(
                f"{endpoint}: the download stopped after {done} of {total if total is not None else '?'} bytes ({exc})",
                endpoint=endpoint,
            ) from None
        finally:
            response.close()
        if total is not None and done < total:
            raise ServiceConnectionError(
                f"{endpoint}: the download stopped after {done} of {total} bytes", endpoint=endpoint
            )
        if stored is not None and done != stored:
            raise GettError(f"{endpoint}: the download has {done} bytes, Ge.tt stores {stored}")
        return done

    def download(
        self,
        sharename: str,
        fileid: str,
        path: str,
        *,
        thumb: bool = False,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        overwrite: bool = False,
        stored_size: int | None = None,
    ) -> str:
        """Download a file (or its thumbnail) to ``path`` (a folder: the file's own name in it,
        made safe by :func:`safe_file_name`), streamed through a temporary file that is renamed
        when complete; an existing file is replaced only with ``overwrite``. Returns the final path.

        The file's bytes are saved as Ge.tt stores them, never decoded (a blob host's
        ``Content-Encoding`` included), and their count must be the size Ge.tt records
        (``stored_size`` if the caller has it, else the file's metadata is read first)."""
        sharename, fileid = check_sharename(sharename), check_fileid(fileid)
        destination = check_destination(path)
        file = None
        if os.path.isdir(destination) or (not thumb and stored_size is None):
            file = self.get_file(sharename, fileid)
        if os.path.isdir(destination):
            name = safe_file_name(file.filename, f"{sharename}-{fileid}")  # type: ignore[union-attr]
            destination = os.path.join(destination, ("thumb-" if thumb else "") + name)
        if not thumb and stored_size is None:
            stored_size = file.size  # type: ignore[union-attr]
        check_new_file(destination, overwrite)
        # the temporary file first: if it cannot be created, no download is opened (and leaked)
        with partial_file(destination, overwrite) as out:
            response, endpoint = self._open_blob(sharename, fileid, thumb)
            sink = _bounded(out.write, MAX_THUMBNAIL, f"the thumbnail of {sharename}/{fileid}") if thumb else out.write
            self._stream(response, endpoint, sink, progress, cancel, None if thumb else stored_size)
        return destination

    def contents(
        self,
        sharename: str,
        fileid: str,
        *,
        thumb: bool = False,
        max_size: int = 16 << 20,
        cancel: threading.Event | None = None,
        stored_size: int | None = None,
    ) -> bytes:
        """A file's (or its thumbnail's) bytes, untouched (as :meth:`download`, the size Ge.tt records
        checked: ``stored_size``, else from the file's metadata); refuses files larger than ``max_size``
        (thumbnails larger than :data:`MAX_THUMBNAIL`)."""
        sharename, fileid = check_sharename(sharename), check_fileid(fileid)
        if thumb:
            max_size = min(max_size, MAX_THUMBNAIL)
        if not thumb and stored_size is None:
            stored_size = self.get_file(sharename, fileid).size
        if stored_size is not None and stored_size > max_size:
            raise GettError(
                f"{sharename}/{fileid} has {stored_size} bytes, more than {max_size}: download it to a path"
            )
        response, endpoint = self._open_blob(sharename, fileid, thumb)
        size = _content_length(response)
        if size is not None and size > max_size:
            response.close()
            raise GettError(f"{sharename}/{fileid} has {size} bytes, more than {max_size}: download it to a path")
        parts: list[bytes] = []
        if thumb:
            keep = _bounded(parts.append, max_size, f"the thumbnail of {sharename}/{fileid}")
        else:
            keep = _bounded(parts.append, max_size, f"{sharename}/{fileid}", ": download it to a path")
        self._stream(response, endpoint, keep, None, cancel, None if thumb else stored_size)
        return b"".join(parts)


def _bounded(sink: Callable[[bytes], object], limit: int, what: str, hint: str = "") -> Callable[[bytes], None]:
    """``sink`` that refuses more than ``limit`` bytes in all (:class:`GettError` naming ``what``, then ``hint``)."""
    received = [0]

    def keep(chunk: bytes) -> None:
        received[0] += len(chunk)
        if received[0] > limit:
            raise GettError(f"{what} is larger than {limit} bytes{hint}")
        sink(chunk)

    return keep


def _content_length(response: requests.Response) -> int | None:
    """The announced length of the body as sent (of the stored bytes, whatever its ``Content-Encoding``)."""
    text = response.headers.get("Content-Length", "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


class _BrokenStreamError(Exception):
    """Reading a blob failed (its reason: ``timed out`` or ``the connection broke``)."""


def _raw_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body's bytes as sent, in chunks, never decoded (``requests``' ``iter_content`` would undo a
    ``Content-Encoding``: then neither the bytes nor their count are the stored ones).

    :raises _BrokenStreamError: the connection broke or timed out.
    """
    chunks = response.raw.stream(CHUNK_SIZE, decode_content=False)
    while True:
        try:
            chunk = next(chunks, None)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise _BrokenStreamError(
                "timed out" if "timed out" in str(exc).lower() else "the connection broke"
            ) from None
        if chunk is None:
            return
        yield chunk
