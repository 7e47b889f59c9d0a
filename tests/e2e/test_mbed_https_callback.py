"""End to end, issue 21: the mbed callback receiver over HTTPS inside a real Platypush
(``callback_tls_cert`` / ``callback_tls_key``, a self-signed certificate made for the test) with the
sandbox told to trust that certificate: the service registers an ``https://`` callback, a device's
answer arrives through it and becomes the action's value, a subscribed change becomes an event."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from platypush_ext.sandbox.mbed import MbedServer
from tests.proxies import make_certs
from tests.support import wait_until

KEY = "e2e-mbed-https-key-4242"
NOTIFICATION = "platypush_ext.mbed.events.MbedNotificationEvent"


@pytest.fixture(scope="module")
def env(serve: Any, launch: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    mbed = serve(MbedServer, api_key=KEY, pull_timeout=2, demo_devices=True, callback_ca=certs.self_signed_cert)
    config = {
        "mbed": {
            "base_url": mbed.base_url,
            "api_key": KEY,
            "async_timeout": 10,
            "channel": "callback",
            "callback_tls_cert": certs.self_signed_cert,
            "callback_tls_key": certs.self_signed_key,
        }
    }
    platypush = launch(config, "platypush-mbed-https")
    yield {"platypush": platypush, "mbed": mbed}
    platypush.stop()


def test_the_https_callback_is_registered_and_carries_answers_and_notifications(env: dict[str, Any]) -> None:
    pp, mbed = env["platypush"], env["mbed"]
    wait_until(lambda: mbed.channel == "callback", timeout=15)
    assert mbed.callback["url"].startswith("https://127.0.0.1:")
    assert pp.run("mbed.get_resource_value", endpoint="node-001", path="/3/0/1") == "Mbed"
    assert pp.run("mbed.subscribe", endpoint="temp-sensor-01", path="/3303/0/5700") == {"subscribed": True}
    with pp.events() as events:
        mbed.set_value("temp-sensor-01", "/3303/0/5700", "23.5")
        note = events.wait_for(lambda e: e["type"] == NOTIFICATION and e["value"] == "23.5", timeout=15)
    assert (note["endpoint"], note["path"]) == ("temp-sensor-01", "/3303/0/5700")
    assert set(mbed.callback_deliveries) == {204}  # every delivery over TLS acknowledged
