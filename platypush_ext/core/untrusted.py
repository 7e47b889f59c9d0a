"""What a server sends is untrusted input, exactly like an action's arguments.

Decoding (:func:`loads`) and field checks (:func:`text`, :func:`integer`, …) that turn any
bad data — text that is not JSON or not UTF-8, nesting deeper than Python can parse, numbers
beyond any integer or not finite (``1e400``, ``NaN``), a field missing or of the wrong type,
a string of megabytes, characters that are not Unicode — into one :class:`ProtocolError`
whose message is one line naming the field, never another exception. Framework-free.

A model reads a server's object through these checks only: nothing of it is passed on
(into an event, an action's answer) without being checked first::

    @classmethod
    def from_json(cls, data: JSON) -> Message:
        data = untrusted.mapping(data, "message")
        return cls(
            text=untrusted.text(untrusted.field(data, "message"), "message"),
            level=untrusted.integer(data.get("level", 3), "level", minimum=1, maximum=5),
        )
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import ProtocolError
from .text import html_title, one_line

__all__ = [
    "JSON",
    "JSONObject",
    "MAX_ITEMS",
    "MAX_TEXT",
    "array",
    "boolean",
    "field",
    "identifier",
    "integer",
    "loads",
    "mapping",
    "number",
    "optional_text",
    "refused",
    "secret",
    "text",
    "url",
]

#: The most characters of one text field (longer: refused). Platypush logs every event whole.
MAX_TEXT = 65_536
#: The most items of one array field.
MAX_ITEMS = 10_000
#: The integers a field may hold (64-bit signed, as every service here stores them).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: How much of a refused value an error message quotes.
EXCERPT = 60
#: The most characters of a credential (a token, a key) or a URL.
MAX_TOKEN = 4096
MAX_URL = 8192
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space (matched whole: fullmatch)
_URL_RE = re.compile(r"https?://[^/?#\s]+(?:[/?#][\x21-\x7e]*)?", re.IGNORECASE)

T = TypeVar("T")

#: A value decoded from JSON (or bound for it: an action's output): checked field by field before
#: use (with the functions below). The one name for "any value" in the bundle.
JSON = Any
#: A JSON object: a service's answer, an action's output, a message's fields.
JSONObject = dict[str, JSON]


def _shown(value: object) -> str:
    """A short, safe quotation of a refused value."""
    try:
        if isinstance(value, (Mapping, list, tuple)):
            return f"a {'JSON object' if isinstance(value, Mapping) else 'JSON array'} of {len(value)} items"
        if isinstance(value, str) and len(value) > EXCERPT:
            return f"a text of {len(value):,} characters"
        return one_line(repr(value), EXCERPT)
    except Exception:  # noqa: BLE001 - e.g. an int too large to print: never fail while refusing
        return f"a {type(value).__name__}"


def refused(name: str, why: str, value: object = ...) -> ProtocolError:
    """The error for a refused field: ``<name>: <why> (got <value>)``, one line.

    :param name: the field (e.g. ``notifications[2].max-age``).
    :param why: what it should be.
    :param value: what came (omitted when not given).
    """
    got = "" if value is ... else f" (got {_shown(value)})"
    return ProtocolError(one_line(f"{name}: {why}{got}"))


def loads(data: str | bytes | bytearray, what: str = "the answer") -> JSON:
    """Decode a JSON text from a server.

    Numbers too large for a float come as infinities, ``NaN`` as NaN: the field checks refuse
    them where they matter, so that one bad field drops its element, not its whole message.

    :param data: the text (bytes: UTF-8).
    :param what: what it is, for the error (``"GET /message"``, ``"a WebSocket frame"``).
    :raises ProtocolError: not UTF-8, empty, not JSON, nested too deep for the parser, or an
        integer of more than 4,300 digits.
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(one_line(f"{what} is not UTF-8 text (byte {exc.start})")) from None
    if not isinstance(data, str):
        raise refused(what, "expected a JSON text", data)
    try:
        return json.loads(data)
    except RecursionError:
        raise ProtocolError(one_line(f"{what} is nested too deeply to be read ({len(data):,} characters)")) from None
    except ValueError as exc:  # JSONDecodeError, or an integer beyond Python's digit limit
        position = getattr(exc, "pos", None)
        where = f" at character {position:,}" if isinstance(position, int) else ""
        raise ProtocolError(one_line(f"{what} is not JSON{where} ({_start(data)!r})")) from None


def received(data: bytes | bytearray | str) -> str:
    """What was read, as a journal keeps it: its text, where bytes that are not UTF-8 stay as they
    were (``surrogateescape``), so that :func:`loads_received` finds them again and refuses it.

    :param data: what the transport carried (text is kept as it is).
    """
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("utf-8", "surrogateescape")
    return data


def loads_received(text: str, what: str = "the received text") -> JSON:
    """Decode a JSON text kept by :func:`received` (its bytes as received: not UTF-8 is refused).

    :param text: the kept text (a caller's own text with a lone surrogate is decoded as text).
    :param what: what it is, for the error.
    :raises ProtocolError: as :func:`loads`.
    """
    try:
        data: bytes | str = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text
    return loads(data, what)


def _start(text: str) -> str:
    """How a text that is not JSON begins: its first characters, or an HTML page's title."""
    start = text.lstrip()[:EXCERPT]
    title = html_title(text) if start.startswith("<") else None
    return f"[HTML page: {title}]" if title else start


def field(data: Mapping[str, JSON], key: str, name: str | None = None) -> JSON:
    """``data[key]``, or :class:`ProtocolError` when it is missing.

    :param data: a checked :func:`mapping`.
    :param key: the key.
    :param name: the field's name in the error (default: ``key``).
    """
    try:
        return data[key]
    except KeyError:
        raise refused(name or key, "missing") from None


def mapping(value: JSON, name: str) -> Mapping[str, JSON]:
    """A JSON object.

    :param value: what came.
    :param name: the field's name in the error.
    """
    if not isinstance(value, Mapping):
        raise refused(name, "expected a JSON object", value)
    return value


def array(value: JSON, name: str, limit: int = MAX_ITEMS) -> list[JSON]:
    """A JSON array of at most ``limit`` items.

    :param value: what came.
    :param name: the field's name in the error.
    :param limit: the most items.
    """
    if not isinstance(value, list):
        raise refused(name, "expected a JSON array", value)
    if len(value) > limit:
        raise refused(name, f"more than {limit:,} items ({len(value):,})")
    return value


def text(value: JSON, name: str, *, limit: int = MAX_TEXT, empty: bool = True, quote: bool = True) -> str:
    """A string of at most ``limit`` characters, valid Unicode (no lone surrogate).

    :param value: what came.
    :param name: the field's name in the error.
    :param limit: the most characters.
    :param empty: whether ``""`` is allowed.
    :param quote: whether the error may quote the value (not a secret's).
    """
    if not isinstance(value, str):
        raise refused(name, "expected a string", value if quote else ...)
    if len(value) > limit:
        raise refused(name, f"longer than {limit:,} characters ({len(value):,})")
    if not value and not empty:
        raise refused(name, "empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise refused(name, f"not valid Unicode (a lone surrogate at character {exc.start})") from None
    return value


def optional_text(value: JSON, name: str, *, limit: int = MAX_TEXT) -> str | None:
    """:func:`text`, where ``null`` and ``""`` mean none (``None``).

    :param value: what came.
    :param name: the field's name in the error.
    :param limit: the most characters.
    """
    if value is None or value == "":
        return None
    return text(value, name, limit=limit)


def integer(
    value: JSON,
    name: str,
    *,
    minimum: int = INT_MIN,
    maximum: int = INT_MAX,
    strings: bool = False,
) -> int:
    """A whole number within ``[minimum, maximum]``; a float only when finite and whole
    (``30.0``); a string of digits only with ``strings``; never a boolean.

    :param value: what came.
    :param name: the field's name in the error.
    :param minimum: the smallest allowed.
    :param maximum: the largest allowed.
    :param strings: accept a decimal string (``"3600"``), as some services send numbers.
    """
    number_ = value
    if isinstance(value, str) and strings:
        stripped = value.strip()
        if not stripped or len(stripped) > 20 or not stripped.lstrip("+-").isdigit() or not stripped.isascii():
            raise refused(name, "expected a whole number", value)
        number_ = int(stripped)
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise refused(name, "expected a whole, finite number", value)
        number_ = int(value)
    elif isinstance(value, bool) or not isinstance(value, int):
        raise refused(name, "expected a whole number", value)
    if not minimum <= number_ <= maximum:
        raise refused(name, f"out of range [{minimum}, {maximum}]", value)
    return int(number_)


def number(value: JSON, name: str) -> int | float:
    """A finite number (integers within 64 bits), never a boolean.

    :param value: what came.
    :param name: the field's name in the error.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise refused(name, "expected a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise refused(name, "expected a finite number", value)
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        raise refused(name, "a number beyond 64 bits", value)
    return value


def boolean(value: JSON, name: str, *, strings: bool = True) -> bool:
    """``true`` or ``false`` (with ``strings``, also ``"true"`` / ``"false"`` in any case).

    :param value: what came.
    :param name: the field's name in the error.
    :param strings: accept the strings.
    """
    if isinstance(value, bool):
        return value
    if strings and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise refused(name, "expected true or false", value)


def identifier(value: JSON, name: str, check: Callable[[str], T], what: str) -> T:
    """A value that later calls send back as an argument (a share name, a device id, an endpoint
    name): a non-empty :func:`text` that also passes the action's own argument ``check``.

    :param value: what came.
    :param name: the field's name in the error.
    :param check: the argument check (returns the value, maybe normalised; raises ``ValueError``).
    :param what: what it should be, for the error (``"letters and digits, e.g. '4dsfd'"``).
    """
    text(value, name, empty=False)
    try:
        return check(value)
    except ValueError:  # InvalidArgumentError is one
        raise refused(name, f"expected {what}", value) from None


def secret(value: JSON, name: str, *, check: Callable[[str], object] | None = None, limit: int = MAX_TOKEN) -> str:
    """A credential (a token, a key): printable ASCII without spaces, at most ``limit`` characters,
    passing ``check`` if given. Never quoted in the error.

    :param value: what came.
    :param name: the field's name in the error.
    :param check: a further check of its form (raises ``ValueError``).
    :param limit: the most characters.
    """
    if not isinstance(value, str) or not value:
        raise refused(name, "expected a non-empty string", value if not isinstance(value, str) else ...)
    if len(value) > limit or not _TOKEN_RE.fullmatch(value):
        raise refused(name, f"expected up to {limit:,} printable ASCII characters without spaces")
    if check is not None:
        try:
            check(value)
        except ValueError:
            raise refused(name, "not of the service's form") from None
    return value


def url(value: JSON, name: str, *, secret: bool = False) -> str:
    """An ``http://`` or ``https://`` URL of at most 8,192 printable ASCII characters (a signed one:
    ``secret``, never quoted in the error).

    :param value: what came.
    :param name: the field's name in the error.
    :param secret: whether it grants access (a signed upload URL).
    """
    if not isinstance(value, str) or len(value) > MAX_URL or not value.isascii() or not _URL_RE.fullmatch(value):
        if secret and isinstance(value, str):
            raise refused(name, "expected an http(s) URL")
        raise refused(name, "expected an http(s) URL", value)
    return value
