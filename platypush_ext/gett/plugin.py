"""The ``gett`` Platypush plugin: thin glue over :class:`GettClient`, with background transfers."""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from platypush.plugins import RunnablePlugin

from ..core.errors import InvalidArgumentError, ServiceError
from ..core.untrusted import JSON, JSONObject
from ..glue.actions import action
from ..glue.plugin import ServicePlugin
from .checks import (
    check_destination,
    check_fileid,
    check_filename,
    check_new_file,
    check_sharename,
    check_source_path,
    check_title,
    decode_data,
)
from .client import GettClient
from .errors import GettError, TransferCancelledError
from .events import GettAuthFailedEvent, GettTransferCompletedEvent, GettTransferFailedEvent, GettTransferProgressEvent
from .files import Progress, TransferFields, TransferOutcome

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Longest inline ``data`` accepted by the upload actions (characters of text or base64);
#: larger content is uploaded from a ``path``, streamed.
MAX_DATA_LENGTH = 64 << 20

#: ``work(progress, cancel)`` performs a transfer and returns its result.
Work = Callable[[Progress, threading.Event], JSONObject]


@dataclass
class _Transfer:
    transfer_id: str
    direction: str
    filename: str | None = None
    sharename: str | None = None
    fileid: str | None = None
    path: str | None = None
    bytes_total: int | None = None
    bytes_done: int = 0
    state: str = "running"
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def ids(self) -> JSONObject:
        return {
            "transfer_id": self.transfer_id,
            "direction": self.direction,
            "filename": self.filename,
            "sharename": self.sharename,
            "fileid": self.fileid,
            "path": self.path,
        }

    def to_dict(self) -> JSONObject:
        return {
            **self.ids(),
            "state": self.state,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }


class GettPlugin(ServicePlugin, RunnablePlugin):
    """
    `Ge.tt <http://ge.tt>`_ file sharing: shares, files, uploads and downloads
    of any size (streamed, in the background if asked, with progress events).

    Example configuration:

    .. code-block:: yaml

        gett:
          base_url: http://127.0.0.1:8084/1/
          api_key: your-app-api-key
          email: you@example.org
          password: your-password

    Transfers started with ``wait: false`` run in the background: the action
    returns a ``transfer_id`` at once, and the transfer reports
    :class:`platypush_ext.gett.events.GettTransferProgressEvent` (a few per
    second at most), then :class:`platypush_ext.gett.events.GettTransferCompletedEvent`
    or :class:`platypush_ext.gett.events.GettTransferFailedEvent`. Use this for
    files that may take longer than Platypush's 60 s ``/execute`` limit. A
    transfer with ``wait: true`` that is still running after 50 s answers with
    its ``transfer_id`` and ``state: running`` and goes on the same way.
    """

    _client: GettClient

    #: Finished transfers remembered by :meth:`get_transfers`.
    HISTORY = 100

    #: A transfer action with ``wait: true`` answers within this many seconds (Platypush's
    #: ``/execute`` gives up at 60 s); a transfer still running then goes on in the background.
    WAIT_LIMIT = 50.0

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        email: str | None = None,
        password: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        retries: int = 2,
        progress_interval: float = 0.5,
        max_transfers: int = 4,
        max_inline_size: int = 16 * 1024 * 1024,
        verify: bool | str = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        proxy: str | None = None,
        **kwargs: JSON,
    ):
        """
        :param base_url: base URL of the Ge.tt API including its version, e.g.
            ``http://127.0.0.1:8084/1/`` (the historic ``https://open.ge.tt/1/``
            is gone; this is required).
        :param api_key: your application's Ge.tt API key.
        :param email: the e-mail address of your Ge.tt account.
        :param password: its password (kept in memory, never logged).
        :param connect_timeout: seconds to wait for a connection (default: 5).
        :param read_timeout: seconds to wait for an answer or for the next
            chunk of a transfer (default: 30).
        :param retries: how many times an idempotent request (including an
            upload's ``PUT``) is retried on a transient failure (default: 2).
        :param progress_interval: minimum seconds between two progress events
            of one transfer (default: 0.5, at least 0.2).
        :param max_transfers: how many background transfers may run at once (default: 4).
        :param max_inline_size: largest file (bytes) that ``download_file``
            without a ``path`` returns inline (default: 16 MiB).
        :param verify: check the server's TLS certificate (``true``), not (``false``), or against this CA bundle.
        :param client_cert: a client certificate (PEM file) for mutual TLS (default: none).
        :param client_key: its private key (PEM file), when it is not in ``client_cert``.
        :param proxy: an HTTP(S) proxy URL, e.g. ``http://proxy:3128`` (default: the environment's).
        """
        super().__init__(**kwargs)
        self._set_transport("gett", verify=verify, client_cert=client_cert, client_key=client_key, proxy=proxy)
        self._open_client(
            GettClient,
            base_url,
            api_key=api_key,
            email=email,
            password=password,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries=retries,
        )
        self._track_logins("Ge.tt API at", GettAuthFailedEvent)  # a refused login: one event, in status
        self._progress_interval = max(0.2, float(progress_interval))
        self._max_transfers = max(1, int(max_transfers))
        self._max_inline_size = int(max_inline_size)
        self._transfers: OrderedDict[str, _Transfer] = OrderedDict()
        self._lock = threading.Lock()

    # -- transfers -----------------------------------------------------------

    def _new_transfer(self, direction: str, **fields: Unpack[TransferFields]) -> _Transfer:
        """Admit a transfer, or :class:`GettError` when ``max_transfers`` run. Counted and registered
        under one lock: a transfer holds its slot from here (before its thread exists) until it ends."""
        transfer = _Transfer(transfer_id=uuid.uuid4().hex[:12], direction=direction, **fields)
        with self._lock:
            running = sum(1 for t in self._transfers.values() if t.state == "running")
            if running >= self._max_transfers:
                raise GettError(f"{running} transfers are running (max_transfers): wait for one or cancel it")
            self._transfers[transfer.transfer_id] = transfer
            finished = [k for k, t in self._transfers.items() if t.state != "running"]
            for key in finished[: max(0, len(finished) - self.HISTORY)]:
                del self._transfers[key]
        return transfer

    def _run(self, transfer: _Transfer, work: Work) -> JSONObject:
        """Perform a transfer, posting its progress and its outcome; re-raises failures."""
        last = [0.0]

        def progress(done: int, total: int | None) -> None:
            transfer.bytes_done = done
            if total is not None:
                transfer.bytes_total = total
            now = time.monotonic()
            if now - last[0] >= self._progress_interval:
                last[0] = now
                self._bus.post(
                    GettTransferProgressEvent(bytes_done=done, bytes_total=transfer.bytes_total, **transfer.ids())
                )

        started = time.monotonic()
        try:
            result = work(progress, transfer.cancel)
        except BaseException as exc:
            cancelled = isinstance(exc, TransferCancelledError)
            transfer.state, transfer.error = ("cancelled" if cancelled else "failed"), str(exc)
            transfer.finished = time.time()
            self._bus.post(
                GettTransferFailedEvent(
                    error=transfer.error, cancelled=cancelled, bytes_done=transfer.bytes_done, **transfer.ids()
                )
            )
            raise
        transfer.state, transfer.finished = "completed", time.time()
        transfer.bytes_done = int(result.get("size") or transfer.bytes_done)
        self._bus.post(
            GettTransferCompletedEvent(
                size=transfer.bytes_done,
                duration=round(time.monotonic() - started, 3),
                getturl=result.get("getturl"),
                **transfer.ids(),
            )
        )
        return {**result, "transfer_id": transfer.transfer_id}

    def _start(self, transfer: _Transfer, work: Work, wait: bool) -> JSONObject:
        """Run a transfer in its own thread. With ``wait``, answer with its outcome, or after
        :attr:`WAIT_LIMIT` seconds with its id (it goes on in the background, reporting by events)."""
        lock, waiting = threading.Lock(), [wait]
        outcome: TransferOutcome = {}

        def background() -> None:
            try:
                result = self._run(transfer, work)
            except BaseException as exc:
                with lock:
                    outcome["error"], report = exc, not waiting[0]
                if report and isinstance(exc, ServiceError):
                    self.logger.warning("gett: transfer %s failed: %s", transfer.transfer_id, exc)
                elif report:
                    self.logger.exception("gett: transfer %s failed", transfer.transfer_id)
            else:
                with lock:
                    outcome["result"] = result

        transfer.thread = threading.Thread(target=background, name=f"gett-{transfer.transfer_id}", daemon=True)
        try:
            transfer.thread.start()
        except RuntimeError as exc:  # no thread could be started: the slot is freed
            transfer.state, transfer.finished = "failed", time.time()
            transfer.error = f"cannot start the transfer: {exc}"
            raise GettError(transfer.error) from None
        if wait:
            transfer.thread.join(self.WAIT_LIMIT)
            with lock:
                waiting[0] = False
                if "error" in outcome:
                    raise outcome["error"]
                if "result" in outcome:
                    return outcome["result"]
            return {
                "transfer_id": transfer.transfer_id,
                "state": "running",
                **transfer.ids(),
                "note": f"still running after {self.WAIT_LIMIT:g} s; it goes on in the background "
                "(see gett.get_transfers and the GettTransfer* events)",
            }
        return {"transfer_id": transfer.transfer_id, "state": "running", **transfer.ids()}

    # -- account and shares --------------------------------------------------

    @action
    def get_user(self) -> JSONObject:
        """
        Log in (if needed) and get the account's details and storage figures.

        :return: e.g.

            .. code-block:: json

                {"userid": "u1", "fullname": "Mr API Test", "email": "apitest@ge.tt",
                 "files": 42, "downloads": 562, "storage_used": 2424444,
                 "storage_limit": 20000000000, "storage_extra": 0}
        """
        return self._client.get_user().to_dict()

    @action
    def get_shares(self, skip: int | None = None, limit: int | None = None) -> JSONObject:
        """
        The account's shares, by share name.

        :param skip: number of shares to skip (optional).
        :param limit: maximum number of shares to return (optional).
        :return: e.g. ``{"4dsfd": {"sharename": "4dsfd", "title": "Holiday", "created": 1322847473,
            "getturl": "http://ge.tt/4dsfd", "live": false, "files": [...]}}``
        """
        return {s.sharename: s.to_dict() for s in self._client.get_shares(skip=skip, limit=limit)}

    @action
    def get_shares_list(self, skip: int | None = None, limit: int | None = None) -> list[JSONObject]:
        """
        The account's shares, as a list in creation order.

        :param skip: number of shares to skip (optional).
        :param limit: maximum number of shares to return (optional).
        :return: e.g. ``[{"sharename": "4dsfd", "title": null, "created": 1322847473,
            "getturl": "http://ge.tt/4dsfd", "live": false, "files": []}]``
        """
        return [s.to_dict() for s in self._client.get_shares(skip=skip, limit=limit)]

    @action
    def get_share(self, sharename: str) -> JSONObject:
        """
        Get a share with its files.

        :param sharename: the share's name, e.g. ``4dsfd``.
        :return: e.g.

            .. code-block:: json

                {"sharename": "4dsfd", "title": "Holiday", "created": 1322847473,
                 "getturl": "http://ge.tt/4dsfd", "live": false,
                 "files": [{"fileid": "0", "filename": "a.jpg", "sharename": "4dsfd",
                            "size": 1024, "downloads": 3, "readystate": "uploaded",
                            "created": 1322847480, "getturl": "http://ge.tt/4dsfd/v/0"}]}
        """
        return self._client.get_share(sharename).to_dict()

    @action
    def refresh_share(self, sharename: str) -> JSONObject:
        """
        Get the current state of a share (the same as :meth:`get_share`; kept
        for users of ``pygett``'s ``GettShare.refresh()``).

        :param sharename: the share's name.
        :return: the share, as :meth:`get_share` returns it.
        """
        return self._client.get_share(sharename).to_dict()

    @action
    def create_share(self, title: str | None = None) -> JSONObject:
        """
        Create a share.

        :param title: its title (optional).
        :return: e.g. ``{"sharename": "a1b2c3", "title": "holiday", "created": 1322847473,
            "getturl": "http://ge.tt/a1b2c3", "live": false, "files": []}``
        """
        return self._client.create_share(title).to_dict()

    @action
    def update_share(self, sharename: str, title: str | None = None) -> JSONObject:
        """
        Set or remove a share's title (the only thing Ge.tt lets you change).

        :param sharename: the share's name.
        :param title: the new title; omit it (or pass an empty string) to remove the title.
        :return: the share as it is now.
        """
        return self._client.update_share(sharename, title).to_dict()

    @action
    def destroy_share(self, sharename: str) -> JSONObject:
        """
        Delete a share and all its files. Irreversible.

        :param sharename: the share's name.
        :return: ``{"destroyed": true}``
        """
        self._client.destroy_share(sharename)
        return {"destroyed": True}

    # -- files ---------------------------------------------------------------

    @action
    def get_file(self, sharename: str, fileid: str) -> JSONObject:
        """
        Get a file's details.

        :param sharename: the share's name.
        :param fileid: the file's id (a string such as ``"0"`` or ``"2f"``).
        :return: e.g. ``{"fileid": "0", "filename": "a.txt", "sharename": "4dsfd", "size": 5,
            "downloads": 0, "readystate": "uploaded", "created": 1322847473,
            "getturl": "http://ge.tt/4dsfd/v/0"}``
        """
        return self._client.get_file(sharename, fileid).to_dict()

    @action
    def refresh_file(self, sharename: str, fileid: str) -> JSONObject:
        """
        Get the current state of a file (the same as :meth:`get_file`; kept for
        users of ``pygett``'s ``GettFile.refresh()``).

        :param sharename: the share's name.
        :param fileid: the file's id.
        :return: the file, as :meth:`get_file` returns it.
        """
        return self._client.get_file(sharename, fileid).to_dict()

    @action
    def destroy_file(self, sharename: str, fileid: str) -> JSONObject:
        """
        Delete a file. Irreversible.

        :param sharename: the share's name.
        :param fileid: the file's id.
        :return: ``{"destroyed": true}``
        """
        self._client.destroy_file(sharename, fileid)
        return {"destroyed": True}

    @action
    def upload_url(self, sharename: str, fileid: str) -> JSONObject:
        """
        Get new signed URLs to (re)upload a file's content with an HTTP ``PUT``
        (raw bytes) or ``POST`` (``multipart/form-data``, field ``Filedata``).
        Anyone with these URLs can overwrite the file: keep them private.

        :param sharename: the share's name.
        :param fileid: the file's id.
        :return: ``{"puturl": "http://blobs.ge.tt/...", "posturl": "http://blobs.ge.tt/..."}``
        """
        urls = self._client.upload_url(sharename, fileid)
        return {"puturl": urls.puturl, "posturl": urls.posturl}

    @action(max_length={"data": MAX_DATA_LENGTH})
    def upload_file(
        self,
        filename: str,
        data: str | None = None,
        path: str | None = None,
        sharename: str | None = None,
        title: str | None = None,
        wait: bool = True,
        data_format: str = "text",
    ) -> JSONObject:
        """
        Upload a local file (streamed, any size) or some data to Ge.tt.

        :param filename: the file's name on Ge.tt.
        :param data: the content, as text or base64 (see ``data_format``; at most
            64 MiB of characters); or give ``path``.
        :param path: a local file to upload instead of ``data``.
        :param sharename: an existing share to upload into; by default a new share is created.
        :param title: the title of the new share (when no ``sharename`` is given).
        :param wait: wait for the upload to complete (default; at most 50 s,
            then it goes on in the background). With ``false`` the upload runs
            in the background and the answer is its ``transfer_id``; follow it
            with the transfer events.
        :param data_format: ``text`` (default; sent as UTF-8) or ``base64``.
        :return: the uploaded file and the transfer id, e.g.

            .. code-block:: json

                {"fileid": "0", "filename": "a.txt", "sharename": "a1b2c3", "size": 5,
                 "downloads": 0, "readystate": "uploaded", "created": 1322847473,
                 "getturl": "http://ge.tt/a1b2c3/v/0", "transfer_id": "5f0c2a9d1e3b"}

            or, with ``wait: false``, ``{"transfer_id": "5f0c2a9d1e3b", "state": "running", ...}``.
        """
        check_filename(filename)
        if (data is None) == (path is None):
            raise InvalidArgumentError("give exactly one of data (text or base64) or path (a local file)")
        content = decode_data(data, data_format) if data is not None else None
        source = check_source_path(path) if path is not None else None
        if sharename is not None:
            check_sharename(sharename)
        check_title(title)
        size = os.path.getsize(source) if source else len(content or b"")
        transfer = self._new_transfer("upload", filename=filename, sharename=sharename, path=source, bytes_total=size)

        def work(progress: Progress, cancel: threading.Event) -> JSONObject:
            file = self._client.upload_file(
                filename, path=source, data=content, sharename=sharename, title=title, progress=progress, cancel=cancel
            )
            transfer.sharename, transfer.fileid = file.sharename, file.fileid
            return file.to_dict()

        return self._start(transfer, work, bool(wait))

    @action(max_length={"data": MAX_DATA_LENGTH})
    def send_data(
        self,
        sharename: str,
        fileid: str,
        data: str | None = None,
        path: str | None = None,
        put_url: str | None = None,
        wait: bool = True,
        data_format: str = "text",
    ) -> JSONObject:
        """
        Replace the content of an existing file (streamed from ``path``, or ``data``).

        :param sharename: the file's share.
        :param fileid: the file's id.
        :param data: the new content, as text or base64 (see ``data_format``; at
            most 64 MiB of characters); or give ``path``.
        :param path: a local file whose content to upload.
        :param put_url: a ``puturl`` from :meth:`upload_url` (default: new upload URLs are requested).
        :param wait: wait for the upload to complete (default); ``false`` runs it in the background.
        :param data_format: ``text`` (default) or ``base64``.
        :return: the file as it is now and the transfer id (or, with ``wait: false``,
            ``{"transfer_id": "...", "state": "running", ...}``).
        """
        sharename, fileid = check_sharename(sharename), check_fileid(fileid)
        if (data is None) == (path is None):
            raise InvalidArgumentError("give exactly one of data (text or base64) or path (a local file)")
        content = decode_data(data, data_format) if data is not None else None
        source = check_source_path(path) if path is not None else None
        if put_url is not None and (not isinstance(put_url, str) or not put_url.startswith(("http://", "https://"))):
            raise InvalidArgumentError("put_url must be an http(s) URL from gett.upload_url")
        size = os.path.getsize(source) if source else len(content or b"")
        transfer = self._new_transfer("upload", sharename=sharename, fileid=fileid, path=source, bytes_total=size)

        def work(progress: Progress, cancel: threading.Event) -> JSONObject:
            url = put_url or self._client.upload_url(sharename, fileid).puturl
            self._client.send_data(url, path=source, data=content, progress=progress, cancel=cancel)
            file = self._client.wait_uploaded(sharename, fileid)
            transfer.filename = file.filename
            return file.to_dict()

        return self._start(transfer, work, bool(wait))

    @action
    def download_file(
        self,
        sharename: str,
        fileid: str,
        path: str | None = None,
        wait: bool = True,
        data_format: str = "auto",
        overwrite: bool = False,
    ) -> JSONObject:
        """
        Download a file: to a local path (streamed through a temporary file
        that is renamed when complete), or inline as its content.

        :param sharename: the share's name.
        :param fileid: the file's id.
        :param path: where to write it (a folder: the file's own name in it).
            Without a path the content is returned (files up to
            ``max_inline_size`` only).
        :param wait: wait for the download to complete (default); ``false``
            runs it in the background (``path`` needed) and returns its ``transfer_id``.
        :param data_format: for inline content: ``auto`` (text if it is valid
            UTF-8, else base64; default), ``text`` or ``base64``.
        :param overwrite: replace an existing file at ``path`` (default: false,
            the download is refused).
        :return: with a path: ``{"path": "/tmp/a.txt", "size": 5, "sharename": "4dsfd",
            "fileid": "0", "transfer_id": "5f0c2a9d1e3b"}``; inline:
            ``{"sharename": "4dsfd", "fileid": "0", "size": 5, "data": "hello", "data_format": "text"}``.
        """
        sharename, fileid = check_sharename(sharename), check_fileid(fileid)
        if path is None:
            if not wait:
                raise InvalidArgumentError("a background download (wait: false) needs a path to write to")
            return self._inline(sharename, fileid, data_format, thumb=False)
        destination = check_destination(path)
        if not os.path.isdir(destination):
            check_new_file(destination, overwrite)  # before a background transfer starts
        transfer = self._new_transfer("download", sharename=sharename, fileid=fileid, path=destination)

        def work(progress: Progress, cancel: threading.Event) -> JSONObject:
            file = self._client.get_file(sharename, fileid)
            transfer.filename, transfer.bytes_total = file.filename, file.size
            final = self._client.download(
                sharename,
                fileid,
                destination,
                progress=progress,
                cancel=cancel,
                overwrite=overwrite,
                stored_size=file.size,
            )
            transfer.path = final
            return {
                "path": final,
                "size": os.path.getsize(final),
                "sharename": sharename,
                "fileid": fileid,
                "getturl": file.getturl,
            }

        return self._start(transfer, work, bool(wait))

    @action
    def get_thumbnail(
        self,
        sharename: str,
        fileid: str,
        path: str | None = None,
        data_format: str = "base64",
        overwrite: bool = False,
    ) -> JSONObject:
        """
        Get the thumbnail of an image file.

        :param sharename: the share's name.
        :param fileid: the file's id.
        :param path: where to write it (optional; a folder: ``thumb-<filename>`` in it).
        :param data_format: for inline content: ``base64`` (default) or ``auto``.
        :param overwrite: replace an existing file at ``path`` (default: false).
        :return: ``{"path": "/tmp/thumb-a.png", "size": 2048}`` or
            ``{"sharename": "...", "fileid": "0", "size": 2048, "data": "iVBORw0...", "data_format": "base64"}``
        """
        sharename, fileid = check_sharename(sharename), check_fileid(fileid)
        if path is None:
            return self._inline(sharename, fileid, data_format, thumb=True)
        final = self._client.download(sharename, fileid, check_destination(path), thumb=True, overwrite=overwrite)
        return {"path": final, "size": os.path.getsize(final)}

    def _inline(self, sharename: str, fileid: str, data_format: str, thumb: bool) -> JSONObject:
        if data_format not in ("auto", "text", "base64"):
            raise InvalidArgumentError(f"data_format must be 'auto', 'text' or 'base64', got {data_format!r}")
        content = self._client.contents(sharename, fileid, thumb=thumb, max_size=self._max_inline_size)
        result: JSONObject = {"sharename": sharename, "fileid": fileid, "size": len(content)}
        if data_format in ("auto", "text"):
            try:
                return {**result, "data": content.decode("utf-8"), "data_format": "text"}
            except UnicodeDecodeError:
                if data_format == "text":
                    raise GettError(f"{sharename}/{fileid} is not UTF-8 text: use data_format base64") from None
        return {**result, "data": base64.b64encode(content).decode("ascii"), "data_format": "base64"}

    # -- transfer management -------------------------------------------------

    @action
    def get_transfers(self, transfer_id: str | None = None) -> list[JSONObject]:
        """
        The running and recent transfers (or one of them).

        :param transfer_id: only this transfer (optional).
        :return: e.g. ``[{"transfer_id": "5f0c2a9d1e3b", "direction": "upload", "filename": "big.iso",
            "sharename": "a1b2c3", "fileid": "0", "path": "/data/big.iso", "state": "running",
            "bytes_done": 104857600, "bytes_total": 1073741824, "error": null,
            "started": 1795303005.1, "finished": null}]``
        """
        with self._lock:
            transfers = list(self._transfers.values())
        if transfer_id is not None:
            transfers = [t for t in transfers if t.transfer_id == transfer_id]
            if not transfers:
                raise InvalidArgumentError(f"no transfer {transfer_id!r} (known: the last {self.HISTORY})")
        return [t.to_dict() for t in transfers]

    @action
    def cancel_transfer(self, transfer_id: str, timeout: float = 10) -> JSONObject:
        """
        Cancel a running transfer. A cancelled upload removes what it created
        on Ge.tt; a cancelled download leaves nothing at its path. A
        :class:`platypush_ext.gett.events.GettTransferFailedEvent` with
        ``cancelled: true`` follows.

        :param transfer_id: the id returned by the action that started it.
        :param timeout: seconds to wait for it to stop (default: 10, at most 50).
        :return: ``{"transfer_id": "5f0c2a9d1e3b", "state": "cancelled"}`` (or its
            final state if it ended before it could be cancelled).
        """
        with self._lock:
            transfer = self._transfers.get(str(transfer_id))
        if transfer is None:
            raise InvalidArgumentError(f"no transfer {transfer_id!r}")
        transfer.cancel.set()
        if transfer.thread is not None:
            transfer.thread.join(min(max(float(timeout), 0.0), 50.0))
        return {"transfer_id": transfer.transfer_id, "state": transfer.state}

    # -- life cycle ----------------------------------------------------------

    def main(self) -> None:
        # Transfers run in their own threads; this loop only waits for Platypush to stop.
        self.wait_stop()

    def stop(self) -> None:
        with self._lock:
            running = [t for t in self._transfers.values() if t.state == "running" and t.thread is not None]
        for transfer in running:
            transfer.cancel.set()
        deadline = time.monotonic() + 3
        for transfer in running:
            assert transfer.thread is not None
            transfer.thread.join(max(0.0, deadline - time.monotonic()))
        super().stop()
