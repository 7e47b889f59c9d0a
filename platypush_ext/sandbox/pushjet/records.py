"""What the Pushjet sandbox keeps (services, subscriptions, messages) and the forms of its
identifiers, shared by the API server and its connectors."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from ...core.untrusted import JSONObject

if TYPE_CHECKING:
    from typing_extensions import Unpack

UUID_RE = re.compile(r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$")
PUBLIC_RE = re.compile(r"^[a-zA-Z0-9]{4}-[a-zA-Z0-9]{6}-[a-zA-Z0-9]{12}-[a-zA-Z0-9]{5}-[a-zA-Z0-9]{9}$")
SECRET_RE = re.compile(r"^[a-zA-Z0-9]{32}$")

#: The answer of a bare success.
OK = {"status": "ok"}


class DumpOptions(TypedDict, total=False):
    """The ``json.dumps`` options :meth:`Message.as_json` passes on."""

    sort_keys: bool
    separators: tuple[str, str]


@dataclass
class Service:
    """A service: its keys, name, icon and creation time."""

    secret: str
    public: str
    name: str
    icon: str
    created: int

    def as_dict(self, secret: bool = False) -> JSONObject:
        data: JSONObject = {"created": self.created, "icon": self.icon, "name": self.name, "public": self.public}
        if secret:
            data["secret"] = self.secret
        return data


@dataclass
class Subscription:
    """A device's subscription to a service, with its read pointer (the last message id read)."""

    uuid: str
    service: Service
    timestamp: int
    timestamp_checked: int
    last_read: int

    def as_dict(self) -> JSONObject:
        return {
            "service": self.service.as_dict(),
            "timestamp": self.timestamp,
            "timestamp_checked": self.timestamp_checked,
            "uuid": self.uuid,
        }


@dataclass
class Message:
    """A message a service sent."""

    id: int
    service: Service
    message: str
    title: str
    link: str
    level: int
    timestamp: int = field(default_factory=lambda: int(time.time()))
    raw: bytes | None = None  # a message object sent exactly as these bytes (``POST /_sandbox/raw-message``)

    def as_json(self, **options: Unpack[DumpOptions]) -> bytes:
        """The message object's bytes on the wire (a raw one as it is).

        :param options: ``json.dumps``' options.
        """
        return self.raw if self.raw is not None else json.dumps(self.as_dict(), **options).encode()

    def as_dict(self) -> JSONObject:
        return {
            "level": self.level,
            "link": self.link,
            "message": self.message,
            "service": self.service.as_dict(),
            "timestamp": self.timestamp,
            "title": self.title,
        }
