"""Test support for issue 21: throwaway certificates (``openssl``), an HTTPS reverse proxy with its
own CA and basic auth in front of a sandbox (as nginx in front of a self-hosted Pushjet), and an
HTTP forward proxy (``CONNECT`` and absolute-URI forwarding) that counts what went through it.

Both proxies are small and threaded; every connection is bounded in time (a TLS handshake and a
request head within :data:`HEAD_TIMEOUT`, then at most :data:`IDLE_TIMEOUT` seconds of silence).
Each request goes to its backend with ``Connection: close`` and its answer comes back with it, so
that one connection carries one request (or one WebSocket), which keeps the piping simple.
"""

from __future__ import annotations

import base64
import contextlib
import selectors
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

HEAD_TIMEOUT = 5.0
IDLE_TIMEOUT = 60.0
MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Certs:
    """PEM files of a throwaway CA, a server certificate it signed (``127.0.0.1`` and ``localhost``),
    a client certificate it signed, a self-signed certificate nobody trusts, and a self-signed one
    whose key is protected by a passphrase."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    self_signed_cert: str
    self_signed_key: str
    encrypted_cert: str
    encrypted_key: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _issue(folder: Path, name: str, subject: str, extensions: str) -> None:
    """``<name>.pem`` / ``<name>.key`` signed by the CA in ``folder``."""
    (folder / f"{name}.ext").write_text(extensions)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=folder)
    _openssl(
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"),
        *("-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext"),
        cwd=folder,
    )


def make_certs(folder: Path) -> Certs:
    """Generate :class:`Certs` in ``folder`` (a test's temporary folder: never committed)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    _openssl(
        "req",
        "-x509",
        *key,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Test CA",
        *ca,
        cwd=folder,
    )
    server = "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    _issue(folder, "server", "/CN=127.0.0.1", server)
    _issue(folder, "client", "/CN=platypush", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    alt = ["-addext", "subjectAltName=IP:127.0.0.1"]
    _openssl(
        "req",
        "-x509",
        *key,
        "-keyout",
        "self.key",
        "-out",
        "self.pem",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        *alt,
        cwd=folder,
    )
    encrypted = ["-keyout", "encrypted.key", "-out", "encrypted.pem", "-passout", "pass:passphrase-0f-the-test"]
    _openssl("req", "-x509", *key[:-1], *encrypted, "-days", "2", "-subj", "/CN=127.0.0.1", cwd=folder)
    names = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "self.pem", "self.key")
    return Certs(*(str(folder / name) for name in (*names, "encrypted.pem", "encrypted.key")))


def _read_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The head of a request or answer (up to the empty line) and what came after it; ``None`` when
    the peer closed first, or it is too large or too slow."""
    data, deadline = b"", time.monotonic() + HEAD_TIMEOUT
    while b"\r\n\r\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or len(data) > MAX_HEAD:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def _header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode("latin-1")
    return None


def _with_close(head: bytes, first_line: bytes | None = None) -> bytes:
    """``head`` with its ``Connection`` header replaced by ``close`` (kept for an upgrade)."""
    lines = head[:-4].split(b"\r\n")
    if first_line is not None:
        lines[0] = first_line
    if (_header(head, "Upgrade") or "").lower() == "websocket" or lines[0].split(b" ")[1:2] == [b"101"]:
        return b"\r\n".join(lines) + b"\r\n\r\n"
    kept = [line for line in lines[1:] if not line.lower().startswith((b"connection:", b"proxy-connection:"))]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n"


def _recv(sock: socket.socket) -> bytes:
    try:
        data = sock.recv(65536)
    except (BlockingIOError, ssl.SSLWantReadError):
        return b"?"  # nothing yet (a TLS record not complete)
    except OSError:
        return b""
    while isinstance(sock, ssl.SSLSocket) and sock.pending():
        data += sock.recv(sock.pending())
    return data


def _pipe(client: socket.socket, backend: socket.socket, answer_head: bool) -> None:
    """Copy both ways until one side closes (or :data:`IDLE_TIMEOUT` of silence); with ``answer_head``
    the backend's answer head gets ``Connection: close``."""
    pending = b""
    with selectors.DefaultSelector() as selector:
        for sock in (client, backend):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while True:
            ready = selector.select(IDLE_TIMEOUT)
            if not ready:
                return
            for key, _ in ready:
                sock = key.fileobj
                data = _recv(sock)  # type: ignore[arg-type]
                if data == b"?":
                    continue
                if not data:
                    if pending:
                        _send(client, pending)
                    return
                if sock is client:
                    _send(backend, data)
                elif answer_head:
                    pending += data
                    if b"\r\n\r\n" in pending:
                        head, rest = pending.split(b"\r\n\r\n", 1)
                        _send(client, _with_close(head + b"\r\n\r\n") + rest)
                        pending, answer_head = b"", False
                else:
                    _send(client, data)


def _send(sock: socket.socket, data: bytes) -> None:
    sock.settimeout(IDLE_TIMEOUT)
    try:
        sock.sendall(data)
    finally:
        sock.setblocking(False)


def _answer(sock: socket.socket, status: str, headers: str = "") -> None:
    with contextlib.suppress(OSError):
        sock.sendall(f"HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())


def _refuse(sock: socket.socket, head: bytes, rest: bytes, status: str, headers: str) -> None:
    """Answer ``status`` once the request's body was read (closing with unread data would reset the
    connection before the client read the answer, where nginx lingers)."""
    left = int(_header(head, "Content-Length") or 0) - len(rest)
    sock.settimeout(HEAD_TIMEOUT)
    with contextlib.suppress(OSError):
        while left > 0:
            chunk = sock.recv(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)
    _answer(sock, status, headers)


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class _Server:
    """A threaded TCP listener on 127.0.0.1; each connection handled by :meth:`handle` in a thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self._stopped = threading.Event()
        self._open: set[socket.socket] = set()
        #: connections accepted
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True, name=type(self).__name__).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with self.lock:
            self._open.add(sock)
        try:
            self.handle(sock)
        except OSError:
            pass
        finally:
            with self.lock:
                self._open.discard(sock)
            sock.close()

    def handle(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stopped.set()
        self.listener.close()
        with self.lock:
            connections = list(self._open)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class TlsReverseProxy(_Server):
    """HTTPS in front of plain-HTTP backends, as nginx publishes a self-hosted server: requests whose
    path starts with a route's prefix go to its backend (the prefix replaced by the backend's path),
    WebSocket upgrades included; with ``auth``, every request needs that basic auth (else ``401``).

    :param certs: its certificate (``server_cert``, signed by ``ca``).
    :param routes: ``{"/api/": "http://127.0.0.1:8081/", "/ws": "http://127.0.0.1:8181/"}``.
    :param auth: ``(username, password)`` required, or ``None``.
    :param client_ca: require a client certificate signed by this CA (mutual TLS).
    :param certificate: ``(cert, key)`` to serve instead (e.g. the self-signed one).
    """

    def __init__(
        self,
        certs: Certs,
        routes: dict[str, str],
        auth: tuple[str, str] | None = None,
        client_ca: str | None = None,
        certificate: tuple[str, str] | None = None,
    ):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(*(certificate or (certs.server_cert, certs.server_key)))
        if client_ca:
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.routes, self.auth = routes, auth
        #: ``(method, path, status)`` of every request: the backend's path, or the refusal's status
        self.requests: list[tuple[str, str, int]] = []
        #: failed TLS handshakes
        self.handshake_failures = 0
        super().__init__()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def handle(self, sock: socket.socket) -> None:
        sock.settimeout(HEAD_TIMEOUT)
        try:
            secure = self.context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.handshake_failures += 1
            return
        with self.lock:
            self._open.add(secure)
        try:
            self._handle(secure)
        finally:
            with self.lock:
                self._open.discard(secure)
            secure.close()

    def _handle(self, secure: ssl.SSLSocket) -> None:
        read = _read_head(secure)
        if read is None:
            return
        head, rest = read
        method, target, version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if self.auth is not None and _header(head, "Authorization") != _basic(*self.auth):
            self._log(method, target, 401)
            _refuse(secure, head, rest, "401 Unauthorized", 'WWW-Authenticate: Basic realm="pushjet"\r\n')
            return
        route = next((prefix for prefix in self.routes if target.startswith(prefix)), None)
        if route is None:
            self._log(method, target, 404)
            _refuse(secure, head, rest, "404 Not Found", "")
            return
        backend = urlsplit(self.routes[route])
        path = backend.path.rstrip("/") + "/" + target[len(route) :].lstrip("/")
        self._log(method, path, 0)
        with socket.create_connection((backend.hostname, backend.port), timeout=HEAD_TIMEOUT) as upstream:
            upstream.sendall(_with_close(head, f"{method} {path} {version}".encode("latin-1")) + rest)
            _pipe(secure, upstream, answer_head=True)

    def _log(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.requests.append((method, path, status))


class ForwardProxy(_Server):
    """An HTTP forward proxy: ``CONNECT host:port`` tunnels (for ``https://`` and ``wss://``) and
    absolute-URI requests (``GET http://host/path``, for ``http://``), each one counted in
    :attr:`requests`; with ``auth``, each needs that ``Proxy-Authorization`` (else ``407``).

    :param auth: ``(username, password)`` required, or ``None``.
    """

    def __init__(self, auth: tuple[str, str] | None = None):
        self.auth = auth
        #: ``(method, target)`` of every request that went through (``CONNECT 127.0.0.1:8443``, ``GET http://…``)
        self.requests: list[tuple[str, str]] = []
        #: requests refused for missing or wrong credentials
        self.refused = 0
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, _ in self.requests if method in (None, m))

    def handle(self, sock: socket.socket) -> None:
        read = _read_head(sock)
        if read is None:
            return
        head, rest = read
        method, target, version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if self.auth is not None and _header(head, "Proxy-Authorization") != _basic(*self.auth):
            with self.lock:
                self.refused += 1
            _refuse(
                sock, head, rest, "407 Proxy Authentication Required", 'Proxy-Authenticate: Basic realm="proxy"\r\n'
            )
            return
        with self.lock:
            self.requests.append((method, target))
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=HEAD_TIMEOUT) as upstream:
                sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                _pipe(sock, upstream, answer_head=False)
            return
        url = urlsplit(target)
        origin = (url.path or "/") + (f"?{url.query}" if url.query else "")
        with socket.create_connection((url.hostname, url.port or 80), timeout=HEAD_TIMEOUT) as upstream:
            upstream.sendall(_with_close(head, f"{method} {origin} {version}".encode("latin-1")) + rest)
            _pipe(sock, upstream, answer_head=True)
