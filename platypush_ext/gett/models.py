"""What Ge.tt answers, read as untrusted input: every field checked (a bad one is a
:class:`~platypush_ext.core.errors.ProtocolError` that names it, never quoting a secret)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from ..core import untrusted
from ..core.untrusted import JSON, JSONObject
from .checks import FILEID, SHARENAME, check_fileid, check_sharename


def _count(data: Mapping[str, JSON], key: str, where: str) -> int:
    """A non-negative integer field, ``0`` when it is missing (a file not uploaded yet has no size)."""
    return untrusted.integer(data.get(key, 0), f"{where}.{key}", minimum=0)


@dataclass(frozen=True)
class UploadUrls:
    """Signed upload URLs of a file: raw ``PUT`` or multipart ``POST`` (field ``Filedata``)."""

    puturl: str
    posturl: str

    def __repr__(self) -> str:
        return "UploadUrls(<signed URLs hidden>)"  # the signatures grant write access

    @classmethod
    def from_json(cls, data: JSON, where: str = "upload") -> UploadUrls:
        """Read the upload URLs of the service (untrusted: :class:`ProtocolError` for a bad one, never quoted).

        :param data: the object.
        :param where: its name in errors.
        """
        data = untrusted.mapping(data, where)
        return cls(
            puturl=untrusted.url(untrusted.field(data, "puturl", f"{where}.puturl"), f"{where}.puturl", secret=True),
            posturl=untrusted.url(
                untrusted.field(data, "posturl", f"{where}.posturl"), f"{where}.posturl", secret=True
            ),
        )


@dataclass(frozen=True)
class File:
    """A file of a share. ``fileid`` is an opaque string (``"0"``, ``"2f"``)."""

    fileid: str
    filename: str
    sharename: str
    size: int
    downloads: int
    readystate: str
    created: int
    getturl: str | None
    upload: UploadUrls | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: JSON, where: str = "file") -> File:
        """Read a file object of the service (untrusted: each field checked, :class:`ProtocolError`).

        :param data: the object.
        :param where: its name in errors (``files[2]``).
        """
        data = untrusted.mapping(data, where)
        upload = data.get("upload")
        return cls(
            fileid=untrusted.identifier(
                untrusted.field(data, "fileid", f"{where}.fileid"), f"{where}.fileid", check_fileid, FILEID
            ),
            filename=untrusted.text(untrusted.field(data, "filename", f"{where}.filename"), f"{where}.filename"),
            sharename=untrusted.identifier(
                untrusted.field(data, "sharename", f"{where}.sharename"),
                f"{where}.sharename",
                check_sharename,
                SHARENAME,
            ),
            size=_count(data, "size", where),
            downloads=_count(data, "downloads", where),
            readystate=untrusted.text(data.get("readystate", "remote"), f"{where}.readystate", limit=64, empty=False),
            created=_count(data, "created", where),
            getturl=untrusted.optional_text(data.get("getturl"), f"{where}.getturl"),
            upload=UploadUrls.from_json(upload, f"{where}.upload") if upload is not None else None,
        )

    def to_dict(self) -> JSONObject:
        """The file as the actions answer it (without its upload URLs, which are secrets)."""
        data = asdict(self)
        data.pop("upload")
        return data


@dataclass(frozen=True)
class Share:
    """A share: a named container of files with an optional title."""

    sharename: str
    title: str | None
    created: int
    getturl: str | None
    live: bool
    files: list[File]

    @classmethod
    def from_json(cls, data: JSON, where: str = "share") -> Share:
        """Read a share object of the service, with its files (untrusted: each field checked).

        :param data: the object.
        :param where: its name in errors (``shares[0]``).
        """
        data = untrusted.mapping(data, where)
        files = untrusted.array(data.get("files", []), f"{where}.files")
        return cls(
            sharename=untrusted.identifier(
                untrusted.field(data, "sharename", f"{where}.sharename"),
                f"{where}.sharename",
                check_sharename,
                SHARENAME,
            ),
            title=untrusted.optional_text(data.get("title"), f"{where}.title"),
            created=_count(data, "created", where),
            getturl=untrusted.optional_text(data.get("getturl"), f"{where}.getturl"),
            live=untrusted.boolean(data.get("live", False), f"{where}.live"),
            files=[File.from_json(f, f"{where}.files[{i}]") for i, f in enumerate(files)],
        )

    def to_dict(self) -> JSONObject:
        """The share as the actions answer it, with its files."""
        return {**asdict(self), "files": [f.to_dict() for f in self.files]}


@dataclass(frozen=True)
class User:
    """The logged-in user, with storage figures in bytes."""

    userid: str
    fullname: str | None
    email: str | None
    files: int
    downloads: int
    storage_used: int
    storage_limit: int
    storage_extra: int

    @classmethod
    def from_json(cls, data: JSON, where: str = "user") -> User:
        """Read the user object of the service (untrusted: each field checked).

        :param data: the object.
        :param where: its name in errors.
        """
        data = untrusted.mapping(data, where)
        storage = untrusted.mapping(data.get("storage", {}), f"{where}.storage")
        return cls(
            userid=untrusted.text(untrusted.field(data, "userid", f"{where}.userid"), f"{where}.userid", empty=False),
            fullname=untrusted.optional_text(data.get("fullname"), f"{where}.fullname"),
            email=untrusted.optional_text(data.get("email"), f"{where}.email"),
            files=_count(data, "files", where),
            downloads=_count(data, "downloads", where),
            storage_used=_count(storage, "used", f"{where}.storage"),
            storage_limit=_count(storage, "limit", f"{where}.storage"),
            storage_extra=_count(storage, "extra", f"{where}.storage"),
        )

    def to_dict(self) -> JSONObject:
        """The user as the actions answer it."""
        return asdict(self)


@dataclass(frozen=True)
class Login:
    """What a login answers: the tokens (secrets), their lifetime in seconds, the user."""

    access: str
    refresh: str | None = field(repr=False)
    lifetime: float
    user: User

    @classmethod
    def from_json(cls, data: JSON) -> Login:
        """Read a login answer (untrusted: every field checked before anything of it is kept).

        :param data: the answer.
        """
        data = untrusted.mapping(data, "the answer")
        refresh = data.get("refreshtoken")
        expires = data.get("expires", 86400)
        if isinstance(expires, str):
            lifetime: float = untrusted.integer(expires, "expires", strings=True)
        else:
            lifetime = untrusted.number(expires, "expires")
        if lifetime <= 0:
            raise untrusted.refused("expires", "expected a positive number of seconds", lifetime)
        return cls(
            access=untrusted.secret(untrusted.field(data, "accesstoken"), "accesstoken"),
            refresh=untrusted.secret(refresh, "refreshtoken") if refresh is not None else None,
            lifetime=float(lifetime),
            user=User.from_json(untrusted.field(data, "user")),
        )


def shares_from_json(items: JSON) -> list[Share]:
    """The answer of ``GET /shares``: an array of shares."""
    items = untrusted.array(items, "the answer")
    return [Share.from_json(item, f"shares[{i}]") for i, item in enumerate(items)]


def acknowledged(answer: JSON) -> None:
    """A destroy's answer: a JSON object (``{}``), not, say, a proxy's page that stood in for it."""
    untrusted.mapping(answer, "the answer")
