"""Events shared by the plugins of the bundle.

Each plugin with a listener posts its own subclasses (``PushjetConnectedEvent``,
``MbedDisconnectedEvent``, …), so a hook can react to one service or, with
these base classes as ``type``, to any of them. (The base of the events made of
journal entries, and the delivery plumbing, are :mod:`platypush_ext.glue.delivery`'s.)
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from platypush.message.event import Event, EventMatchResult

from .core.untrusted import JSON

if TYPE_CHECKING:
    from platypush.event.hook import EventCondition


class BundleEvent(Event):
    """The base of every event of the bundle: a hook's condition holds only when each of its keys
    holds — plain keys and operators (``$gt``, ``$regex``…) in any order, nested. Platypush 1.3.39
    keeps the match a plain key found when an operator after it fails, so a hook on
    ``path: /3303/0/5700`` and ``value: {$gt: 30}`` fired for 21.5 too
    (``docs/hooks.md``; Platypush's own events still behave so)."""

    #: a base of the events, not one of its own: kept off the web panel's event list
    internal_event: ClassVar[bool] = True

    def matches_condition(self, condition: EventCondition) -> EventMatchResult:
        """Platypush's ``Event.matches_condition`` with its one fix: a key that fails fails the
        match (the one use of Platypush's ``_matches_condition``, ``tests/test_events.py``)."""
        result = EventMatchResult(is_match=False, parsed_args=self.args)
        if not isinstance(self, condition.type):
            return result
        scores: list[float] = []
        holds = self._matches_condition(
            condition=condition.args, event_args=self.args, result=result, match_scores=scores
        )
        result.is_match = bool(holds)
        if holds and scores:
            result.score = sum(scores) / len(scores)
        return result


class ServiceConnectedEvent(BundleEvent):
    """A service is reachable: the listener's first success, or its first after an outage."""

    def __init__(self, *args: JSON, base_url: str, **kwargs: JSON):
        """
        :param base_url: the service's base URL.
        """
        super().__init__(*args, base_url=base_url, **kwargs)


class ServiceDisconnectedEvent(BundleEvent):
    """A service became unavailable; its listener keeps retrying with backoff."""

    def __init__(self, *args: JSON, base_url: str, error: str, **kwargs: JSON):
        """
        :param base_url: the service's base URL.
        :param error: what went wrong (never a secret).
        """
        super().__init__(*args, base_url=base_url, error=error, **kwargs)


class ServiceAuthFailedEvent(BundleEvent):
    """A service refused the plugin's credentials (HTTP 401/403: a revoked or wrong key, a refused
    refresh token): posted once when the refusals start, not at each attempt. It is not an outage:
    the listener retries rarely (``auth_retry_window``, ``auth_retry_interval``) and posts the
    connected event once the credentials work again; ``status`` shows the refusal meanwhile."""

    def __init__(self, *args: JSON, base_url: str, error: str, status: int | None = None, **kwargs: JSON):
        """
        :param base_url: the service's base URL.
        :param error: the refusal in one line, with the server's own sentence (never a secret).
        :param status: the HTTP status of the refusal (401 or 403), if there was one.
        """
        super().__init__(*args, base_url=base_url, error=error, status=status, **kwargs)


def _event_class(dotted: object) -> type | None:
    """The event class a hook's ``type`` names, or ``None`` when it names none."""
    if not isinstance(dotted, str) or "." not in dotted:
        return None
    module, _, name = dotted.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except Exception:  # noqa: BLE001 - a hook's type is the user's text: any import failure means "none"
        return None
    return found if isinstance(found, type) and issubclass(found, Event) else None


def _is_operator(value: object) -> bool:
    return isinstance(value, Mapping) and any(str(key).startswith("$") for key in value)


def pitfall_hooks(hooks: Mapping[str, object]) -> list[str]:
    """The hooks of ``config.yaml`` on events that are not the bundle's whose condition has a plain
    key before an operator: Platypush 1.3.39 fires those whatever the operator says
    (``docs/hooks.md``).

    :param hooks: Platypush's configured event hooks, by name (``Config.get_event_hooks()``).
    """
    found = []
    for name, hook in hooks.items():
        condition = hook.get("if") if isinstance(hook, Mapping) else None
        if not isinstance(condition, Mapping):
            continue  # a @when function, or no condition
        event_class = _event_class(condition.get("type"))
        if event_class is None or issubclass(event_class, BundleEvent):
            continue
        plain_seen = False
        for key, value in condition.items():
            if key == "type":
                continue
            if _is_operator(value) and plain_seen:
                found.append(name)
                break
            plain_seen = plain_seen or not _is_operator(value)
    return found


_pitfalls_logged = threading.Lock()


def log_pitfall_hooks(log: logging.Logger) -> None:
    """Once per process (the first plugin of the bundle to start): one warning per configured hook
    that :func:`pitfall_hooks` finds, naming it."""
    if not _pitfalls_logged.acquire(blocking=False):
        return
    from platypush.config import Config

    for name in pitfall_hooks(Config.get_event_hooks() or {}):
        log.warning(
            "hook %s: Platypush ignores an operator that follows a plain key in a condition on one of its "
            "own events, so it fires whatever the operator says: write each key as an operator "
            "({$eq: ...}); docs/hooks.md",
            name,
        )
