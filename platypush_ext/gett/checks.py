"""Checks of the arguments of Ge.tt's client and actions, before any request: each returns the
value (normalised) or raises :class:`~platypush_ext.core.errors.InvalidArgumentError`."""

from __future__ import annotations

import base64
import os
import re

from ..core.errors import InvalidArgumentError
from ..core.untrusted import JSON

NAME_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
URL_RE = re.compile(r"^https?://[^/]+/")

#: What a share name should be (in the messages of the checks, of arguments and of answers alike).
SHARENAME = "letters and digits, e.g. '4dsfd'"
#: What a file id from the service should be.
FILEID = "letters and digits, e.g. '0' or '2f'"


def check_sharename(sharename: JSON) -> str:
    """A share name (letters and digits), or :class:`InvalidArgumentError`."""
    if not isinstance(sharename, str) or not NAME_RE.fullmatch(sharename):
        raise InvalidArgumentError(f"invalid sharename {sharename!r}: expected {SHARENAME}")
    return sharename


def check_fileid(fileid: JSON) -> str:
    """A file id as a string (an integer is accepted and converted), or :class:`InvalidArgumentError`."""
    if isinstance(fileid, int) and not isinstance(fileid, bool) and fileid >= 0:
        fileid = format(fileid, "d")
    if not isinstance(fileid, str) or not NAME_RE.fullmatch(fileid):
        raise InvalidArgumentError(f"invalid fileid {fileid!r}: expected a string id such as '0' or '2f'")
    return fileid


def check_filename(filename: JSON) -> str:
    """A file's name in a share: not empty, without ``/`` or ``\\``."""
    if not isinstance(filename, str) or not filename.strip() or "/" in filename or "\\" in filename:
        raise InvalidArgumentError(f"invalid filename {filename!r}: expected a non-empty name without '/'")
    return filename


def check_title(title: JSON) -> str | None:
    """A share's title, or ``None``."""
    if title is None:
        return None
    if not isinstance(title, str):
        raise InvalidArgumentError(f"title must be a string, got {title!r}")
    return title


def check_paging(value: JSON, name: str) -> int | None:
    """``skip`` or ``limit`` of a listing: a non-negative integer, or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def check_upload_url(url: JSON, name: str) -> str:
    """A signed upload URL (``name``: ``put_url`` or ``post_url``): an http(s) URL."""
    if not isinstance(url, str) or not URL_RE.match(url):
        raise InvalidArgumentError(f"{name} must be an http(s) URL from create_file or upload_url")
    return url


def _check_path_text(path: JSON) -> None:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InvalidArgumentError(f"path must be a file path, got {path!r}")
    if "\x00" in str(path):
        raise InvalidArgumentError("path must not contain a NUL character")


def check_source_path(path: JSON) -> str:
    """A readable regular file (its absolute path), or :class:`InvalidArgumentError`."""
    _check_path_text(path)
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"no such file: {path}")
    if not os.access(path, os.R_OK):
        raise InvalidArgumentError(f"cannot read {path}: permission denied")
    return path


def check_destination(path: JSON) -> str:
    """A destination path whose folder exists and is writable, or :class:`InvalidArgumentError`."""
    _check_path_text(path)
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InvalidArgumentError(f"cannot write into {folder}: permission denied")
    return path


def check_new_file(path: str, overwrite: bool) -> None:
    """:class:`InvalidArgumentError` if ``path`` exists and may not be replaced."""
    if not overwrite and os.path.lexists(path):
        raise InvalidArgumentError(f"{path} already exists: pass overwrite: true to replace it")


def decode_data(data: JSON, data_format: str = "text") -> bytes:
    """Bytes from ``data`` given as text (UTF-8) or base64, or :class:`InvalidArgumentError`."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if not isinstance(data, str):
        raise InvalidArgumentError(f"data must be a string (text or base64), got {type(data).__name__}")
    if data_format == "text":
        return data.encode("utf-8")
    if data_format == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            raise InvalidArgumentError("data is not valid base64") from None
    raise InvalidArgumentError(f"data_format must be 'text' or 'base64', got {data_format!r}")
