"""Helpers of the mbed plugin's tests (``test_plugin.py``, ``test_entities.py``)."""

from __future__ import annotations

from typing import Any

from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.sandbox.mbed import MbedServer

KEY = "plugin-secret-key-4242"


def make_plugin(server: MbedServer, **config: Any) -> MbedPlugin:
    config = {
        "channel": "long_poll",
        "connect_timeout": 1,
        "read_timeout": 2,
        "pull_timeout": 3,
        "async_timeout": 5,
        "retries": 1,
        "entities_enabled": False,  # the entities' own subscriptions and reads: tests/mbed/test_entities.py
        **config,
    }
    return MbedPlugin(base_url=server.base_url, api_key=KEY, **config)


def run(plugin: MbedPlugin, name: str, **args: Any) -> Any:
    """Run an action as Platypush does: returns (output, errors)."""
    response = getattr(plugin, name)(**args)
    return response.output, response.errors
