"""The Pushjet sandbox: the API (:mod:`.server`) and its realtime connectors (:mod:`.connector`)."""

from __future__ import annotations

from .connector import PushjetConnector
from .server import PushjetServer

SERVER = PushjetServer

__all__ = ["SERVER", "PushjetConnector", "PushjetServer"]
