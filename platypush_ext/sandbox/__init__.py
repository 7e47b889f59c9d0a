"""Protocol-faithful local servers of the services (the "sandbox").

Each module of this package that defines a :class:`~.core.SandboxServer`
subclass named in its ``SERVER`` attribute is one service's server;
:func:`servers` finds them all.
"""

from __future__ import annotations

import importlib
import pkgutil

from .core import SandboxServer

__all__ = ["SandboxServer", "servers"]


def servers() -> dict[str, type[SandboxServer]]:
    """Every sandbox server class of this package, by service name."""
    found: dict[str, type[SandboxServer]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "core":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        server = getattr(module, "SERVER", None)
        if server is not None:
            found[server.name] = server
    return dict(sorted(found.items(), key=lambda item: item[1].default_port))
