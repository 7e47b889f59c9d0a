"""How a client's connections reach its service: TLS verification, a client certificate, a proxy,
HTTP basic auth and extra headers; framework-free.

One :class:`Transport` holds these settings, checked once (one-line
:class:`~platypush_ext.core.errors.InvalidArgumentError` s), and both kinds of connection take them
from it: the HTTP client (:class:`~platypush_ext.core.http.HttpClient`) and the WebSocket client
(:func:`~platypush_ext.core.wsclient.connect`, through :meth:`Transport.ws_options`).
:func:`tls_failure` and :func:`tls_error_text` tell a refused certificate (or another failed TLS
handshake) from a connection that failed, wherever the failure surfaced.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import unquote, urlsplit

from .errors import InvalidArgumentError
from .redaction import SECRET_NAMES
from .text import one_line
from .untrusted import JSON

__all__ = ["Transport", "check_path", "load_cert_chain", "tls_error_text", "tls_failure"]

#: A header name (RFC 9110 token).
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Header names whose values are masked as secrets besides :data:`SECRET_NAMES` (by a part of the name).
_SECRET_HEADER_RE = re.compile(r"auth|token|key|secret|passw|cookie|session", re.IGNORECASE)


def check_path(value: JSON, name: str, directory: bool = False) -> str:
    """An existing file (or, with ``directory``, folder) named by ``value``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(f"{name} must be the path of a file, got {one_line(repr(value), 80)}")
    path = os.path.expanduser(value)
    if not (os.path.isfile(path) or (directory and os.path.isdir(path))):
        raise InvalidArgumentError(f"{name}: no such file: {one_line(path, 200)}")
    if not os.access(path, os.R_OK):
        raise InvalidArgumentError(f"{name}: cannot read {one_line(path, 200)} (permissions)")
    return path


def load_cert_chain(context: ssl.SSLContext, cert: str, key: str | None, names: str) -> None:
    """Load a certificate and its key into ``context``, or a one-line error naming the settings: a key
    protected by a passphrase is refused, never prompted for (OpenSSL would read one from the terminal).

    :param context: the context.
    :param cert: the certificate (chain) file, its key in it or in ``key``.
    :param key: the key file.
    :param names: the settings, for the error (``client_cert / client_key``).
    """

    def no_passphrase() -> str:
        raise InvalidArgumentError(f"{names}: the key is protected by a passphrase: give a key without one")

    try:
        context.load_cert_chain(cert, key, password=no_passphrase)
    except InvalidArgumentError:
        raise
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = one_line(getattr(exc, "reason", None) or exc, 200)
        raise InvalidArgumentError(f"{names}: cannot load the certificate and its key ({reason})") from None


def _verify(value: JSON) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return check_path(value, "verify (true, false, or the path of a CA bundle)", directory=True)


def _proxy(value: JSON) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = "a value" if not isinstance(value, str) else f"{urlsplit(value).scheme or 'no'} scheme"
        raise InvalidArgumentError(f"proxy must be an http:// or https:// URL such as http://proxy:3128 (got {shown})")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise InvalidArgumentError("proxy: the port is not a number (e.g. http://proxy:3128)") from None
    return value


def _headers(value: JSON) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError("headers must be a mapping of header names to values")
    headers = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise InvalidArgumentError(f"headers: {one_line(repr(name), 60)} is not a header name")
        if not isinstance(text, (str, int, float)) or isinstance(text, bool):
            raise InvalidArgumentError(f"headers.{name} must be a string")
        text = str(text)
        if not text.isprintable():  # a line break would inject headers of its own
            raise InvalidArgumentError(f"headers.{name} must be one line of printable characters")
        headers[name] = text
    return headers


def _credentials(username: JSON, password: JSON) -> tuple[str, str] | None:
    if username is None and password is None:
        return None
    if not isinstance(username, str) or not username or ":" in username or not username.isprintable():
        raise InvalidArgumentError("username must be a non-empty string without ':' (HTTP basic auth)")
    if not isinstance(password, str) or not password.isprintable():
        raise InvalidArgumentError("password must be a string of printable characters (HTTP basic auth, with username)")
    return username, password


@dataclass(frozen=True)
class Transport:
    """How a client's connections reach its service (immutable; build it with :meth:`checked`).

    :ivar verify: check the server's certificate against the system's CAs (``True``), not at
        all (``False``), or against the CA bundle (file or folder) at this path.
    :ivar client_cert: a client certificate (PEM) for mutual TLS.
    :ivar client_key: its private key (PEM), when it is not in ``client_cert``.
    :ivar proxy: an ``http://`` or ``https://`` proxy URL for every connection (``None``: the
        environment's ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, as before).
    :ivar auth: HTTP basic auth ``(username, password)``, on every request and WebSocket handshake.
    :ivar headers: extra headers of every request and WebSocket handshake.
    """

    verify: bool | str = True
    client_cert: str | None = None
    client_key: str | None = None
    proxy: str | None = field(default=None, repr=False)  # (it may hold a password)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def checked(
        cls,
        verify: JSON = True,
        client_cert: JSON = None,
        client_key: JSON = None,
        proxy: JSON = None,
        username: JSON = None,
        password: JSON = None,
        headers: JSON = None,
    ) -> Transport:
        """The settings as a user configured them, each checked (a file that exists, a key that
        matches its certificate, a proxy URL…).

        :raises InvalidArgumentError: one line naming the setting.
        """
        cert = None if client_cert is None else check_path(client_cert, "client_cert")
        key = None if client_key is None else check_path(client_key, "client_key")
        if key is not None and cert is None:
            raise InvalidArgumentError("client_key needs client_cert (the certificate it belongs to)")
        if cert is not None:
            load_cert_chain(ssl.create_default_context(), cert, key, "client_cert / client_key")
        return cls(_verify(verify), cert, key, _proxy(proxy), _credentials(username, password), _headers(headers))

    @property
    def secrets(self) -> list[str]:
        """The values to mask wherever they could appear (password, basic-auth token, proxy password,
        values of secret-looking headers)."""
        values = []
        if self.auth:
            values += [self.auth[1], self.basic_token or ""]
        if self.proxy:
            password = urlsplit(self.proxy).password
            values += [password, unquote(password)] if password else []
        values += [v for k, v in self.headers.items() if k.lower() in SECRET_NAMES or _SECRET_HEADER_RE.search(k)]
        return values

    @property
    def basic_token(self) -> str | None:
        """The ``Authorization: Basic`` credentials (base64), or ``None``."""
        if not self.auth:
            return None
        return base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode("ascii")

    @property
    def cert(self) -> str | tuple[str, str] | None:
        """The client certificate as ``requests`` takes it (``cert``)."""
        if self.client_cert and self.client_key:
            return (self.client_cert, self.client_key)
        return self.client_cert

    def ssl_context(self) -> ssl.SSLContext | None:
        """An :class:`ssl.SSLContext` of these settings, ``None`` for the library's default (verified
        against the system's CAs, no client certificate)."""
        if self.verify is True and not self.client_cert:
            return None
        bundle = self.verify if isinstance(self.verify, str) else None
        is_dir = bundle is not None and os.path.isdir(bundle)
        context = ssl.create_default_context(cafile=None if is_dir else bundle, capath=bundle if is_dir else None)
        if self.verify is False:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def ws_options(self, header: list[str] | None = None) -> dict[str, object]:
        """The options of :func:`~platypush_ext.core.wsclient.connect` (``websocket-client``'s) for a
        WebSocket handshake: TLS, proxy (an ``http://`` one: ``websocket-client`` tunnels through
        plain HTTP ``CONNECT`` only; without ``proxy``, it reads the environment's), basic auth, headers.

        :param header: the caller's own header lines, kept first.
        :raises InvalidArgumentError: the proxy is an ``https://`` one.
        """
        lines = list(header or [])
        if self.auth:
            lines.append(f"Authorization: Basic {self.basic_token}")
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        options: dict[str, object] = {"header": lines} if lines else {}
        context = self.ssl_context()
        if context is not None:
            options["sslopt"] = {"context": context}
        if self.proxy:
            parts = urlsplit(self.proxy)
            if parts.scheme != "http":
                raise InvalidArgumentError(
                    "proxy: a WebSocket connection goes through an http:// proxy only (CONNECT), not https://"
                )
            options.update(http_proxy_host=parts.hostname, http_proxy_port=parts.port or 80, proxy_type="http")
            if parts.username:
                options["http_proxy_auth"] = (unquote(parts.username), unquote(parts.password or ""))
        return options


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The :class:`ssl.SSLError` behind ``exc`` (its causes, contexts and arguments, as ``requests``
    and ``urllib3`` wrap it), or ``None`` when the failure was not TLS."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return None


def tls_error_text(host: str, error: ssl.SSLError) -> str:
    """One line for a failed TLS handshake with ``host``: a refused certificate says so and what
    to do ("…; set `verify` to your CA file"), never "cannot reach".

    :param host: ``host:port`` of the server.
    :param error: what :func:`tls_failure` found.
    """
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or error.reason or "certificate verify failed"
        return f"the certificate of {host} was not trusted: {one_line(reason, 200)}; set `verify` to your CA file"
    reason = one_line(error.reason or error.strerror or type(error).__name__, 200).lower().replace("_", " ")
    hint = ""
    if "certificate" in reason or "alert" in reason or "eof" in reason:
        hint = " (does the server require a client certificate? set `client_cert` and `client_key`)"
    elif "wrong version" in reason or "record layer" in reason:
        hint = " (is it an https:// server? a plain-HTTP one answered)"
    return f"the TLS handshake with {host} failed: {reason}{hint}"
