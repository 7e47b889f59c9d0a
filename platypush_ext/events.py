"""Events shared by the plugins of the bundle.

Each plugin with a listener posts its own subclasses (``PushjetConnectedEvent``,
``MbedDisconnectedEvent``, …), so a hook can react to one service or, with
these base classes as ``type``, to any of them. (The base of the events made of
journal entries, and the delivery plumbing, are :mod:`platypush_ext.glue.delivery`'s.)
"""

from __future__ import annotations

from typing import Any, ClassVar

from platypush.message.event import Event, EventMatchResult


class BundleEvent(Event):
    """The base of every event of the bundle: a hook's condition holds only when each of its keys
    holds — plain keys and operators (``$gt``, ``$regex``…) in any order, nested. Platypush 1.3.39
    keeps the match a plain key found when an operator after it fails, so a hook on
    ``path: /3303/0/5700`` and ``value: {$gt: 30}`` fired for 21.5 too
    (``docs/hooks.md``; Platypush's own events still behave so)."""

    #: a base of the events, not one of its own: kept off the web panel's event list
    internal_event: ClassVar[bool] = True

    def matches_condition(self, condition: Any) -> Any:
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

    def __init__(self, *args: Any, base_url: str, **kwargs: Any):
        """
        :param base_url: the service's base URL.
        """
        super().__init__(*args, base_url=base_url, **kwargs)


class ServiceDisconnectedEvent(BundleEvent):
    """A service became unavailable; its listener keeps retrying with backoff."""

    def __init__(self, *args: Any, base_url: str, error: str, **kwargs: Any):
        """
        :param base_url: the service's base URL.
        :param error: what went wrong (never a secret).
        """
        super().__init__(*args, base_url=base_url, error=error, **kwargs)
