"""The ``diagnostics`` action of every plugin: what a bug report needs, without a secret.

* :class:`Diagnostics` — a mixin of :class:`~platypush_ext.glue.plugin.ServicePlugin`: it keeps the
  settings the plugin was created with and its recent errors, and answers ``<plugin>.diagnostics``;
* :class:`RecentErrors` — the last 20 warnings and errors of a plugin (its log lines at warning
  and above, its client's failed exchanges), one line each;
* :func:`masked` — settings with every secret replaced by ``***``.

The report: versions (the bundle, Platypush, Python, requests, redis), the settings (masked), the
base URL, the time, endpoint and status of the client's last exchange (recorded by
:class:`~platypush_ext.core.http.Exchanges`), the plugin's ``status`` (channel or listener state,
journal or outbox counts, refused credentials), and the recent errors. Every text of it is passed
through the client's redactor last, so that a secret the client learnt (a token, a service's
secret key) is masked wherever it shows.
"""

from __future__ import annotations

import inspect
import logging
import platform
import time
from collections import deque
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..core.redaction import MASK
from ..core.text import iso_time, one_line
from ..core.untrusted import JSON, JSONObject
from .actions import action

if TYPE_CHECKING:
    from ..core.http import ServiceClient

__all__ = ["Diagnostics", "RecentErrors", "masked", "versions"]

D = TypeVar("D", bound="Diagnostics")

#: Parts of a setting's name that make its value a secret (``api_key``, ``password``, ``headers``…).
SECRET_WORDS = ("key", "secret", "password", "passwd", "token", "credential", "header", "cookie", "authorization")
#: Last words of a setting's name that make its value a secret (``basic_auth``; not ``auth_retry_window``).
SECRET_ENDINGS = ("auth",)
#: The distributions whose versions the report gives (the bundle's, then its stack).
DISTRIBUTIONS = {"platypush_ext": "platypush-ext", "platypush": "platypush", "requests": "requests", "redis": "redis"}


def versions() -> dict[str, str | None]:
    """The installed versions of the bundle and its stack (``None`` for one not installed)."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    found = {key: version(name) for key, name in DISTRIBUTIONS.items()}
    return {**found, "python": platform.python_version()}


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS) or lowered.replace("-", "_").rsplit("_")[-1] in SECRET_ENDINGS


def masked(value: JSON, redact: Callable[[object], str], name: str = "") -> JSON:
    """``value`` (settings: JSON-like) as a report may show it: the value of every setting whose
    name says it is a secret (:data:`SECRET_WORDS`) replaced by ``***`` (a mapping's keys are kept,
    its values masked), a URL's password masked (``proxy: http://user:***@host:3128``), every other
    text passed through ``redact`` (a secret known to the client masked wherever it shows), any
    other object shown as its redacted ``repr``.

    :param value: the settings, or a part of them.
    :param redact: the client's redaction of a text.
    :param name: the setting's name (its key in the mapping that holds it).
    """
    if _secret_name(name) and value not in (None, "", [], {}):
        return {str(k): MASK for k in value} if isinstance(value, Mapping) else MASK
    if isinstance(value, Mapping):
        return {redact(k): masked(v, redact, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [masked(v, redact, name) for v in value]
    if isinstance(value, str):
        return redact(_without_password(value))
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(repr(value))


def _without_password(text: str) -> str:
    """A URL's password (``http://user:password@proxy:3128``) masked; any other text as it is."""
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{password}@", f":{MASK}@", 1)))


def _settings_of(cls: type, args: tuple[JSON, ...], kwargs: JSONObject) -> JSONObject:
    """The constructor's arguments by name (those given, not the defaults), ``**kwargs`` flattened."""
    init: Callable[..., None] = getattr(cls, "__init__")  # noqa: B009 - the class's, looked up as Python does
    try:
        bound = inspect.signature(init).bind_partial(None, *args, **kwargs)
    except (TypeError, ValueError):
        return dict(kwargs)
    settings: JSONObject = {}
    for index, (name, value) in enumerate(bound.arguments.items()):
        if index == 0:
            continue  # self
        parameter = bound.signature.parameters[name]
        if parameter.kind is parameter.VAR_KEYWORD:
            settings.update(value)
        elif parameter.kind is not parameter.VAR_POSITIONAL:
            settings[name] = value
    return settings


class RecentErrors(logging.Handler):
    """The last ``size`` errors of a plugin, one line each (``<ISO time> <text>``): the records of
    the loggers it is attached to at warning and above, and what :meth:`add` is given (the client's
    failed exchanges).

    :param size: how many are kept (the oldest go first).
    """

    def __init__(self, size: int = 20):
        super().__init__(logging.WARNING)
        self.lines: deque[str] = deque(maxlen=size)

    def add(self, text: str, at: float | None = None) -> None:
        """Keep one error.

        :param text: what went wrong (made one line).
        :param at: when (``time.time()``; default: now).
        """
        self.lines.append(f"{iso_time(time.time() if at is None else at)} {one_line(text, 300)}")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call: its template is still worth a line
            text = str(record.msg)
        self.add(f"{record.levelname.lower()}: {text}", record.created)


class Diagnostics:
    """The ``diagnostics`` action (a mixin of every plugin, through ``ServicePlugin``): the plugin
    keeps the settings it was created with (:meth:`__new__`) and, once :meth:`_watch_errors` ran,
    its recent errors."""

    _client: ServiceClient
    logger: logging.Logger
    status: Callable[[], object]  # an action: its call answers a Platypush ``Response``
    _settings: JSONObject
    _recent_errors: RecentErrors
    _watched: tuple[logging.Logger, ...] = ()

    def __new__(cls: type[D], *args: JSON, **kwargs: JSON) -> D:
        parent = super().__new__
        plugin = parent(cls) if parent is object.__new__ else parent(cls, *args, **kwargs)
        plugin._settings = _settings_of(cls, args, kwargs)
        return plugin

    @property
    def _service(self) -> str:
        """The plugin's name (``mbed``): its package's."""
        return type(self).__module__.split(".")[1]

    def _watch_errors(self) -> None:
        """Keep the plugin's recent errors: its logger's and its service's module loggers' warnings
        and errors, and its client's failed exchanges (call once the client exists)."""
        self._recent_errors = RecentErrors()
        self._watched = (self.logger, logging.getLogger(f"platypush_ext.{self._service}"))
        for logger in self._watched:
            logger.addHandler(self._recent_errors)
        self._client.http.exchanges.on_failure = self._recent_errors.add

    def _unwatch_errors(self) -> None:
        """Detach the handler of :meth:`_watch_errors` (when the plugin stops)."""
        for logger in self._watched:
            logger.removeHandler(self._recent_errors)

    def _diagnostic_state(self) -> JSON:
        """The plugin's ``status`` (its error, if it fails)."""
        response = self.status()
        errors = [e for e in getattr(response, "errors", None) or [] if e]
        return {"error": "; ".join(map(str, errors))} if errors else getattr(response, "output", response)

    @action
    def diagnostics(self) -> JSONObject:
        """
        What the plugin knows, for a bug report: versions (the bundle, Platypush, Python,
        requests, redis), its settings with every secret replaced by ``***``, the base URL,
        the time, endpoint and status of the last exchange with the service, its ``status``
        (channel or listener state, journal or outbox counts, refused credentials) and its
        last 20 errors, one line each. It holds no secret: attach it to the report as it is.

        :return: e.g. ``{"plugin": "mbed", "versions": {"platypush_ext": "0.1.0", "platypush":
            "1.3.39", "requests": "2.32.3", "redis": "5.2.1", "python": "3.11.2"}, "settings":
            {"base_url": "https://api.example.org", "api_key": "***", "channel": "long_poll"},
            "base_url": "https://api.example.org/", "last_exchange": {"at": "2026-12-07T00:10:02+00:00",
            "endpoint": "GET /v2/notification/pull", "status": 401, "error": "GET
            /v2/notification/pull: HTTP 401: Unauthorized"}, "state": {...}, "recent_errors":
            ["2026-12-07T00:10:02+00:00 warning: mbed channel (long_poll) at
            https://api.example.org/ refused the credentials: ..."]}``
        """
        client = self._client
        report = {
            "plugin": self._service,
            "versions": versions(),
            "settings": masked(getattr(self, "_settings", {}), client.redact),
            "base_url": client.http.redactor.url(client.base_url),
            "last_exchange": client.http.exchanges.last,
            "state": self._diagnostic_state(),
            "recent_errors": list(self._recent_errors.lines),
        }
        return _scrubbed(report, client.redact)


def _scrubbed(value: JSON, redact: Callable[[object], str]) -> JSON:
    """``value`` with every text (keys too) passed through ``redact``."""
    if isinstance(value, Mapping):
        return {redact(k) if isinstance(k, str) else k: _scrubbed(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrubbed(v, redact) for v in value]
    return redact(value) if isinstance(value, str) else value
