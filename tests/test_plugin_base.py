"""The plugins' common base (glue.ServicePlugin): each plugin adjusts its client's one default
retry policy and timeouts from its config, and its stop() closes the client."""

from __future__ import annotations

from typing import Any

import pytest

from platypush_ext.core.http import Timeouts
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.gett.client import GettClient
from platypush_ext.gett.plugin import GettPlugin
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.nikdev.client import NikdevClient
from platypush_ext.nikdev.plugin import NikdevPlugin
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.pushjet.plugin import PushjetPlugin

URL = "http://127.0.0.1:9/"
KEY = "0123456789abcdef-key"

PLUGINS = [
    (PushjetPlugin, PushjetClient, {}),
    (GettPlugin, GettClient, {"api_key": KEY, "email": "a@b.c", "password": "pw-123456"}),
    (NikdevPlugin, NikdevClient, {"device_id": "dev-1", "api_key": KEY}),
    (MbedPlugin, MbedClient, {"api_key": KEY, "channel": "none"}),
]


@pytest.mark.usefixtures("entity_registry_redis")  # the mbed plugin registers its entities there
@pytest.mark.parametrize("plugin_class, client_class, config", PLUGINS, ids=lambda v: getattr(v, "__name__", ""))
def test_the_plugin_adjusts_its_clients_default_policy(
    plugin_class: Any, client_class: Any, config: dict[str, Any], workdir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    edited = RetryPolicy(attempts=9, backoff=0.25, backoff_max=3.0, budget=12.0)
    monkeypatch.setattr(client_class, "DEFAULT_RETRY", edited)  # editing the default reaches the plugin
    plugin = plugin_class(base_url=URL, connect_timeout=2, read_timeout=7, retries=4, **config)
    closed: list[bool] = []
    close = plugin._client.close
    monkeypatch.setattr(plugin._client, "close", lambda: (closed.append(True), close()))
    try:
        retry = plugin._client.http.retry
        assert (retry.attempts, retry.backoff, retry.backoff_max) == (5, 0.25, 3.0)
        assert retry.budget == (20.0 if plugin_class is NikdevPlugin else 12.0)  # nikdev: push_time_limit
        assert plugin._client.http.timeouts == Timeouts(2.0, 7.0)
    finally:
        plugin.stop()
    assert closed == [True]  # stop() closed the client


def test_clients_keep_their_own_defaults_when_built_alone() -> None:
    assert NikdevClient(URL, "dev-1", KEY).http.retry == NikdevClient.DEFAULT_RETRY
    assert NikdevClient(URL, "dev-1", KEY).http.timeouts == Timeouts(5.0, 10.0)
    assert MbedClient(URL, KEY).http.retry == RetryPolicy(attempts=3, budget=20.0)
    assert PushjetClient(URL).http.retry == RetryPolicy()


@pytest.mark.usefixtures("entity_registry_redis")
def test_a_text_output_too_deep_for_platypush_is_a_one_line_error_not_a_recursion_error(
    start_server: Any, bus: Any, workdir: str
) -> None:
    # a device value of 20,000 brackets (at most 64 KiB, so a valid value): Platypush parses an
    # action's text output as JSON, and raised RecursionError out of its action machinery
    from platypush_ext.sandbox.mbed import MbedServer

    server = start_server(MbedServer, api_key=KEY, demo_devices=True)
    deep = "[" * 20_000 + "]" * 20_000
    for _ in range(2):  # what the service's cache holds for the device's resource
        server.faults.add(
            "body",
            method="GET",
            path="/v2/endpoints/node-001/3/0/1",
            raw=deep,
            status=200,
            headers={"Content-Type": "text/plain"},
        )
    plugin = MbedPlugin(base_url=server.base_url, api_key=KEY, channel="none", entities_enabled=False)
    try:
        response = plugin.run("get_resource_value", endpoint="node-001", path="/3/0/1", cache_only=True)
        assert response.output is None or response.output == {"success": False} or not response.output
        [error] = response.errors
        assert "nested too deeply for Platypush" in error and "\n" not in error and len(error) <= 500
        details = plugin.run("get_resource_value", endpoint="node-001", path="/3/0/1", cache_only=True, details=True)
        assert details.output["value"] == deep and not details.errors
    finally:
        plugin.stop()
