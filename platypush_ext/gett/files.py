"""Local files of Ge.tt's transfers: safe names for what the server names, downloads written
through a temporary file and moved into place when complete, upload bodies read from a file
(or bytes) with progress and cancellation."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypedDict

from ..core.untrusted import JSONObject
from .checks import check_new_file
from .errors import GettError, TransferCancelledError

#: Bytes read or written at a time by transfers.
CHUNK_SIZE = 1 << 20

#: ``progress(bytes_done, bytes_total)``; ``bytes_total`` is ``None`` when unknown.
Progress = Callable[[int, "int | None"], None]


class TransferFields(TypedDict, total=False):
    """What a transfer is about: its file and share, its local path, its size (the keyword
    arguments of :meth:`~platypush_ext.gett.plugin.GettPlugin._new_transfer`)."""

    filename: str | None
    sharename: str | None
    fileid: str | None
    path: str | None
    bytes_total: int | None


class TransferOutcome(TypedDict, total=False):
    """How a transfer run in a thread of its own ended: its error, or its result."""

    error: BaseException
    result: JSONObject


def safe_file_name(name: object, fallback: str) -> str:
    """A file name from the server made safe as one entry of the target folder: its last
    component only, without control characters, at most 240 bytes (room for ``thumb-``; ``fallback``
    if nothing is left)."""
    text = os.path.basename(str(name).replace("\\", "/"))
    text = "".join(ch if ch.isprintable() else "_" for ch in text).strip()
    text = text.encode("utf-8")[:240].decode("utf-8", errors="ignore")
    return fallback if text in ("", ".", "..") else text


def publish(tmp: str, destination: str, overwrite: bool) -> None:
    """Move the complete temporary file into place; without ``overwrite``, never over an existing file."""
    if overwrite:
        os.replace(tmp, destination)
        return
    try:
        os.link(tmp, destination)  # atomic: fails if the destination appeared meanwhile
    except FileExistsError:
        check_new_file(destination, overwrite)
    except OSError:  # a file system without hard links: the check before the download is the guard
        check_new_file(destination, overwrite)
        os.replace(tmp, destination)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def partial_file(destination: str, overwrite: bool) -> Iterator[BinaryIO]:
    """A temporary file next to ``destination`` to write into, moved into place (:func:`publish`)
    when the block ends without an error, removed in any case.

    :param destination: the final path.
    :param overwrite: whether an existing file there may be replaced.
    :raises GettError: the temporary file cannot be created (before the block runs) or written.
    """
    folder = os.path.dirname(destination)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(destination)[:100]}.", suffix=".part")
    except OSError as exc:
        raise GettError(f"cannot write into {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        publish(tmp, destination, overwrite)
    except OSError as exc:  # the disk is full, the destination is a folder… (requests' errors are converted)
        raise GettError(f"cannot write {destination}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def open_source(path: str | None, data: bytes | None) -> Iterator[tuple[BinaryIO, int]]:
    """What an upload sends: the file at ``path`` (opened here), else ``data``; with its size."""
    if path is not None:
        with open(path, "rb") as f:
            yield f, os.fstat(f.fileno()).st_size
    else:
        assert data is not None
        yield io.BytesIO(data), len(data)


class ProgressReader:
    """A seekable file-like request body that reports progress and can be cancelled.

    ``requests`` takes its length from ``len()`` and ``tell()`` (so it sends a
    ``Content-Length``), and ``HttpClient`` rewinds it with ``seek()`` before a retry.

    :param source: the bytes to send, from its current position.
    :param size: how many.
    :param progress: told of the bytes of ``source`` sent so far.
    :param cancel: set to cancel the upload (:class:`TransferCancelledError` at the next read).
    :param prefix: bytes sent before ``source`` (a multipart part's head).
    :param suffix: bytes sent after it.
    """

    def __init__(
        self,
        source: BinaryIO,
        size: int,
        progress: Progress | None,
        cancel: threading.Event | None,
        prefix: bytes = b"",
        suffix: bytes = b"",
    ):
        self._source, self._size = source, size
        self._prefix, self._suffix = prefix, suffix
        self._progress, self._cancel = progress, cancel
        self._start = source.tell()
        self._pos = 0
        self.len = len(prefix) + size + len(suffix)

    def __len__(self) -> int:
        return self.len

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) != (0, 0):
            self._pos = self.len if whence == 2 else offset  # only used by length probes
        else:
            self._pos = 0
        self._source.seek(self._start + max(0, min(self._pos - len(self._prefix), self._size)))
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if self._cancel is not None and self._cancel.is_set():
            raise TransferCancelledError("the upload was cancelled")
        n = CHUNK_SIZE if not n or n < 0 else max(n, CHUNK_SIZE)  # big reads: fewer calls
        out = b""
        if self._pos < len(self._prefix):
            out = self._prefix[self._pos : self._pos + n]
        body_end = len(self._prefix) + self._size
        if len(out) < n and self._pos + len(out) < body_end:
            out += self._source.read(min(n - len(out), body_end - self._pos - len(out)))
        if len(out) < n and self._pos + len(out) >= body_end:
            at = self._pos + len(out) - body_end
            out += self._suffix[at : at + n - len(out)]
        self._pos += len(out)
        if self._progress is not None and out:
            done = min(max(self._pos - len(self._prefix), 0), self._size)
            self._progress(done, self._size)
        return out
