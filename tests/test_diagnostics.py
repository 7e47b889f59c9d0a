"""``<plugin>.diagnostics`` (platypush_ext/glue/diagnostics.py) on every plugin configured with secrets,
in-process against the sandboxes: what it holds, and no secret in any form (the scan is proved to
catch each form first)."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests

from platypush_ext.core.errors import ServerError, ServiceConnectionError
from platypush_ext.core.http import HttpClient
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.gett.plugin import GettPlugin
from platypush_ext.glue.diagnostics import RecentErrors, masked
from platypush_ext.mbed.events import MbedConnectedEvent
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.nikdev.plugin import NikdevPlugin
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.pushjet.plugin import PushjetPlugin
from platypush_ext.sandbox.core import SandboxServer
from platypush_ext.sandbox.gett import GettServer
from platypush_ext.sandbox.mbed import MbedServer
from platypush_ext.sandbox.nikdev import DEFAULT_DEVICE_ID, NikdevServer
from platypush_ext.sandbox.ports import free_port
from platypush_ext.sandbox.pushjet import PushjetServer
from tests.support import RecordingBus, wait_until

pytestmark = pytest.mark.usefixtures("workdir")

MBED_KEY = "ak_diag/key+with=signs&more"
NIKDEV_KEY = "nikdev-diag/key+with=signs"
GETT_APIKEY, GETT_PASSWORD = "gett-diag-apikey/+=", "pass word/with+signs?"


def forms(secret: str) -> dict[str, str]:
    """Every form a secret may take in a text: raw, percent-encoded, base64 (both alphabets, with
    and without padding), hex (both cases)."""
    raw = secret.encode()
    b64, url_b64 = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return {
        "raw": secret,
        "percent": quote(secret, safe=""),
        "percent-plus": quote_plus(secret, safe=""),
        "base64": b64,
        "base64-bare": b64.rstrip("="),
        "urlsafe-base64": url_b64,
        "urlsafe-base64-bare": url_b64.rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
    }


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The forms of ``secrets`` found in ``text``, as ``<form> of secret #<n>``."""
    return [f"{form} of secret #{n}" for n, s in enumerate(secrets) for form, f in forms(s).items() if f in text]


@pytest.mark.parametrize("form", sorted(forms("x")))
def test_the_scan_catches_every_form(form: str) -> None:
    secret = "s3cr3t/with+signs=&?"
    report = {"settings": {"note": f"prefix {forms(secret)[form]} suffix"}}
    assert f"{form} of secret #0" in leaks(json.dumps(report), [secret])
    assert leaks(json.dumps({"settings": {"api_key": "***"}}), [secret]) == []


def test_masked_hides_secret_named_settings_and_known_values() -> None:
    known = "0123456789abcdef0123456789abcdef"
    settings = {
        "base_url": "http://h/",
        "api_key": "k-e-y",
        "services": {"alerts": {"secret": "a" * 32}, "plain": known},
        "headers": {"X-Token": "t0k3n"},
        "password": None,
        "retries": 2,
        "devices": ["d-1"],
        "basic_auth": "user:pw",
        "auth_retry_window": 30,
        "proxy": "http://me:pr0xy-pw@proxy.lan:3128",
    }
    shown = masked(settings, lambda text: str(text).replace(known, "***"))
    assert shown == {
        "base_url": "http://h/",
        "api_key": "***",
        "services": {"alerts": {"secret": "***"}, "plain": "***"},
        "headers": {"X-Token": "***"},
        "password": None,
        "retries": 2,
        "devices": ["d-1"],
        "basic_auth": "***",
        "auth_retry_window": 30,
        "proxy": "http://me:***@proxy.lan:3128",
    }


def test_recent_errors_keep_the_last_20_one_line_each() -> None:
    recent = RecentErrors()
    for n in range(25):
        recent.add(f"error {n}\nsecond line")
    assert len(recent.lines) == 20 and recent.lines[0].endswith("error 5\\nsecond line")
    assert all("\n" not in line for line in recent.lines)


def test_the_client_remembers_its_last_exchange_and_reports_each_failure(start_server: Callable[..., Any]) -> None:
    server = start_server(NikdevServer)
    failures: list[str] = []
    http = HttpClient(server.base_url, retry=RetryPolicy(attempts=1))
    http.exchanges.on_failure = failures.append
    assert http.exchanges.last is None
    server.faults.add("status", count=1, status=503)
    with pytest.raises(ServerError):
        http.request("GET", "values/temp", params={"api_key": "k3y-in-query"})
    last = http.exchanges.last
    assert last is not None and last["status"] == 503 and last["endpoint"] == "GET /api/v1/values/temp"
    assert datetime.datetime.fromisoformat(last["at"]).utcoffset() == datetime.timedelta(0)
    assert failures == [last["error"]] and "HTTP 503" in failures[0] and "k3y-in-query" not in failures[0]
    closed = HttpClient(f"http://127.0.0.1:{free_port()}/", retry=RetryPolicy(attempts=1))
    with pytest.raises(ServiceConnectionError):
        closed.request("GET", "x")
    assert closed.exchanges.last is not None and closed.exchanges.last["status"] is None
    assert "cannot reach" in closed.exchanges.last["error"]
    http.close()
    closed.close()


def revoke(server: SandboxServer, revoked: bool = True) -> None:
    requests.put(f"{server.url}/_sandbox/credentials", json={"revoked": revoked}, timeout=5).raise_for_status()


@pytest.fixture
def plugins(
    start_server: Callable[..., Any], bus: RecordingBus, entity_registry_redis: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """The four plugins, each configured with secrets and having met an error; every secret they know."""
    monkeypatch.setattr(PushjetPlugin, "MIN_POLL_INTERVAL", 0.2)
    mbed_server = start_server(MbedServer, api_key=MBED_KEY, pull_timeout=0.5)
    pushjet_server, nikdev_server = start_server(PushjetServer), start_server(NikdevServer)
    gett_server = start_server(GettServer, apikey=GETT_APIKEY, password=GETT_PASSWORD)
    nikdev_server.add_key(NIKDEV_KEY)
    remote = PushjetClient(pushjet_server.base_url)
    alerts, other = remote.create_service("alerts"), remote.create_service("other")
    made = {
        "mbed": MbedPlugin(
            base_url=mbed_server.base_url,
            api_key=MBED_KEY,
            channel="long_poll",
            entities_enabled=False,
            auth_retry_window=3,
            auth_retry_interval=4,
        ),  # fmt: skip
        "pushjet": PushjetPlugin(
            base_url=pushjet_server.base_url,
            devices=[str(uuid.uuid4())],
            services={"alerts": {"secret": alerts.secret_key}, "other": other.secret_key},
            poll_interval=0.2,
        ),
        "nikdev": NikdevPlugin(base_url=nikdev_server.base_url, device_id=DEFAULT_DEVICE_ID, api_key=NIKDEV_KEY),
        "gett": GettPlugin(
            base_url=gett_server.base_url, api_key=GETT_APIKEY, email=gett_server.email, password=GETT_PASSWORD
        ),
    }
    made["mbed"].start()
    bus.wait_for(MbedConnectedEvent)
    assert not made["gett"].get_user().errors  # logged in: an access and a refresh token known
    client = made["gett"]._client
    secrets = [MBED_KEY, NIKDEV_KEY, GETT_APIKEY, GETT_PASSWORD, alerts.secret_key, other.secret_key]
    secrets += [client.refresh_token, client._access_token]
    revoke(mbed_server)  # errors to report: a refused key, refused actions
    wait_until(lambda: made["mbed"].status().output["credentials_rejected"], timeout=10)
    assert made["mbed"].get_endpoints().errors
    assert "404" in made["nikdev"].get_values(fields="temp").errors[0]  # no value yet
    assert not made["pushjet"].get_subscriptions().errors
    assert made["pushjet"].send(message="x", service="nobody").errors
    yield made, secrets
    for plugin in made.values():
        plugin.stop()


def test_diagnostics_of_every_plugin_hold_what_a_bug_report_needs_and_no_secret(plugins: Any) -> None:
    made, secrets = plugins
    for name, plugin in made.items():
        response = plugin.diagnostics()
        assert not response.errors, (name, response.errors)
        report = response.output
        text = json.dumps(report)
        assert leaks(text, secrets) == [], name
        assert report["plugin"] == name
        assert set(report["versions"]) == {"platypush_ext", "platypush", "python", "requests", "redis"}
        assert report["versions"]["platypush"] and report["versions"]["requests"] and report["versions"]["redis"]
        assert report["base_url"].startswith("http://127.0.0.1:") and report["settings"]["base_url"]
        assert report["last_exchange"]["at"] and report["last_exchange"]["endpoint"].split()[0] in ("GET", "POST")
        assert "credentials_rejected" in report["state"], name
        assert len(report["recent_errors"]) <= 20
    assert made["mbed"].diagnostics().output["settings"]["api_key"] == "***"
    assert made["gett"].diagnostics().output["settings"]["password"] == "***"
    pushjet = made["pushjet"].diagnostics().output["settings"]["services"]
    assert pushjet == {"alerts": {"secret": "***"}, "other": "***"}
    mbed = made["mbed"].diagnostics().output
    assert mbed["state"]["credentials_rejected"]["error"].endswith("HTTP 401: Unauthorized")
    assert mbed["last_exchange"]["status"] == 401 and mbed["settings"]["auth_retry_window"] == 3
    assert any("refused the credentials" in line for line in mbed["recent_errors"])
    assert any("HTTP 401" in line for line in mbed["recent_errors"])
    pushjet_errors = made["pushjet"].diagnostics().output["recent_errors"]
    assert any("no secret known for service 'nobody'" in line for line in pushjet_errors)
