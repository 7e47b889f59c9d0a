"""Error texts safe to answer and to log: one line, bounded, control characters escaped, an HTML
page reduced to its title; framework-free."""

from __future__ import annotations

import datetime
import re

__all__ = ["MAX_ERROR_LENGTH", "html_title", "iso_time", "one_line"]

#: Longest error text the bundle shows or logs (see :func:`one_line`).
MAX_ERROR_LENGTH = 500

_HTML_RE = re.compile(r"<(?:!doctype|html|head|body|title)\b", re.I)
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
# C0/C1 controls, DEL, line/paragraph separators, the bidirectional marks, embeddings and overrides,
# and lone surrogates (a str holds no other surrogate; escaped, the text is valid Unicode)
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


#: How far into an HTML page its ``<title>`` is looked for.
_TITLE_WINDOW = 8192


def html_title(text: str) -> str | None:
    """The ``<title>`` of an HTML page (looked for in its first 8 KiB), whitespace collapsed
    (``None`` without one)."""
    match = _TITLE_RE.search(text[:_TITLE_WINDOW])
    title = " ".join(match.group(1).split()) if match else ""
    return title or None


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")


def one_line(text: object, limit: int = MAX_ERROR_LENGTH) -> str:
    """``text`` made safe to answer and log: one line of at most ``limit`` characters.

    An HTML page in it (a service's or a proxy's error page) is reduced to its
    title; control characters (CR, LF, NUL, bidirectional overrides…) are
    escaped (``\\n``, ``\\x00``, ``\\u202e``); a longer text keeps its start and
    its end around a note of how much was left out.
    """
    text = str(text)
    html = _HTML_RE.search(text)
    if html:
        title = html_title(text[html.start() : html.start() + 65536])
        text = text[: html.start()].rstrip() + (f" [HTML page: {title}]" if title else " [an HTML page]")
    size, window = len(text), 4 * limit  # no need to escape what will be left out
    if size > 2 * window:
        text = text[:window] + text[-window:]
    text = _CONTROL_RE.sub(_escape, text)
    if len(text) <= limit:
        return text
    note = f" …[{size:,} characters, abbreviated]… "
    head = max(0, limit - len(note)) * 3 // 4
    tail = max(0, limit - len(note) - head)
    return text[:head] + note + (text[-tail:] if tail else "")


def iso_time(timestamp: float) -> str:
    """``timestamp`` (``time.time()``) as an ISO 8601 time in UTC, to the second."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")
