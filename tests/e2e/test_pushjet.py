"""End to end: a real ``platypush`` process with real Redis and the installed bundle,
against the Pushjet sandbox, called over ``/execute`` and watched on ``/ws/events``."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.pushjet import PushjetServer
from platypush_ext.sandbox.runner import PlatypushProcess

EVENT = "platypush_ext.pushjet.events.PushjetMessageEvent"

# A user script: the @when equivalent of a hook.
SCRIPT = """
from platypush import run, when
from platypush_ext.pushjet.events import PushjetMessageEvent


@when(PushjetMessageEvent, title="script")
def on_script_message(event, **_):
    run("variable.set", seen_by_script=event.args["message"])
"""


@pytest.fixture(scope="module")
def env(serve, launch):
    server = serve(PushjetServer)
    remote = PushjetClient(server.base_url)
    alerts, echo = remote.create_service("Alerts"), remote.create_service("Echo")
    device = str(uuid.uuid4())
    remote.subscribe(device, alerts.public_key)
    config = {
        "pushjet": {
            "base_url": server.base_url,
            "devices": [device],
            "services": {"alerts": {"secret": alerts.secret_key}, "echo": {"secret": echo.secret_key}},
            "poll_interval": 4,
        },
        "event.hook.UrgentPushjetMessage": {
            "if": {"type": EVENT, "importance": {"$gte": 4}, "service_name": "Alerts"},
            "then": [{"action": "variable.set", "args": {"last_urgent": "${message}"}}],
        },
        "procedure.notify_and_list(text)": [
            {"action": "pushjet.send", "args": {"service": "alerts", "message": "${text}", "title": "procedure"}},
            {"action": "pushjet.get_subscriptions"},
        ],
    }
    platypush = launch(config, "platypush", scripts={"pushjet_hooks.py": SCRIPT})
    return {
        "platypush": platypush,
        "server": server,
        "remote": remote,
        "alerts": alerts,
        "echo": echo,
        "device": device,
    }


def variable(platypush: PlatypushProcess, name: str):
    return platypush.run("variable.get", name=name)[name]


def wait_variable(platypush: PlatypushProcess, name: str, value, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if variable(platypush, name) == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"variable {name} is {variable(platypush, name)!r}, expected {value!r}")


def test_execute_requires_the_token(env):
    answer = requests.post(
        env["platypush"].url + "/execute", json={"type": "request", "action": "pushjet.status"}, timeout=10
    )
    # 412 while no Platypush user exists (as here, where only the API token authenticates), 401 otherwise
    assert answer.status_code in (401, 403, 412) and "response" not in answer.text


def test_send_over_execute_fires_event_and_hook(env):
    platypush = env["platypush"]
    with platypush.events() as events:
        response = platypush.execute("pushjet.send", service="alerts", message="Smoke in the kitchen", importance=5)
        assert response == {"output": {"sent": True}, "errors": []}
        event = events.wait_for(lambda e: e["type"] == EVENT and e["message"] == "Smoke in the kitchen", 20)
    assert event["importance"] == 5 and event["service_name"] == "Alerts" and event["device"] == env["device"]
    assert event["service"] == env["alerts"].public_key and isinstance(event["journal_id"], int)
    wait_variable(platypush, "last_urgent", "Smoke in the kitchen")


def test_low_importance_does_not_fire_the_hook(env):
    platypush = env["platypush"]
    platypush.run("variable.set", last_urgent="unchanged")
    with platypush.events() as events:
        platypush.run("pushjet.send", service="alerts", message="just info", importance=2)
        events.wait_for(lambda e: e["type"] == EVENT and e["message"] == "just info", 20)
    time.sleep(1)  # give a wrongly matching hook the time to run
    assert variable(platypush, "last_urgent") == "unchanged"


def test_when_script_reacts_to_messages(env):
    platypush = env["platypush"]
    platypush.run("pushjet.send", service="alerts", message="from a script", title="script")
    wait_variable(platypush, "seen_by_script", "from a script")


def test_procedure_calls_pushjet_actions(env):
    platypush = env["platypush"]
    with platypush.events() as events:
        output = platypush.run("procedure.notify_and_list", text="Procedure says hi")
        event = events.wait_for(lambda e: e["type"] == EVENT and e["message"] == "Procedure says hi", 20)
    assert event["title"] == "procedure"
    assert [s["service"]["name"] for s in output] == ["Alerts"]  # the last action's output


def test_service_management_over_execute(env):
    platypush = env["platypush"]
    created = platypush.run("pushjet.create_service", name="Garage", alias="garage")
    assert "secret_key" not in created
    platypush.run("pushjet.subscribe", service="garage")
    platypush.run("pushjet.edit_service", service="garage", name="Garage door")
    platypush.run("pushjet.send", service="garage", message="closed")
    messages = platypush.run("pushjet.get_messages")
    assert [(m["message"], m["service"]["name"]) for m in messages] == [("closed", "Garage door")]
    assert platypush.run("pushjet.delete_service", service="garage") == {"deleted": True}


def test_errors_are_readable_and_secrets_stay_out_of_the_log(env):
    platypush = env["platypush"]
    bad = platypush.execute("pushjet.send", message="x", service="alerts", importance=11)
    assert bad["errors"] == ["importance must be from 1 (least) to 5 (most important), got 11"]
    unknown = platypush.execute("pushjet.send", message="x", secret_key="b" * 32)
    assert unknown["errors"] and "Service not found" in unknown["errors"][0]
    assert "Traceback" not in unknown["errors"][0] and "b" * 32 not in unknown["errors"][0]
    missing = platypush.execute("pushjet.nope")
    assert missing["errors"]
    log = platypush.log_path.read_text(errors="replace")
    for secret in (env["alerts"].secret_key, env["echo"].secret_key, "b" * 32):
        assert secret not in log


def test_unreachable_server_is_a_clear_error(env):
    platypush = env["platypush"]
    env["server"].faults.add("status", count=3, status=503, method="POST", path="/message")
    response = platypush.execute("pushjet.send", service="alerts", message="during an outage")
    assert response["errors"] == ["POST /message: HTTP 503: 503 Service Unavailable"]
    env["server"].faults.clear()
