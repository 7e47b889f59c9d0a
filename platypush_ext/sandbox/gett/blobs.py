"""The blob host of the Ge.tt sandbox: signed uploads (a raw ``PUT`` or a multipart ``POST``, field
``Filedata``) and signed downloads and thumbnails, streamed to and from temporary files, never held
in memory; ``POST /_sandbox/cut`` resets the next transfer of a direction after N bytes."""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import BinaryIO, Protocol
from urllib.parse import quote

from ..core import Request, Response, SandboxServer, json_response, reset_connection, text_response
from .records import File, GettFailure, error_answer, same

CHUNK = 1 << 20


class BlobStore(Protocol):
    """What the blob host needs of the API server whose files it holds."""

    blob_dir: str

    @property
    def lock(self) -> threading.RLock: ...

    def find_file(self, sharename: str, fileid: str) -> File: ...

    def check_storage(self, file: File, new_size: int) -> None: ...


class GettBlobServer(SandboxServer):
    """The blob host: signed uploads and downloads, streamed through temporary files."""

    name = "gett-blobs"
    default_port = 0
    api_prefix = "/"

    def __init__(self, api: BlobStore, host: str = "127.0.0.1", port: int = 0, content_encoding: str | None = None):
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
        return error_answer(404, "not found")

    def method_not_allowed(self, request: Request) -> Response:
        return error_answer(405, "method not allowed")

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
            return error_answer(400, str(exc))
        return json_response({"armed": spec})

    # -- uploads -------------------------------------------------------------

    def _file_for_upload(self, request: Request) -> File:
        sig = request.query.get("sig", "")
        with self.api.lock:
            file = self.api.find_file(request.params["sharename"], request.params["fileid"])
            if not sig or not any(same(sig, s) for s in file.upload_sigs):
                raise GettFailure(403, "invalid signature")
            return file

    def _receive(self, request: Request, file: File, chunks: Iterator[bytes]) -> Response:
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
            return error_answer(400, "upload interrupted")
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

    def _signed_file(self, request: Request) -> tuple[File, str]:
        """The uploaded file a signed blob URL names, and its blob's path (403 for a bad signature,
        404 if not uploaded); call with ``self.api.lock`` held."""
        file = self.api.find_file(request.params["sharename"], request.params["fileid"])
        if not same(request.query.get("sig", ""), file.download_sig):
            raise GettFailure(403, "invalid signature")
        if file.path is None:
            raise GettFailure(404, "file not uploaded")
        return file, file.path

    def _download(self, request: Request) -> Response:
        with self.api.lock:
            file, path = self._signed_file(request)
            handle = open(path, "rb")  # noqa: SIM115 - closed by _stream; stays readable if replaced
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(os.fstat(handle.fileno()).st_size),  # the blob's own size, as a blob host knows it
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(file.filename)}",
        }
        return Response(200, self._stream(request, handle), self._encoded(headers))

    def _encoded(self, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with the configured ``Content-Encoding`` (the body stays the stored bytes)."""
        return {**headers, "Content-Encoding": self.content_encoding} if self.content_encoding else headers

    def _stream(self, request: Request, handle: BinaryIO) -> Iterator[bytes]:
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
            _, path = self._signed_file(request)
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
