"""Platypush glue shared by every plugin of the bundle.

* :func:`action` — Platypush's ``@action`` that validates the arguments against
  the method's signature and type hints, and turns a :class:`ServiceError` into
  a readable error response (one short line, logged once, no traceback, no secret).
"""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import inspect
import json
import logging
import math
import types
import typing
from typing import Callable, Mapping, Protocol, TypeVar, overload

from requests import RequestException

from platypush.plugins import action as platypush_action

from ..core.errors import InvalidArgumentError, ProtocolError, ServiceError
from ..core.text import one_line
from ..core.untrusted import JSON

__all__ = ["action", "check_value"]

F = TypeVar("F", bound=Callable[..., object])

logger = logging.getLogger("platypush_ext")


#: Longest string an action accepts unless its decorator says otherwise (``max_length``).
DEFAULT_MAX_LENGTH = 65_536
#: Most items of a list or an object argument.
MAX_ITEMS = 10_000
#: Integers fit SQLite's (and most services') 64-bit columns.
MAX_INT = 2**63 - 1
_TRUE, _FALSE = frozenset({"true", "yes", "on", "1"}), frozenset({"false", "no", "off", "0"})
_SEQUENCES = (list, tuple, collections.abc.Sequence)
_MAPPINGS = (dict, collections.abc.Mapping)


class _Plugin(Protocol):
    """What :func:`action` uses of the Platypush plugin an action runs on."""

    logger: logging.Logger


#: An action as Platypush wraps it (its call answers a Platypush ``Response``).
Action = Callable[..., object]


@overload
def action(method: F, *, max_length: Mapping[str, int] | None = None) -> Action: ...
@overload
def action(method: None = None, *, max_length: Mapping[str, int] | None = None) -> Callable[[F], Action]: ...
def action(method: F | None = None, *, max_length: Mapping[str, int] | None = None) -> Action | Callable[[F], Action]:
    """Platypush's ``@action``, with arguments validated and errors reported as one plain line.

    Before the method runs, its arguments are checked against its signature and
    type hints (``str``, ``int``, ``float``, ``bool``, ``X | None``, lists and
    mappings of those, ``JSON``): unknown or missing arguments, wrong types,
    integers beyond 64 bits, NaN/infinite numbers, strings longer than
    :data:`DEFAULT_MAX_LENGTH` (or ``max_length[name]``) and containers of more
    than :data:`MAX_ITEMS` items are refused. Booleans accept ``true``/``false``
    and the usual spellings (``"true"``, ``"no"``, ``"1"``, ``0``…), nothing else.
    A string argument given a number or a boolean gets its JSON text back
    (Platypush parses every string argument as JSON: ``"0"`` arrives as ``0``).

    A :class:`~platypush_ext.core.errors.ServiceError` (bad input, service errors,
    unreachable service) or an :class:`OSError` (local files) becomes the
    response's error text, made safe by :func:`~platypush_ext.core.text.one_line`
    and logged as one warning line; anything else is left to Platypush (logged
    with a traceback: a bug). Platypush finds actions by this decorator's
    *name*, so it must stay ``action``; use it bare or as ``@action(max_length=…)``.

    :param method: the action (when the decorator is used bare).
    :param max_length: per-argument string limits (characters).
    """
    if method is None:
        return functools.partial(action, max_length=max_length)
    arguments = _Arguments(method, dict(max_length or {}))

    @functools.wraps(method)
    def run(self: _Plugin, *args: JSON, **kwargs: JSON) -> object:
        try:
            return _readable_output(method(self, **arguments.bind(args, kwargs)))
        except (ServiceError, OSError) as exc:
            # requests' errors are OSErrors too, and quote URLs (secrets in queries): never their text
            text = f"request failed ({type(exc).__name__})" if isinstance(exc, RequestException) else one_line(exc)
            self.logger.warning("%s: %s", method.__name__, text)
            return None, text

    run.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]  # for Platypush's reflection (UI)
    return platypush_action(run)


def _readable_output(output: object) -> object:
    """``output``, unless it is a text that Platypush cannot take: it parses an action's text output
    as JSON (``Response._parse_msg``), and one nested deeper than its parser goes (a device's value
    of 20,000 brackets) raised ``RecursionError`` out of Platypush's action machinery."""
    if isinstance(output, str) and output.lstrip()[:1] in ("[", "{"):
        try:
            json.loads(output)
        except RecursionError:
            raise ProtocolError(
                f"the answer is a text of {len(output):,} characters nested too deeply for Platypush to "
                "return it (its JSON reader gives up): read it with details: true where the action has it"
            ) from None
        except ValueError:
            pass
    return output


class _Arguments:
    """The arguments of one action: binds and validates a call's (see :func:`action`)."""

    def __init__(self, method: Callable[..., object], max_length: dict[str, int]):
        self.method, self.max_length = method, max_length
        params = list(inspect.signature(method).parameters.values())[1:]  # without self
        self.names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        self.required = [p.name for p in params if p.default is p.empty and p.name in self.names]
        self.open = any(p.kind is p.VAR_KEYWORD for p in params)
        self._hints: dict[str, object] | None = None

    def hints(self) -> dict[str, object]:
        if self._hints is None:  # resolved at the first call: the plugin's module is complete by then
            self._hints = typing.get_type_hints(self.method)
        return self._hints

    def bind(self, args: tuple[JSON, ...], kwargs: dict[str, JSON]) -> dict[str, JSON]:
        """The call's arguments by name, validated (booleans normalised)."""
        if len(args) > len(self.names):
            raise InvalidArgumentError(f"{len(args)} positional arguments given, at most {len(self.names)} accepted")
        bound = dict(zip(self.names, args, strict=False))
        unknown = [k for k in kwargs if (k not in self.names and not self.open) or k in bound]
        if unknown:
            shown = ", ".join(_abbreviate(str(k)) for k in unknown[:5]) + (", …" if len(unknown) > 5 else "")
            raise InvalidArgumentError(
                f"unknown or repeated argument(s): {shown} (accepted: {', '.join(self.names) or 'none'})"
            )
        bound.update(kwargs)
        missing = [name for name in self.required if name not in bound]
        if missing:
            raise InvalidArgumentError(f"missing required argument(s): {', '.join(missing)}")
        hints = self.hints()
        for name, value in bound.items():
            if name in hints:
                bound[name] = _check(value, hints[name], name, self.max_length.get(name, DEFAULT_MAX_LENGTH))
        return bound


def _abbreviate(text: str, size: int = 40) -> str:
    return repr(text if len(text) <= size else text[:size] + "…")


def _describe(hint: object) -> str:
    """What a type hint expects, in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in _SEQUENCES:
        return "a list"
    if origin in _MAPPINGS or hint in _MAPPINGS:
        return "an object"
    names: dict[object, str] = {
        str: "a string",
        bool: "true or false",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _got(value: object) -> str:
    """What a value is, in words, without quoting it (it may be huge, or a secret)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return f"the integer {value}" if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"a string of {len(value):,} characters"
    if isinstance(value, (list, tuple, collections.abc.Mapping)):
        kind, unit = ("a list", "item") if isinstance(value, (list, tuple)) else ("an object", "key")
        return f"{kind} of {len(value):,} {unit}{'' if len(value) == 1 else 's'}"
    return type(value).__name__


def _kind_matches(hint: object, value: object) -> bool:
    """Whether ``value`` is of the hint's own kind (no conversion)."""
    origin = typing.get_origin(hint) or hint
    if hint is JSON:
        return True
    if origin in (int, float):
        return isinstance(value, (int, float) if origin is float else int) and not isinstance(value, bool)
    if origin in _SEQUENCES:
        return isinstance(value, (list, tuple))
    if origin in _MAPPINGS:
        return isinstance(value, collections.abc.Mapping)
    return isinstance(origin, type) and isinstance(value, origin)


def _check(value: JSON, hint: object, where: str, limit: int) -> JSON:
    """``value`` if it is what ``hint`` says (a boolean spelling becomes a bool), else :class:`InvalidArgumentError`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        members = sorted(args, key=lambda a: a is bool)  # a string stays a string when it may be one
        for member in members:
            if _kind_matches(member, value):
                return _check(value, member, where, limit)
        for fallback in (m for m in (bool, str) if m in members):  # the conversions below
            with contextlib.suppress(InvalidArgumentError):
                return _check(value, fallback, where, limit)
    elif hint is JSON:
        return _check_any(value, where, limit)
    elif hint is bool:
        if isinstance(value, bool):
            return value
        spelling = value.strip().lower() if isinstance(value, str) else value if value in (0, 1) else None
        if str(spelling) in _TRUE | _FALSE and not isinstance(value, float):
            return str(spelling) in _TRUE
    elif _kind_matches(hint, value):
        return _check_kind(value, hint, where, limit)
    elif hint is str and isinstance(value, (int, float)) and math.isfinite(value) and abs(value) <= MAX_INT:
        return json.dumps(value)  # Platypush reads every string argument as JSON first: "0" arrives as 0
    raise InvalidArgumentError(f"{where}: expected {_describe(hint)}, got {_got(value)}")


def _check_kind(value: JSON, hint: object, where: str, limit: int) -> JSON:
    """Sizes and ranges of a value already of the hint's kind; the items of containers."""
    _check_size(value, where, limit)
    origin, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if origin in _SEQUENCES:
        item = args[0] if args else JSON
        return [_check(v, item, f"{where}[{i}]", limit) for i, v in enumerate(value)]
    if origin in _MAPPINGS:
        key, item = args if len(args) == 2 else (JSON, JSON)
        return {
            _check(k, key, f"{where} key", limit): _check(v, item, f"{where}.{k}"[:80], limit) for k, v in value.items()
        }
    return value


def _check_size(value: object, where: str, limit: int) -> None:
    """String lengths, 64-bit integers, finite numbers, container sizes."""
    if isinstance(value, str) and len(value) > limit:
        raise InvalidArgumentError(f"{where}: at most {limit:,} characters, got {len(value):,}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise InvalidArgumentError(f"{where}: out of range ({_got(value)}; at most {MAX_INT} in absolute value)")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"{where}: expected a finite number, got {value!r}")
    if isinstance(value, (list, tuple, collections.abc.Mapping)) and len(value) > MAX_ITEMS:
        raise InvalidArgumentError(f"{where}: at most {MAX_ITEMS:,} items, got {len(value):,}")


def _check_any(value: JSON, where: str, limit: int, depth: int = 0) -> JSON:
    """Bounds for an argument of any type: string lengths, container sizes and depth."""
    if depth > 32:
        raise InvalidArgumentError(f"{where}: nested more than 32 levels deep")
    _check_size(value, where, limit)
    if isinstance(value, (list, tuple)):
        return [_check_any(v, where, limit, depth + 1) for v in value]
    if isinstance(value, collections.abc.Mapping):
        return {
            _check_any(k, where, limit, depth + 1): _check_any(v, where, limit, depth + 1) for k, v in value.items()
        }
    return value


def check_value(value: JSON, hint: object, where: str, limit: int = DEFAULT_MAX_LENGTH) -> JSON:
    """``value`` checked against ``hint`` as an action's argument is (a boolean spelling such as
    ``"no"`` becomes a bool), for settings a plugin validates itself; else :class:`InvalidArgumentError`
    naming ``where``."""
    return _check(value, hint, where, limit)
