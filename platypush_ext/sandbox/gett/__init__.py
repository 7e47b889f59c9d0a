"""The Ge.tt sandbox: the API (:mod:`.server`) and its blob host (:mod:`.blobs`)."""

from __future__ import annotations

from .blobs import GettBlobServer
from .server import GettServer

SERVER = GettServer

__all__ = ["SERVER", "GettBlobServer", "GettServer"]
