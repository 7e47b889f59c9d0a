"""What the Ge.tt sandbox keeps (shares, files, tokens), and the error answer of both its hosts."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from ..core import Abort, Response, json_response


class GettFailure(Abort):
    """Aborts a handler with a Ge.tt error body ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(error_answer(status, message), message)
        self.status, self.message = status, message


def same(given: str, expected: str) -> bool:
    """A constant-time comparison of a credential a client sent (any text: ``hmac.compare_digest``
    raises ``TypeError`` for non-ASCII strings) with the expected one."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def error_answer(status: int, message: str) -> Response:
    """Ge.tt's error answer: ``{"error": message}``."""
    return json_response({"error": message}, status)


@dataclass
class File:
    """A file of a share, and its blob once uploaded."""

    sharename: str
    fileid: str
    filename: str
    created: int
    readystate: str = "remote"
    size: int = 0
    downloads: int = 0
    path: str | None = None  # the blob's temporary file, once uploaded
    upload_sigs: set[str] = field(default_factory=set)
    download_sig: str = field(default_factory=lambda: secrets.token_urlsafe(16))


@dataclass
class Share:
    """A share of a user: its files by id, and the next file's number."""

    sharename: str
    owner: str
    created: int
    title: str | None = None
    files: dict[str, File] = field(default_factory=dict)
    next_fileid: int = 0


@dataclass
class Token:
    """An access token's user and expiry (``time.time()``)."""

    userid: str
    expires_at: float
