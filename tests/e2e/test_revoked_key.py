"""End to end: a revoked mbed key in a real Platypush (real Redis, the installed bundle), with a
short retry schedule (``auth_retry_window: 6``, ``auth_retry_interval: 8``): a hook on
``MbedAuthFailedEvent`` fires once, ``mbed.status`` names the refusal, the channel retries rarely
(at most 3 requests in the window), restoring the key brings ``MbedConnectedEvent``, and
``mbed.diagnostics`` over ``/execute`` holds no form of the key."""

from __future__ import annotations

import base64
import datetime
import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from platypush_ext.sandbox.mbed import MbedServer
from tests.support import wait_until

KEY = "e2e-revocable/key+31337="
WINDOW, INTERVAL = 6.0, 8.0

# Hooks as a user writes them; each run leaves a line in a file (a side effect: /ws/events can drop events).
SCRIPT = """
from platypush import when
from platypush_ext.mbed.events import MbedAuthFailedEvent, MbedConnectedEvent

LOG = {log!r}


@when(MbedAuthFailedEvent)
def on_key_refused(event, **_):
    with open(LOG, "a") as f:
        f.write("refused " + event.args["error"] + "\\n")


@when(MbedConnectedEvent)
def on_connected(event, **_):
    with open(LOG, "a") as f:
        f.write("connected\\n")
"""


@pytest.fixture(scope="module")
def env(serve, launch, tmp_path_factory):
    mbed = serve(MbedServer, api_key=KEY, pull_timeout=2)
    log = tmp_path_factory.mktemp("hooks") / "hooks.log"
    config = {
        "mbed": {
            "base_url": mbed.base_url,
            "api_key": KEY,
            "channel": "long_poll",
            "pull_timeout": 10,
            "entities_enabled": False,
            "auth_retry_window": WINDOW,
            "auth_retry_interval": INTERVAL,
        },
    }
    platypush = launch(config, "platypush-revoked", scripts={"revoked_hooks.py": SCRIPT.format(log=str(log))})
    return {"platypush": platypush, "mbed": mbed, "log": log}


def hook_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def revoke(server: MbedServer, revoked: bool) -> None:
    requests.put(f"{server.url}/_sandbox/credentials", json={"revoked": revoked}, timeout=5).raise_for_status()


def test_a_revoked_key_one_hook_run_a_status_that_names_it_rare_retries_and_recovery(env):
    pp, mbed, log = env["platypush"], env["mbed"], env["log"]
    wait_until(lambda: pp.run("mbed.status")["reachable"] is True, timeout=30)
    wait_until(lambda: hook_lines(log) == ["connected"], timeout=10)
    mbed.recording = []
    logged_before = len(pp.log_tail(100_000).splitlines())
    revoke(mbed, True)
    wait_until(lambda: len(hook_lines(log)) == 2, timeout=20)
    refused = hook_lines(log)[1]
    assert refused.startswith("refused ") and "HTTP 401: Unauthorized" in refused and KEY not in refused
    status = pp.run("mbed.status")
    rejection = status["credentials_rejected"]
    assert status["reachable"] is False and rejection["error"] in refused
    assert datetime.datetime.fromisoformat(rejection["since"]).timestamp() <= time.time() + 1
    wait_until(lambda: len(refusals(mbed)) >= 4, timeout=WINDOW + INTERVAL + 10)
    times = refusals(mbed)
    assert len([t for t in times if t - times[0] < WINDOW]) <= 3, times
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= WINDOW / 3 - 0.1 and gaps[1] >= WINDOW / 2 - 0.1 and gaps[2] >= 0.9 * INTERVAL - 0.1, gaps
    revoke(mbed, False)
    wait_until(lambda: hook_lines(log)[2:] == ["connected"], timeout=INTERVAL + 10)
    assert pp.run("mbed.status")["credentials_rejected"] is None
    assert len(hook_lines(log)) == 3  # the refusal's hook ran once, for 4+ refused requests
    text = "\n".join(pp.log_tail(100_000).splitlines()[logged_before:])  # since the key was revoked
    assert text.count("refused the credentials") == 1 and "is unavailable" not in text
    assert "accepts the credentials again" in text and KEY not in pp.log_tail(100_000)


def refusals(server: MbedServer) -> list[float]:
    return [a.at / 1e9 for a in list(server.recording or []) if a.status == 401]


def test_diagnostics_over_execute_hold_no_form_of_the_key(env):
    pp = env["platypush"]
    answer = requests.post(
        pp.url + "/execute",
        json={"type": "request", "action": "mbed.diagnostics"},
        headers={"Authorization": f"Bearer {pp.token}"},
        timeout=30,
    )
    report = answer.json()["response"]["output"]
    text = json.dumps(report)
    raw = KEY.encode()
    for form in (KEY, quote(KEY, safe=""), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        assert form.rstrip("=") not in text
    assert raw.hex() not in text.lower()
    assert report["settings"]["api_key"] == "***" and report["settings"]["auth_retry_interval"] == INTERVAL
    assert report["versions"]["platypush"] and report["last_exchange"]["endpoint"] == "GET /v2/notification/pull"
    assert any("refused the credentials" in line for line in report["recent_errors"])
