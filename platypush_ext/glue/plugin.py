"""The plugin bases of the bundle: what every plugin shares on Platypush's side.

* :class:`ServicePlugin` — the plugins' common settings, events (connected, disconnected, the
  credentials refused), ``status`` and ``diagnostics`` actions, and stop.
* :class:`ListeningPlugin` — a plugin that reads its service destructively: its ``main()`` is
  the template of every such listener, around the service's :class:`~.delivery.Inbox`.
* :func:`state_path` — where a plugin keeps its local state (Platypush's workdir).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Callable, Mapping, TypeVar

from platypush.config import Config

from ..core.backoff import AuthBackoff
from ..core.bus import Bus
from ..core.errors import AuthError, InvalidArgumentError, ServiceError
from ..core.http import ServiceClient, Timeouts
from ..core.journal import Entry, Journal, JournalOptions
from ..core.listening import Availability
from ..core.retry import RetryChanges
from ..core.transport import Transport
from ..core.untrusted import JSON, JSONObject
from ..events import log_pitfall_hooks
from . import webpanel
from .actions import action
from .delivery import Events, Inbox, Made
from .diagnostics import Diagnostics

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ListeningPlugin", "ServicePlugin", "state_path"]

C = TypeVar("C", bound=ServiceClient)


def state_path(service: str, filename: str) -> str:
    """``<Platypush workdir>/platypush_ext/<service>/<filename>``."""
    return os.path.join(Config.get_workdir(), "platypush_ext", service, filename)


class ServicePlugin(Diagnostics):
    """What every plugin of the bundle shares; a mixin before Platypush's plugin class
    (``class PushjetPlugin(ServicePlugin, RunnablePlugin)``).

    :meth:`_open_client` turns the common settings (``connect_timeout``,
    ``read_timeout``, ``retries``) into the client's :class:`Timeouts` and an
    adjusted copy of its ``DEFAULT_RETRY``, gives it the plugin's :attr:`transport` (TLS,
    proxy: :meth:`_set_transport` before), and lists the plugin in the web panel; :meth:`_track_availability` posts the connected/disconnected events and the
    credentials-refused one; :meth:`stop` closes the client. Every plugin has the
    ``diagnostics`` action (:class:`~.diagnostics.Diagnostics`) and a ``status`` (a service's
    own adds :meth:`_credentials_status`).
    """

    _client: ServiceClient  # a service's plugin narrows it to its client's class
    #: how the client's connections reach the service (TLS, proxy: :meth:`_set_transport`)
    transport: Transport = Transport()
    logger: logging.Logger
    _bus: Bus

    def __init__(self, *args: JSON, auth_retry_window: float = 30, auth_retry_interval: float = 300, **kwargs: JSON):
        """
        :param auth_retry_window: when the service refuses the credentials (401/403: a revoked
            key), the listener makes at most 3 requests in this many seconds (default: 30)...
        :param auth_retry_interval: ...then one about every this many seconds, until they work
            again (default: 300; at least ``auth_retry_window``).
        """
        super().__init__(*args, **kwargs)
        try:
            AuthBackoff(float(auth_retry_window), float(auth_retry_interval))
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                "auth_retry_window and auth_retry_interval must be positive numbers of seconds, the "
                f"interval at least the window (got {auth_retry_window!r}, {auth_retry_interval!r})"
            ) from None
        self._auth_retry = (float(auth_retry_window), float(auth_retry_interval))
        self._availabilities: list[Availability] = []

    def _auth_backoff(self) -> AuthBackoff:
        """A listener's waits after refused credentials (``auth_retry_window``, ``auth_retry_interval``)."""
        return AuthBackoff(*self._auth_retry)

    def _open_client(
        self,
        client_class: type[C],
        *args: object,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
        retry: RetryChanges | None = None,
        **options: object,
    ) -> C:
        """Create the plugin's client (as ``self._client``) from the common settings.

        :param client_class: the service's client class.
        :param args: its positional arguments (base URL, credentials).
        :param connect_timeout: seconds to wait for a connection.
        :param read_timeout: seconds to wait for an answer.
        :param retries: retries of a transient failure.
        :param retry: other changes to the client's default retry policy.
        :param options: the client's other keyword arguments.
        """
        webpanel.register()  # listed in the web panel's Execute tab and Extensions
        log_pitfall_hooks(self.logger)  # once per process
        policy = client_class.DEFAULT_RETRY.replace(**(retry or {})).with_retries(retries)
        timeouts = Timeouts(float(connect_timeout), float(read_timeout))
        make: Callable[..., C] = client_class  # each service's client takes these two besides its own
        self._client = make(*args, timeouts=timeouts, retry=policy, **options)
        self._client.http.use_transport(self.transport)
        self._watch_errors()
        return self._client

    def _set_transport(self, service: str, **settings: object) -> Transport:
        """Check the plugin's transport settings (``verify``, ``client_cert``, ``client_key``, ``proxy``;
        Pushjet's ``username``, ``password``, ``headers`` too) into :attr:`transport`, before
        :meth:`_open_client`: one error naming the plugin.

        :param service: the plugin's name (for the error).
        :param settings: the arguments of :meth:`Transport.checked`, as configured.
        """
        try:
            self.transport = Transport.checked(**settings)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{service}: {exc.message}") from None
        if self.transport.verify is False:
            self.logger.warning("%s: verify is false: the server's TLS certificate is not checked", service)
        return self.transport

    def _track_availability(
        self,
        what: str,
        connected: Callable[..., object] | None,
        disconnected: Callable[..., object] | None,
        auth_failed: Callable[..., object] | None = None,
        **fields: object,
    ) -> Availability:
        """An :class:`Availability` that posts ``connected`` / ``disconnected`` events, and
        ``auth_failed`` when the service starts to refuse the credentials (shown by
        :meth:`_credentials_status` meanwhile).

        :param what: how logs name the service (the client's base URL is appended).
        :param connected: the connected event's class (given ``base_url`` and ``fields``; ``None``: none).
        :param disconnected: the disconnected event's class (given ``error`` too; ``None``: none).
        :param auth_failed: the credentials-refused event's class (given ``error`` and ``status``
            too; ``None``: a refusal is an outage like any other).
        :param fields: further arguments of the events.
        """
        base_url = self._client.base_url

        def post(event: Callable[..., object] | None, **more: object) -> None:
            if event is not None:
                self._bus.post(event(base_url=base_url, **fields, **more))

        def rejected(error: str, exc: ServiceError) -> None:
            post(auth_failed, error=error, status=exc.status)

        availability = Availability(
            f"{what} {base_url}",
            self.logger,
            on_up=lambda: post(connected),
            on_down=lambda error: post(disconnected, error=error),
            on_rejected=rejected if auth_failed is not None else None,
        )
        self._availabilities.append(availability)
        return availability

    def _track_logins(self, what: str, auth_failed: Callable[..., object]) -> Availability:
        """The credentials' state of a plugin without a listener, fed by its client's logins: the
        client calls ``on_login(None)`` after a login and ``on_login(error)`` when one failed; a
        refused one (an :class:`AuthError`) posts ``auth_failed`` once, a later login ends it.

        :param what: how logs name the service (the client's base URL is appended).
        :param auth_failed: the credentials-refused event's class.
        """
        availability = self._track_availability(what, None, None, auth_failed)

        def login(error: ServiceError | None) -> None:
            if error is None:
                availability.ok()
            elif isinstance(error, AuthError):
                availability.failed(error)

        self._client.on_login = login  # type: ignore[attr-defined]
        return availability

    def _credentials_status(self) -> dict[str, dict[str, str] | None]:
        """``{"credentials_rejected": {"since": <ISO time>, "error": ...}}`` while the service refuses
        the credentials (the first refusal that goes on), else ``{"credentials_rejected": None}``."""
        refused = [r for r in (a.rejection() for a in self._availabilities) if r is not None]
        return {"credentials_rejected": min(refused, key=lambda r: r["since"]) if refused else None}

    @action
    def status(self) -> JSONObject:
        """
        The plugin's state.

        :return: e.g. ``{"base_url": "https://api.example.org/", "credentials_rejected": null}``
            (``credentials_rejected``: ``{"since": "2026-12-07T00:10:02+00:00", "error": "POST
            /users/login: HTTP 403: invalid apikey"}`` while the service refuses the credentials)
        """
        return {"base_url": self._client.base_url, **self._credentials_status()}

    def stop(self) -> None:
        """Stop the plugin (Platypush's ``stop``), then close the client."""
        super().stop()  # type: ignore[misc]
        self._client.close()
        self._unwatch_errors()


class ListeningPlugin(ServicePlugin):
    """A plugin that reads its service destructively; a mixin before Platypush's
    ``RunnablePlugin`` (``class PushjetPlugin(ListeningPlugin, RunnablePlugin)``).

    What it reads enters its :class:`~.delivery.Inbox` (:meth:`_open_inbox`, in ``__init__``),
    and :meth:`main` is the template of its listener: wait for a subscriber of Platypush's bus
    (what is read before would only fill the journal), post what a previous run left pending,
    start the listeners, listen until stopped, stop them — whatever ends the run (a stop, an
    error), its listeners end with it. :meth:`stop` has the one order: the listeners released
    at once, Platypush's stop (it waits for ``main``), the client closed, the journal closed
    once no post runs. A service writes only its steps:

    * :meth:`_start_listeners` — start what reads, each in a thread of its own;
    * :meth:`_listen` — what ``main`` does meanwhile (default: wait for the stop);
    * :meth:`_stop_listeners` — stop them;
    * :meth:`_idle` — why there is nothing to listen to (then ``main`` only waits for the stop).
    """

    #: The most seconds a post waits for a subscriber of the bus to take what was read.
    DELIVERY_TIMEOUT = 10.0
    #: Seconds between two log lines while ``main`` waits for the bus to have a subscriber.
    LISTEN_TIMEOUT = 30.0
    #: The most seconds :meth:`stop` waits for the listeners before Platypush's stop.
    RELEASE_TIMEOUT = 0.5

    inbox: Inbox
    #: the current run's deliverer (``None`` before the first run) and what wakes it
    _deliverer: threading.Thread | None = None
    _deliver_wake: threading.Event
    _should_stop: threading.Event
    _stop_timeout: float | None
    wait_stop: Callable[..., bool]

    def _open_inbox(
        self, service: str, to_events: Callable[[Entry], Events], **journal_options: Unpack[JournalOptions]
    ) -> Inbox:
        """Create the plugin's inbox (as ``self.inbox``), journaled in
        ``<workdir>/platypush_ext/<service>/journal.db``.

        :param service: the service's name (its events' ``journal``).
        :param to_events: an entry's events (see :class:`~.delivery.Inbox`).
        :param journal_options: the journal's other options (``keep_posted``, ``grace``).
        """
        path = state_path(service, "journal.db")
        self.inbox = Inbox(service, to_events, lambda: self._bus, path, log=self.logger, **journal_options)
        return self.inbox

    @property
    def journal(self) -> Journal:
        """The delivery journal (opened on first use)."""
        return self.inbox.journal

    def post_pending(self, made: Mapping[int, Made] | None = None) -> int:
        """Post the events of what was read and not delivered yet; returns how many entries were
        delivered (received by a subscriber of the bus; the others stay pending).

        :param made: the events of entries just received, made already.
        """
        return self.inbox.post_pending(self._should_stop, self.DELIVERY_TIMEOUT, made)

    def deliver_soon(self, made: Mapping[int, Made] | None = None) -> None:
        """Have what was just received posted, without waiting for it: a listener's receive path
        never waits for Platypush's bus (while it waited, what the service pushed meanwhile would
        stay unread in the connection, lost when a stop closes it). The run's deliverer posts it;
        without a running listener (an action before ``main`` runs) it is posted here.

        :param made: the events of entries just received, made already.
        """
        if self._deliverer is None:
            self.post_pending(made)
            return  # (after a run, what it could not post waits for the next run's start)
        self.inbox.keep_made(made or {})
        self._deliver_wake.set()

    def _deliver(self, wake: threading.Event, run_over: threading.Event) -> None:
        """The deliverer of a run: posts what the listeners received, each time they wake it (it
        sleeps in between: no wake-up of its own while nothing comes)."""
        while True:
            wake.wait()
            if run_over.is_set():
                return
            wake.clear()
            self.post_pending()

    def main(self) -> None:
        """The listener's run (Platypush's ``RunnablePlugin.main``), the same for every service."""
        idle = self._idle()
        if idle is not None:
            self.logger.info("%s: %s, the listener is idle", self.inbox.service, idle)
            self.wait_stop()
            return
        if not self.inbox.wait_for_bus(self._should_stop, self.LISTEN_TIMEOUT):
            return
        run_over, self._deliver_wake = threading.Event(), threading.Event()
        self._deliverer = threading.Thread(
            target=self._deliver,
            args=(self._deliver_wake, run_over),
            name=f"{self.inbox.service}-deliverer",
            daemon=True,
        )
        try:
            self.post_pending()  # what a previous run read but did not deliver
            self._deliverer.start()
            self._start_listeners()
            self._listen()
        finally:
            self._stop_listeners(min(2.0, float(self._stop_timeout or 5) / 2))  # main ends within Platypush's wait
            run_over.set()  # what the listeners received last waits for the next run's start
            self._deliver_wake.set()

    def stop(self) -> None:
        """Stop the plugin: the listeners first (the service sees them gone before it hands out
        more), then Platypush's stop (it waits for ``main``) and the client, then the journal
        (once no post runs: one still running is closed as after a crash)."""
        self._should_stop.set()  # before the listeners stop: the loops they wake must see it
        self._stop_listeners(self.RELEASE_TIMEOUT)
        super().stop()
        self.inbox.close()

    def _idle(self) -> str | None:
        """Why there is nothing to listen to (logged; ``main`` then waits for the stop), or ``None``."""
        return None

    def _start_listeners(self) -> None:
        """Start reading: each listener in a thread of its own, handing what it reads to
        :attr:`inbox` (``receive``, then :meth:`post_pending`)."""

    def _listen(self) -> None:
        """What ``main`` does while the listeners run (e.g. a poll loop); returns on the stop."""
        self.wait_stop()

    def _stop_listeners(self, timeout: float) -> None:
        """Stop the listeners and wait (at most ``timeout`` seconds) for them. Called when ``main``
        ends and first thing in :meth:`stop` (``should_stop()`` is then true): twice, so safe to repeat.

        :param timeout: seconds.
        """
