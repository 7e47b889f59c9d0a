"""The demo (the README's main job): every sandbox server and a real Platypush with
the bundle, driven over ``/execute`` while events fire hooks.

Each module of this package is one part of the demo and defines::

    TITLE = "Pushjet push notifications"   # a heading
    ORDER = 10                             # parts run in this order
    def configure(ctx: DemoContext) -> dict: ...  # config.yaml sections
    def run(ctx: DemoContext) -> None: ...        # drive Platypush, print

Run it with ``python -m platypush_ext.demo`` (``make demo``).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType

from ..core.untrusted import JSONObject
from ..sandbox.core import SandboxServer
from ..sandbox.runner import EventStream, PlatypushProcess


@dataclass
class DemoContext:
    """What the demo parts share."""

    servers: dict[str, SandboxServer]
    platypush: PlatypushProcess | None = None
    events: EventStream | None = None
    shared: JSONObject = field(default_factory=dict)

    def say(self, text: str) -> None:
        """Print one step of the demo.

        :param text: what the step did.
        """
        print(f"  - {text}", flush=True)

    def check(self, ok: bool, text: str) -> None:
        """Print a step that claims something, or fail the part if the claim is false.

        :param ok: whether the claim holds.
        :param text: the claim.
        :raises DemoFailure: ``ok`` is false.
        """
        if not ok:
            raise DemoFailure(f"not true: {text}")
        self.say(text)


class DemoFailure(AssertionError):
    """A demo step did not do what it says."""


def parts() -> list[ModuleType]:
    """The demo parts, in order."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            if hasattr(module, "configure") and hasattr(module, "run"):
                found.append(module)
    return sorted(found, key=lambda m: getattr(m, "ORDER", 100))
