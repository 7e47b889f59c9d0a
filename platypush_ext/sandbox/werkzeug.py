"""What a Flask service (Werkzeug 1.0) makes of a request's parameters, and the second line of its
error pages: shared by the sandboxes of Flask services (see :attr:`.core.SandboxServer.werkzeug_routing`)."""

from __future__ import annotations

import email.parser
import email.policy
from typing import Iterable
from urllib.parse import parse_qsl

#: The second line of Werkzeug's (1.0) error pages, by status.
WERKZEUG_DESCRIPTIONS = {
    400: "The browser (or proxy) sent a request that this server could not understand.",
    404: "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again.",
    405: "The method is not allowed for the requested URL.",
    413: "The data value transmitted exceeds the capacity limit.",
    429: "This user has exceeded an allotted request count. Try again later.",
    500: "The server encountered an internal error and was unable to complete your request. Either the server is "
    "overloaded or there is an error in the application.",
    502: "The proxy server received an invalid response from an upstream server.",
    503: "The server is temporarily unable to service your request due to maintenance downtime or capacity "
    "problems. Please try again later.",
    504: "The connection to an upstream server timed out.",
}


def _mimetype(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, without parameters (Werkzeug 1.0 compares it case-sensitively)."""
    return content_type.split(";", 1)[0].strip()


def multipart_fields(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields (not the files) of a ``multipart/form-data`` body, as Werkzeug reads them: parts
    with a ``filename`` are files, a part is decoded by its own ``charset`` (else UTF-8); a body
    without a boundary, with anything but blank lines before its first boundary, or that does not
    parse, has none.

    :param content_type: the request's ``Content-Type`` (with its ``boundary``).
    :param body: the request body.
    """
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body
    )
    boundary = message.get_boundary()
    first = next((line.strip() for line in body.splitlines() if line.strip()), b"")
    if not message.is_multipart() or boundary is None or message.defects or first != b"--" + boundary.encode():
        return []
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_param("filename", header="content-disposition") is not None:
            continue
        payload = part.get_payload(decode=True)
        payload = payload if isinstance(payload, bytes) else b""
        try:
            text = payload.decode(part.get_content_charset() or "utf-8", "replace")
        except LookupError:  # an unknown charset
            text = payload.decode("utf-8", "replace")
        fields.append((name, text))
    return fields


def pick(pairs: Iterable[tuple[str, str]], first: bool) -> dict[str, str]:
    """One value per name: the first or the last one given."""
    picked: dict[str, str] = {}
    for name, value in pairs:
        if not first or name not in picked:
            picked[name] = value
    return picked


def form_pairs(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields of a form body, in order: ``application/x-www-form-urlencoded`` or ``multipart/form-data``
    (the media type compared without its parameters, case-sensitively, as Werkzeug 1.0 does); any other body has none.

    :param content_type: the request's ``Content-Type``.
    :param body: the request body.
    """
    if _mimetype(content_type) == "application/x-www-form-urlencoded":
        return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    if _mimetype(content_type) == "multipart/form-data":
        return multipart_fields(content_type, body)
    return []
