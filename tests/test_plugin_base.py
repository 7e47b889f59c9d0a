"""The plugins' common base (glue.ServicePlugin): each plugin adjusts its client's one default
retry policy and timeouts from its config, and its stop() closes the client."""

from __future__ import annotations

from typing import Any

import pytest

from platypush_ext.gett.client import GettClient
from platypush_ext.gett.plugin import GettPlugin
from platypush_ext.http import RetryPolicy, Timeouts
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
